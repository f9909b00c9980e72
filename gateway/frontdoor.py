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
    headers = dict(scope.get("headers") or [])
    if key := headers.get(b"x-api-key"):
        return key.decode("latin-1")
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("apikey")
    return values[0] if values else None


class FrontDoor:
    """ASGI middleware: request id on every response, API key where required."""

    def __init__(self, app: ASGIApp, api_key: str, listen_host: str) -> None:
        self.app = app
        self.api_key = api_key
        self.mcp_needs_key = not is_loopback_host(listen_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
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

        await self.app(scope, receive, send_with_id)

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
