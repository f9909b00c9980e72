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
bodies that do not parse (400 parse error), and any request shape this lane
does not recognise.

A 2026-07-28 request (no session; its era, client and capabilities in
`_meta`, `Mcp-Method`/`Mcp-Name` headers) takes the lane too when it is a
plain `tools/call`: it passes the SDK's own validation ladder
(`classify_inbound_request`, duplicated routing headers), its client declared
no elicitation, sampling or roots (those calls may be answered
`input_required`: gateway/asks.py), it asks for no logs or progress, it
carries no `Mcp-Param-*` header and the tool's schema declares none, and it is
no retry (`inputResponses`, `requestState`). Its answer is what the SDK's
runner writes: the result sieved for that era and stamped with `serverInfo`. A session becomes eligible once
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
from mcp.server.runner import modern_error_data
from mcp.server.streamable_http import REQUEST_CANCELLED, check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    find_duplicated_routing_header,
)
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp_types import (
    ErrorData,
)
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gateway import trace_context
from gateway.access import identity_of
from gateway.asks import offered
from gateway.call_context import CallContext
from gateway.fastpath_wire import (
    PARAM_HEADER_PREFIX,
    PlainCall,
    cancelled_request_id,
    declares_param_headers,
    error_body,
    invalid_request_body,
    invalid_request_id,
    parse_modern_call,
    parse_plain_call,
    result_body,
)
from gateway.frontdoor import replay_body
from services.mcp_internals import holding_session, serving_transport, session_transports

logger = logging.getLogger(__name__)

ToolCall = Callable[
    [str, dict[str, Any], CallContext], Awaitable[types.CallToolResult | types.InputRequiredResult]
]
"""`(tool name, arguments, context) -> result`: one endpoint's `tools/call`, shared with its SDK handler."""

_SESSION_HEADER: Final = b"mcp-session-id"
_VERSION_HEADER: Final = b"mcp-protocol-version"
_TRACEPARENT_HEADER: Final = b"traceparent"
_JSON_HEADERS: Final = ((b"content-type", b"application/json"),)
PRUNE_AFTER: Final = 64
"""Forget sessions the SDK has discarded once this many more have been seen since the last sweep."""


@dataclass(frozen=True)
class Answer:
    """A sized JSON-RPC answer (its content-length is added where it is sent)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class SessionInfo:
    """What the handshake told us about a session's client."""

    client_name: str | None
    client_version: str | None
    protocol_version: str
    can_be_asked: bool = False
    """The client declared elicitation, sampling or roots: its calls need the SDK's response stream,
    where an upstream's question to it goes (gateway/asks.py), so they skip this lane."""


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

    def __init__(
        self,
        call: ToolCall,
        surface: str,
        security: TransportSecuritySettings,
        input_schema: Callable[[str], Any] = lambda name: None,
    ) -> None:
        self.call = call
        self.surface = surface
        self.input_schema = input_schema
        """A tool's input schema by the name clients call it (a 2026-era call whose tool mirrors
        arguments into `Mcp-Param-*` headers is left to the SDK, which checks them)."""
        self.server_info: dict[str, Any] | None = None
        self.security = TransportSecurityMiddleware(security)
        self.watch = SessionWatch()
        self.manager: StreamableHTTPSessionManager | None = None
        self._in_flight: dict[tuple[str, str | int], trio.CancelScope] = {}

    def open_manager(self, server: Server[Any]) -> StreamableHTTPSessionManager:
        """A fresh session manager for `server` (one per start), watched by this lane."""
        server.middleware.append(self.watch)
        self.server_info = server.server_info_stamp
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
        answer = await self.try_answer(scope, body)
        if answer is None:
            await manager.handle_request(scope, replay_body(body, receive), send)
            return
        headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def try_answer(self, scope: Scope, body: bytes) -> Answer | None:
        """The answer to the POST whose `scope` (headers, path, the front door's `state`) and `body`
        are given, or None when the SDK's session manager must answer it (nothing was done yet).
        For the ASGI endpoint above and for the lane inside the HTTP/1.1 protocol (gateway/mcp_lane.py)."""
        manager = self.manager
        assert manager is not None, "the lifespan starts the session manager"
        try:
            message = pydantic_core.from_json(body)
        except ValueError:
            message = None
        if (reason := invalid_request_id(message)) is not None:
            return Answer(400, list(_JSON_HEADERS), invalid_request_body(reason))
        session_id, version = _session_headers(scope)
        if session_id is None and version in MODERN_PROTOCOL_VERSIONS:
            return await self._answer_modern(message, scope)
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
            return None
        self.watch.prune(session_transports(manager))
        call = parse_plain_call(message)
        if call is None or (session_id, coerce_request_id(call.request_id)) in self._in_flight:
            cancelled = cancelled_request_id(message)
            if cancelled is not None:
                pending = self._in_flight.get((session_id, coerce_request_id(cancelled)))
                if pending is not None:
                    pending.cancel()
            return None
        with holding_session(transport):
            response = await self._answer(call, session_id, info, scope)
        return Answer(200, [*_JSON_HEADERS, (_SESSION_HEADER, session_id.encode())], response)

    async def _answer_modern(self, message: Any, scope: Scope) -> Answer | None:
        """Answer a plain 2026-era call here; None when the SDK must (see the module doc)."""
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        if any(key.startswith(PARAM_HEADER_PREFIX) for key, _ in raw_headers):
            return None
        if find_duplicated_routing_header((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers):
            return None
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in raw_headers}
        modern = parse_modern_call(message, headers)
        if modern is None or not await self._acceptable(Request(scope)):
            return None
        call = modern.call
        if call.arguments and declares_param_headers(self.input_schema(call.name)):
            return None
        client = modern.route.client_info or {}
        context = CallContext(
            surface=self.surface,
            client_name=client.get("name") if isinstance(client, dict) else None,
            client_version=client.get("version") if isinstance(client, dict) else None,
            request_id=str(call.request_id),
            keyed=bool(scope.get("state", {}).get("api_key_ok")),
            identity=identity_of(scope),
            input_required=True,
            traceparent=call.traceparent or headers.get(trace_context.TRACEPARENT)
            if trace_context.enabled
            else None,
        )
        status = 200
        try:
            result = await self.call(call.name, call.arguments, context)
            response = result_body(call.request_id, result, modern.route.protocol_version, self.server_info)
        except Exception as exc:  # the JSON-RPC boundary, as the SDK's modern entry draws it
            error = modern_error_data(exc)
            status = ERROR_CODE_HTTP_STATUS.get(error.code, 200)
            response = error_body(call.request_id, error)
        return Answer(status, list(_JSON_HEADERS), response)

    async def _acceptable(self, request: Request) -> bool:
        """What the SDK would refuse (Accept, Content-Type, Host, Origin), it should refuse itself."""
        # It answers 406 unless the client accepts both JSON and SSE, even though it then sends one.
        has_json, has_sse = check_accept_headers(request)
        return has_json and has_sse and await self.security.validate_request(request, is_post=True) is None

    async def _answer(self, call: PlainCall, session_id: str, info: SessionInfo, scope: Scope) -> bytes:
        identity = identity_of(scope)
        context = CallContext(
            surface=self.surface,
            client_name=info.client_name,
            client_version=info.client_version,
            session_id=session_id,
            request_id=str(call.request_id),
            keyed=identity.admin,
            identity=identity,
            traceparent=call.traceparent or _traceparent_header(scope) if trace_context.enabled else None,
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


def _traceparent_header(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == _TRACEPARENT_HEADER:
            return str(value.decode("latin-1"))
    return None


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
