"""The front door: request ids, the API key, and the JSON error envelope.

Every response carries `X-Request-Id`. `/api/v1/*` always needs the API key,
`/metrics` too (unless `metrics_access` is "loopback": then not from a loopback address),
`/events` the API key or a client credential; `/mcp*` takes the API key or a client credential and needs one
unless the proxy listens on loopback and `require_mcp_auth` is off (who gets
what: gateway/access.py). The key may come as `X-API-Key`,
`Authorization: Bearer ...` or `?apikey=`. A client that sends too many wrong
keys is answered 429 for a while (gateway/lockout.py).

The front door reads the whole request body before the app sees it: over
MAX_BODY_BYTES is answered 413 and a body not complete within BODY_TIMEOUT_S
408, as JSON, whether the client sent a Content-Length or chunks. (Refusing
from inside the app's receive would meet Starlette's error middleware first,
which answers any exception with a plain-text 500.)
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import parse_qs

import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.messages import AccessPolicy
from gateway.access import (
    AccessRefusedError,
    Identity,
    decide,
    requires_auth,
    serving,
    split_profile_path,
)
from gateway.lockout import KeyLockout, client_of
from services.access import credential_hash, find_grant

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER: Final = b"x-request-id"
ALWAYS_PROTECTED: Final = ("/api/", "/events")
EVENTS_PATH: Final = "/events"
METRICS_PATH: Final = "/metrics"
"""Needs the API key, unless `metrics_access` is "loopback" and the scraper connects from loopback."""
MCP_PREFIX: Final = "/mcp"
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
BODY_TIMEOUT_S: Final = 30.0
"""The whole body, not each read: a client dripping a byte every few seconds holds a connection no longer."""
CLOSE_HEADER: Final = (b"connection", b"close")
"""On a refusal before the body was read to its end: what is left of it cannot be skipped reliably."""
LOCKED_OUT_DELAY_S: Final = 1.0
"""Each 429 of a locked-out client waits this long: a client that ignores Retry-After is slowed down,
at the cost of one sleeping task here."""


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


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then the client's channel (disconnects)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def host_part(value: str) -> str:
    """`127.0.0.1:8080` -> `127.0.0.1`; `[::1]:8080` -> `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_host_names(listen_host: str, trusted_hosts: tuple[str, ...] = ()) -> set[str]:
    """The one allow-list of Host (and Origin) names: loopback, the listen address, `trusted_hosts`."""
    names = {"localhost", "127.0.0.1", "::1"} | {host_part(h) for h in trusted_hosts}
    if listen_host not in ("0.0.0.0", "::", ""):
        names.add(host_part(listen_host))
    return names


class FrontDoor:
    """ASGI middleware: request id, Host/Origin checks, body cap, and the API key where required."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        listen_host: str,
        trusted_hosts: tuple[str, ...] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        access: Callable[[], AccessPolicy] = AccessPolicy,
    ) -> None:
        self.app = app
        self.access = access
        """The supervisor's latest AccessPolicy (profiles, client grants, `require_mcp_auth`)."""
        self.api_key = api_key
        self.mcp_needs_key = not is_loopback_host(listen_host)
        self.max_body_bytes = max_body_bytes
        self.lockout = KeyLockout()
        self.allowed_hosts = allowed_host_names(listen_host, trusted_hosts)
        self.metrics_on_loopback = False
        """`metrics_access: "loopback"` (gateway/metrics.py); the default asks for the API key."""

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
        is_mcp = path.startswith(MCP_PREFIX)
        key = presented_key(scope)
        if is_mcp:
            if not await self._admit_mcp(scope, key, receive, send, request_id):
                return
        elif path == EVENTS_PATH:
            if not await self._admit_events(scope, key, receive, send, request_id):
                return
        elif path == METRICS_PATH:
            if not self._open_metrics(scope) and not await self._admit_key(
                scope, key, receive, send, request_id
            ):
                return
        elif path.startswith(ALWAYS_PROTECTED) and not await self._admit_key(
            scope, key, receive, send, request_id
        ):
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

        try:
            body = await self._read_body(receive)
        except _BodyTooLargeError:
            message = f"request body over {self.max_body_bytes} bytes"
            await send_json_error(send, 413, message, request_id, headers=[CLOSE_HEADER])
            return
        except _SlowBodyError:
            message = f"request body not received within {BODY_TIMEOUT_S:g}s"
            await send_json_error(send, 408, message, request_id, headers=[CLOSE_HEADER])
            return
        if body is None:
            return  # the client went away before its body was complete: nobody to answer
        await self.app(scope, replay_body(body, receive), send_with_id)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body within BODY_TIMEOUT_S in all, at most max_body_bytes; None if the
        client disconnected first. After it, `receive` only reports the client going away, which for
        an event stream is hours later: that is not timed."""
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(BODY_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise _BodyTooLargeError
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        raise _SlowBodyError

    async def _admit_mcp(
        self, scope: Scope, key: str | None, receive: Receive, send: Send, request_id: str
    ) -> bool:
        """Who an MCP request comes from (gateway/access.py), in `scope["state"]["identity"]`; a
        `/mcp/p/<name>` path is served as `/mcp` in that profile. A refusal is sent here.

        On loopback a credential is optional (unless `require_mcp_auth`), but one that is sent must
        be right: a stale one should say so, not quietly get the anonymous view."""
        if key is not None and await self._locked_out(scope, receive, send, request_id):
            return False
        identity = self._mcp_identity(scope, key)
        if identity is None:
            await self._wrong_key(scope, key, send, request_id)
            return False
        if isinstance(identity, AccessRefusedError):
            await send_json_error(send, identity.status, identity.message, request_id)
            return False
        self._admitted(scope, identity)
        return True

    def admit_quietly(self, scope: Scope) -> bool:
        """`__call__`'s checks for an MCP request (`scope["path"]` under /mcp) that pass: its identity
        is in the scope, as `_admit_mcp` leaves it. False, having done nothing, for any request
        `__call__` would refuse: the lane inside the HTTP/1.1 protocol (gateway/mcp_lane.py) then
        gives it to the app, whose front door refuses it, counts a wrong key and says why."""
        if self._refusal(scope) is not None:
            return False
        key = presented_key(scope)
        if key is not None and self._locked_for(scope)[1] > 0:
            return False
        identity = self._mcp_identity(scope, key)
        if not isinstance(identity, Identity):
            return False
        self._admitted(scope, identity)
        return True

    def _mcp_identity(self, scope: Scope, key: str | None) -> Identity | AccessRefusedError | None:
        """Who presents `key` on this MCP path (None: a wrong key); a `/mcp/p/<name>` path becomes the
        path it is served as."""
        policy = self.access()
        path_profile, inner = split_profile_path(scope["path"])
        if path_profile is not None:
            scope["path"] = inner
            scope["raw_path"] = inner.encode()
        admin = credential = None
        if key is not None:
            admin = self._key_ok(key)
            if not admin and find_grant(key, policy.clients) is None:
                return None
            credential = None if admin else key
        try:
            return decide(
                policy,
                admin=bool(admin),
                credential=credential,
                path_profile=path_profile,
                auth_required=requires_auth(policy, not self.mcp_needs_key),
            )
        except AccessRefusedError as refused:
            return refused

    @staticmethod
    def _admitted(scope: Scope, identity: Identity) -> None:
        scope["state"]["identity"] = identity
        scope["state"]["api_key_ok"] = identity.admin
        serving(identity)

    async def _admit_events(
        self, scope: Scope, key: str | None, receive: Receive, send: Send, request_id: str
    ) -> bool:
        """`/events` takes the API key (everything) or a client credential (what its profile may see,
        gateway/events.py), never nothing."""
        if await self._locked_out(scope, receive, send, request_id):
            return False
        if self._key_ok(key):
            scope["state"]["identity"] = Identity(admin=True, management=True)
            return True
        policy = self.access()
        if key is None or find_grant(key, policy.clients) is None:
            await self._wrong_key(scope, key, send, request_id)
            return False
        try:
            identity = decide(policy, admin=False, credential=key, path_profile=None, auth_required=True)
        except AccessRefusedError as refused:
            await send_json_error(send, refused.status, refused.message, request_id)
            return False
        scope["state"]["identity"] = identity
        scope["state"]["token_sha256"] = credential_hash(key)
        return True

    async def _locked_out(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> bool:
        """While the client is locked out, answer 429 (after a delay) and say so."""
        client, locked_for = self._locked_for(scope)
        if locked_for <= 0:
            return False
        # The key is not looked at, so a locked-out guesser learns nothing (gateway/lockout.py). Its body
        # is read and dropped meanwhile: left unread, it would stall the connection (hypercorn queues ten
        # chunks for the app, then stops reading) with nothing left to answer or close it.
        deadline = trio.current_time() + LOCKED_OUT_DELAY_S
        with trio.move_on_at(deadline):
            await _discard_body(receive)
        await trio.sleep_until(deadline)
        retry_after = math.ceil(max(locked_for - LOCKED_OUT_DELAY_S, 1.0))
        await send_json_error(
            send,
            429,
            f"too many wrong API keys from {client}: try again in {retry_after} s",
            request_id,
            headers=[(b"retry-after", str(retry_after).encode()), CLOSE_HEADER],
        )
        return True

    def _locked_for(self, scope: Scope) -> tuple[str, float]:
        """The client (as the lockout counts it) and how many seconds it stays locked out (<= 0: not)."""
        client = _client(scope)
        return client, self.lockout.locked_for(client, trio.current_time())

    def _open_metrics(self, scope: Scope) -> bool:
        """`metrics_access: "loopback"`: a scraper on this machine needs no key (the peer address is
        the TCP connection's: no header can claim it)."""
        return self.metrics_on_loopback and is_loopback_host((scope.get("client") or ("",))[0])

    async def _admit_key(
        self, scope: Scope, key: str | None, receive: Receive, send: Send, request_id: str
    ) -> bool:
        """The API key check; a refusal is sent here: 401 for a wrong key, 429 while locked out."""
        if await self._locked_out(scope, receive, send, request_id):
            return False
        if self._key_ok(key):
            return True
        await self._wrong_key(scope, key, send, request_id)
        return False

    async def _wrong_key(self, scope: Scope, key: str | None, send: Send, request_id: str) -> None:
        """Count a wrong key against its client (gateway/lockout.py) and answer 401."""
        client = _client(scope)
        # A missing key is no guess (a browser before sign-in, a probe): only wrong keys count.
        if key is not None and (locked_for := self.lockout.failed(client, trio.current_time())) > 0:
            logger.warning(
                "%d wrong API keys from %s within %g s: its requests are refused for %.0f s",
                self.lockout.max_failures,
                client,
                self.lockout.window_s,
                locked_for,
            )
        await send_json_error(
            send,
            401,
            "missing or invalid API key: send X-API-Key, Authorization: Bearer, or ?apikey=",
            request_id,
        )

    def _key_ok(self, key: str | None) -> bool:
        return (
            bool(self.api_key)
            and key is not None
            and hmac.compare_digest(key.encode(), self.api_key.encode())
        )


def _client(scope: Scope) -> str:
    """Who the lockout counts a request against (gateway/lockout.py): its peer address, or its /64."""
    return client_of((scope.get("client") or ("",))[0])


async def _discard_body(receive: Receive) -> None:
    """Read the request body to its end (or the client's leaving), keeping none of it."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def send_json_error(
    send: Send,
    status: int,
    message: str,
    request_id: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> None:
    body = error_body(message, request_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID_HEADER, request_id.encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
