"""The front door: request ids, the API key, and the JSON error envelope.

Every response carries `X-Request-Id`. `/api/v1/*` and `/events` always need
the API key; `/mcp*` needs it only when the proxy listens on a non-loopback
address (like mcpproxy-go). The key may come as `X-API-Key`,
`Authorization: Bearer ...` or `?apikey=`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import uuid
from typing import Any, Final
from urllib.parse import parse_qs

import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER: Final = b"x-request-id"
ALWAYS_PROTECTED: Final = ("/api/", "/events")
MCP_PREFIX: Final = "/mcp"
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
BODY_READ_TIMEOUT_S: Final = 30.0


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_body(message: str, request_id: str) -> bytes:
    return json.dumps({"success": False, "error": message, "request_id": request_id}).encode()


def presented_key(scope: Scope) -> str | None:
    headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
    if key := headers.get(b"x-api-key"):
        return key.decode("latin-1")
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("apikey")
    return values[0] if values else None


class _BodyTooLargeError(Exception):
    pass


class _SlowBodyError(Exception):
    pass


def host_part(value: str) -> str:
    """`127.0.0.1:8080` -> `127.0.0.1`; `[::1]:8080` -> `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class FrontDoor:
    """ASGI middleware: request id, Host/Origin checks, body cap, and the API key where required."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        listen_host: str,
        trusted_hosts: tuple[str, ...] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.mcp_needs_key = not is_loopback_host(listen_host)
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = {"localhost", "127.0.0.1", "::1"} | {host_part(h) for h in trusted_hosts}
        if listen_host not in ("0.0.0.0", "::", ""):
            self.allowed_hosts.add(host_part(listen_host))

    def _host_allowed(self, host: str) -> bool:
        name = host_part(host)
        return name in self.allowed_hosts or is_loopback_host(name)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if host and not self._host_allowed(host):
            return 403, f"host {host_part(host)!r} is not allowed: add it to trusted_hosts to serve it"
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and origin != "null":
            origin_host = origin.split("://", 1)[-1].split("/", 1)[0]
            if not self._host_allowed(origin_host):
                return 403, f"cross-origin request from {origin!r} refused"
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return 413, f"request body over {self.max_body_bytes} bytes"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        refusal = self._refusal(scope)
        if refusal is not None:
            await send_json_error(send, refusal[0], refusal[1], request_id)
            return
        needs_key = path.startswith(ALWAYS_PROTECTED) or (self.mcp_needs_key and path.startswith(MCP_PREFIX))
        if needs_key and not self._key_ok(scope):
            await send_json_error(
                send,
                401,
                "missing or invalid API key: send X-API-Key, Authorization: Bearer, or ?apikey=",
                request_id,
            )
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # hypercorn re-arms the keep-alive idle timer inside the final send; the MCP SDK's
                # streaming responses run it in an already-cancelled scope, which would leave the
                # connection without a timer and make shutdown wait out graceful_timeout.
                with trio.CancelScope(shield=True):
                    await send(message)
                return
            await send(message)

        received = 0
        started = False
        body_done = False

        async def capped_receive() -> Message:
            # Only the request body is timed: once it is complete, receive() waits for the client
            # to go away, which for an event stream is hours, not seconds.
            nonlocal received, body_done
            if body_done:
                return await receive()
            with trio.move_on_after(BODY_READ_TIMEOUT_S) as scope:
                message = await receive()
            if scope.cancelled_caught:
                raise _SlowBodyError
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLargeError
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_id(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await send_json_error(send, 413, f"request body over {self.max_body_bytes} bytes", request_id)
        except _SlowBodyError:
            if not started:
                await send_json_error(
                    send, 408, f"request body not received within {BODY_READ_TIMEOUT_S:g}s", request_id
                )

    def _key_ok(self, scope: Scope) -> bool:
        key = presented_key(scope)
        return (
            bool(self.api_key)
            and key is not None
            and hmac.compare_digest(key.encode(), self.api_key.encode())
        )


async def send_json_error(send: Send, status: int, message: str, request_id: str, **extra: Any) -> None:
    body = error_body(message, request_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID_HEADER, request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
