"""The fast lane: `tools/call` on an established streamable-HTTP session, answered as JSON.

The MCP SDK's streamable-HTTP server costs ~4 ms of CPU per call (session
manager, memory streams, an SSE response per POST) and its SSE answer makes
the SDK's own client drop the TCP connection after every call. For the one
request that dominates traffic — a plain `tools/call` on a session whose
handshake is done — this lane parses the JSON-RPC body once, runs the call
through the same `call` as the SDK handler (so `gateway/calling.py` still
checks quarantine and pinning and records the activity), and answers
`application/json`, which the streamable-HTTP spec allows for any request.

Everything else goes to the SDK unchanged: initialize, notifications, GET
streams, DELETE, batches, progress tokens, clients that do not accept both
JSON and SSE (the SDK answers them 406), unknown or foreign sessions (404),
bodies that do not parse (400 parse error), 2026-era requests, and any
request shape this lane does not recognise. A session becomes eligible once
the SDK has seen it initialized (`SessionWatch`, a server middleware), which
is also where the client's name and version come from. What the lane reads of
the SDK's private session tables goes through `services/mcp_internals.py`.

One refusal comes before either path, for every POST: a request whose `id` is
neither a string nor an integer (null, a fraction, a boolean, an object, NaN)
is answered 400 with a JSON-RPC Invalid Request (-32600), as MCP requires. The
SDK's 2025-era transport would take it for a notification: 202, no body, and a
client waiting for an answer that never comes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import mcp.types as types
import pydantic_core
import trio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import REQUEST_CANCELLED, check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST, ErrorData
from mcp_types import methods as spec_methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gateway.asks import offered
from gateway.calling import CallContext
from gateway.frontdoor import replay_body
from services.mcp_internals import holding_session, serving_transport, session_transports

logger = logging.getLogger(__name__)

ToolCall = Callable[
    [str, dict[str, Any], CallContext], Awaitable[types.CallToolResult | types.InputRequiredResult]
]
"""`(tool name, arguments, context) -> result`: one endpoint's `tools/call`, shared with its SDK handler."""

_SESSION_HEADER: Final = b"mcp-session-id"
_VERSION_HEADER: Final = b"mcp-protocol-version"
_JSON_HEADERS: Final = ((b"content-type", b"application/json"),)
_REQUEST_KEYS: Final = frozenset({"jsonrpc", "id", "method", "params"})
_CALL_PARAM_KEYS: Final = frozenset({"name", "arguments", "_meta"})
PRUNE_AFTER: Final = 64
"""Forget sessions the SDK has discarded once this many more have been seen since the last sweep."""


@dataclass(frozen=True)
class SessionInfo:
    """What the handshake told us about a session's client."""

    client_name: str | None
    client_version: str | None
    protocol_version: str
    can_be_asked: bool = False
    """The client declared elicitation, sampling or roots: its calls need the SDK's response stream,
    where an upstream's question to it goes (gateway/asks.py), so they skip this lane."""


@dataclass(frozen=True)
class PlainCall:
    """A `tools/call` request this lane answers exactly as the SDK would."""

    request_id: str | int
    name: str
    arguments: dict[str, Any]


def parse_plain_call(message: Any) -> PlainCall | None:
    """The call in one decoded JSON-RPC message, or None when the SDK must handle it.

    Plain means: a single request object with only the JSON-RPC keys, a string
    or integer id, a string tool name, object (or absent) arguments, and no
    `_meta` beyond what the call ignores — a progress token needs the SDK's
    per-request event stream, and a 2026-era envelope its own entry point.
    """
    if (
        not isinstance(message, dict)
        or message.get("method") != "tools/call"
        or message.keys() - _REQUEST_KEYS
    ):
        return None
    request_id = message.get("id")
    params = message.get("params")
    if (
        message.get("jsonrpc") != "2.0"
        or not isinstance(request_id, str | int)
        or isinstance(request_id, bool)
        or not isinstance(params, dict)
        or params.keys() - _CALL_PARAM_KEYS
    ):
        return None
    name = params.get("name")
    arguments = params.get("arguments")
    meta = params.get("_meta")
    if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
        return None
    if meta is not None and (not isinstance(meta, dict) or meta):
        return None
    return PlainCall(request_id, name, arguments or {})


def invalid_request_id(message: Any) -> str | None:
    """Why a decoded JSON-RPC request's `id` is not one MCP allows (a string or an integer), else None.

    Only a message with a `method` and an `id` is a request; a notification has no `id`, and a response
    (no `method`) may carry a null one.
    """
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return None
    request_id = message["id"]
    if isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return None
    if request_id is None:
        shown = "null"
    elif isinstance(request_id, bool):
        shown = "a boolean"
    elif isinstance(request_id, float):
        shown = f"the number {request_id!r}"
    else:
        shown = "an array" if isinstance(request_id, list) else "an object"
    return f"Invalid Request: a request's id must be a string or an integer, not {shown}"


def invalid_request_body(reason: str) -> bytes:
    error = {"code": INVALID_REQUEST, "message": reason}
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": None, "error": error})


def cancelled_request_id(message: Any) -> str | int | None:
    """The request a `notifications/cancelled` message names, else None."""
    if not isinstance(message, dict) or message.get("method") != "notifications/cancelled":
        return None
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    if isinstance(request_id, str | int) and not isinstance(request_id, bool):
        return request_id
    return None


def result_body(
    request_id: str | int, result: types.CallToolResult | types.InputRequiredResult, protocol_version: str
) -> bytes:
    """The JSON-RPC response the SDK's runner would write for `result` (same dump, same per-version sieve)."""
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    try:
        dumped = spec_methods.serialize_server_result("tools/call", protocol_version, dumped)
    except ValidationError:
        logger.exception("tools/call returned an invalid result")
        return error_body(
            request_id, ErrorData(code=INTERNAL_ERROR, message="Handler returned an invalid result")
        )
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "result": dumped})


def error_body(request_id: str | int, error: ErrorData) -> bytes:
    dumped = error.model_dump(by_alias=True, mode="json", exclude_unset=True)
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "error": dumped})


class SessionWatch:
    """Server middleware: remembers each session once the SDK has accepted its handshake."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionInfo] = {}
        self.on_session: Callable[[str, Any], None] | None = None
        """Also told about each new session (id, `ServerSession`): /mcp/all sends them list_changed."""
        self._added = 0

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        request = ctx.request
        if ctx.method != "initialize" and isinstance(request, Request):
            session_id = request.headers.get("mcp-session-id")
            params = ctx.session.client_params  # set once initialize succeeded: the init gate is open
            if session_id and params is not None and session_id not in self.sessions:
                client = params.client_info
                self.sessions[session_id] = SessionInfo(
                    client.name,
                    client.version,
                    ctx.protocol_version,
                    can_be_asked=bool(offered(ctx.session.client_capabilities)),
                )
                self._added += 1
                if self.on_session is not None:
                    self.on_session(session_id, ctx.session)
        return result

    def prune(self, live: Any) -> None:
        """Forget sessions no longer in `live` (checked every PRUNE_AFTER new sessions)."""
        if self._added < PRUNE_AFTER:
            return
        self._added = 0
        for session_id in [s for s in self.sessions if s not in live]:
            del self.sessions[session_id]


class FastPath:
    """ASGI endpoint for one MCP path: the fast lane in front of the SDK's session manager."""

    def __init__(self, call: ToolCall, surface: str, security: TransportSecuritySettings) -> None:
        self.call = call
        self.surface = surface
        self.security = TransportSecurityMiddleware(security)
        self.watch = SessionWatch()
        self.manager: StreamableHTTPSessionManager | None = None
        self._in_flight: dict[tuple[str, str | int], trio.CancelScope] = {}

    def open_manager(self, server: Server[Any]) -> StreamableHTTPSessionManager:
        """A fresh session manager for `server` (one per start), watched by this lane."""
        server.middleware.append(self.watch)
        self.manager = StreamableHTTPSessionManager(server, security_settings=self.security.settings)
        self.watch.sessions.clear()
        return self.manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self.manager
        assert manager is not None, "the lifespan starts the session manager"
        if scope["method"] != "POST":
            await manager.handle_request(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            message = pydantic_core.from_json(body)
        except ValueError:
            message = None
        if (reason := invalid_request_id(message)) is not None:
            answer = invalid_request_body(reason)
            length = (b"content-length", str(len(answer)).encode())
            await send({"type": "http.response.start", "status": 400, "headers": [*_JSON_HEADERS, length]})
            await send({"type": "http.response.body", "body": answer})
            return
        receive = replay_body(body, receive)
        session_id, version = _session_headers(scope)
        info = self.watch.sessions.get(session_id) if session_id is not None else None
        transport = (
            serving_transport(manager, session_id, scope.get("user"))
            if info is not None and session_id is not None
            else None
        )
        if (
            info is None
            or info.can_be_asked
            or transport is None
            or session_id is None
            or (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS)
            or not await self._acceptable(Request(scope))
        ):
            await manager.handle_request(scope, receive, send)
            return
        self.watch.prune(session_transports(manager))
        call = parse_plain_call(message)
        if call is None or (session_id, coerce_request_id(call.request_id)) in self._in_flight:
            cancelled = cancelled_request_id(message)
            if cancelled is not None:
                pending = self._in_flight.get((session_id, coerce_request_id(cancelled)))
                if pending is not None:
                    pending.cancel()
            await manager.handle_request(scope, receive, send)
            return
        with holding_session(transport):
            response = await self._answer(
                call, session_id, info, bool(scope.get("state", {}).get("api_key_ok"))
            )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *_JSON_HEADERS,
                    (b"content-length", str(len(response)).encode()),
                    (_SESSION_HEADER, session_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response})

    async def _acceptable(self, request: Request) -> bool:
        """What the SDK would refuse (Accept, Content-Type, Host, Origin), it should refuse itself."""
        # It answers 406 unless the client accepts both JSON and SSE, even though it then sends one.
        has_json, has_sse = check_accept_headers(request)
        return has_json and has_sse and await self.security.validate_request(request, is_post=True) is None

    async def _answer(self, call: PlainCall, session_id: str, info: SessionInfo, keyed: bool) -> bytes:
        context = CallContext(
            surface=self.surface,
            client_name=info.client_name,
            client_version=info.client_version,
            session_id=session_id,
            request_id=str(call.request_id),
            keyed=keyed,
        )
        key = (session_id, coerce_request_id(call.request_id))
        with trio.CancelScope() as cancel:
            self._in_flight[key] = cancel
            try:
                result = await self.call(call.name, call.arguments, context)
            except Exception as exc:  # the JSON-RPC boundary, as the SDK's dispatcher draws it
                error = handler_exception_to_error_data(exc)
                if error is None:
                    logger.exception("tools/call %r raised", call.name)
                    error = ErrorData(code=0, message=str(exc))  # code 0: what the SDK answers
                return error_body(call.request_id, error)
            finally:
                self._in_flight.pop(key, None)
            return result_body(call.request_id, result, info.protocol_version)
        # The client cancelled the request (notifications/cancelled): the 2025-era answer.
        return error_body(call.request_id, ErrorData(code=REQUEST_CANCELLED, message="Request cancelled"))


def _session_headers(scope: Scope) -> tuple[str | None, str | None]:
    session_id = version = None
    for key, value in scope["headers"]:
        if key == _SESSION_HEADER:
            session_id = value.decode("latin-1")
        elif key == _VERSION_HEADER:
            version = value.decode("latin-1")
    return session_id, version


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
