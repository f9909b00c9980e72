"""What mcpproxy uses of the MCP SDK's private internals: the one module that names them.

The SDK offers no public hook for two things we do:

- The fast lane (`gateway/fastpath.py`) answers a `tools/call` beside the
  SDK's streamable-HTTP session manager. To take only requests the SDK would
  serve on an existing session, it reads the manager's session and owner
  tables (`_server_instances`, `_session_owners`); while its call runs it holds
  the session's idle timer as the transport does for its own requests
  (`_requests_in_flight`, `_idle_timeout`).
- A task-augmented `tools/call` (`services/worker/tasks.py`) is answered by a
  `CreateTaskResult`, which `ClientSession.send_request` refuses (it checks every
  `tools/call` result against `CallToolResult`, after the upstream has created
  the task). `send_unchecked` sends it as `send_request` does — the session's
  stamp (`_stamp`: the era's header or `_meta`) on the dispatcher
  (`_dispatcher`) — and returns the result unchecked.
- The worker answers some requests an upstream sends it before the SDK's session does (the client
  side of 2025-11-25 tasks, services/worker/client_tasks.py), and declares the `tasks` capability
  that goes with it: `AnsweringSession` wraps the session's request handler (`_on_request`) and its
  capability builder (`_build_capabilities`).
- The worker's OAuth provider (`services/worker/oauth.py`) replaces the hooks
  `OAuthClientProvider` runs its flow through (`_auth_flow`, `_initialize`,
  `_handle_refresh_response`) and calls two of its steps (`_refresh_token`,
  `_add_auth_header`). `OAuthProviderBase` gives each a name of ours.

Importing this module checks that the installed SDK has every one of them in
the shape this module was written against (WRITTEN_FOR, which pyproject.toml
pins) and raises IncompatibleLibraryError naming what changed otherwise: a
renamed internal must stop the process at start, not quietly send every call
down the slow path or skip a token refresh.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import httpx2
import mcp.types as types
import trio
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import CallOptions, DispatchContext
from mcp.shared.transport_context import TransportContext

from bus.errors import IncompatibleLibraryError

WRITTEN_FOR: Final = "2.3"
"""The mcp release series whose internals this module reads."""


def session_transports(manager: StreamableHTTPSessionManager) -> Mapping[str, StreamableHTTPServerTransport]:
    """The manager's open sessions by id (its own table, not a copy)."""
    return manager._server_instances


def serving_transport(
    manager: StreamableHTTPSessionManager, session_id: str, user: Any
) -> StreamableHTTPServerTransport | None:
    """The transport the SDK would serve a request of `session_id` on, else None (the SDK answers it).

    As the manager decides: the session is open, not terminated, not ending for idleness, and the
    request comes with the credential that opened it (`user`: the ASGI scope's).
    """
    transport = manager._server_instances.get(session_id)
    if transport is None or transport.is_terminated:
        return None
    if transport.idle_scope is not None and transport.idle_scope.cancel_called:
        return None
    requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
    if requestor != manager._session_owners.get(session_id):
        return None
    return transport


@contextmanager
def holding_session(transport: StreamableHTTPServerTransport) -> Iterator[None]:
    """Keep the session's idle timer stopped while a request runs, as the transport does for its own."""
    idle, timeout = transport.idle_scope, transport._idle_timeout
    if idle is None or timeout is None:
        yield
        return
    transport._requests_in_flight += 1
    idle.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1
        if not transport._requests_in_flight:
            idle.deadline = trio.current_time() + timeout


async def send_unchecked(session: ClientSession, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Send one request on `session` as `send_request` does; return its result as it came (a dict)."""
    data: dict[str, Any] = {"method": method, "params": params}
    opts: CallOptions = {}
    session._stamp(data, opts)
    return await session._dispatcher.send_raw_request(method, data.get("params"), opts)


class AnsweringSession(ClientSession):
    """A ClientSession that may answer a server-initiated request itself (`answer_first`) before the
    SDK's callbacks do, and add to the capabilities it declares (`more_capabilities`)."""

    async def answer_first(self, method: str, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The result of a request this session answers itself; None: the SDK's callbacks answer it."""
        return None

    def more_capabilities(
        self, capabilities: types.ClientCapabilities, version: str
    ) -> types.ClientCapabilities:
        """The capabilities declared to a server speaking `version`."""
        return capabilities

    async def _on_request(
        self, dctx: DispatchContext[TransportContext], method: str, params: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        answer = await self.answer_first(method, params)
        if answer is not None:
            return answer
        return await super()._on_request(dctx, method, params)

    def _build_capabilities(self, version: str) -> types.ClientCapabilities:
        return self.more_capabilities(super()._build_capabilities(version), version)


class OAuthProviderBase(OAuthClientProvider):
    """The SDK's OAuth provider with the hooks of its flow under names of ours.

    The SDK's own flow (`async_auth_flow` -> `_auth_flow`) calls `_initialize` and
    `_handle_refresh_response` on the provider: routed to `load` and `take_refresh_response`
    here, a subclass's versions of them apply inside that flow too.
    """

    @property
    def loaded(self) -> bool:
        """Whether tokens and the registration have been read from storage since the last reset."""
        return self._initialized

    def oauth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The flow for one request (send requests, receive responses): the SDK's, unless overridden."""
        return OAuthClientProvider._auth_flow(self, request)

    async def load(self) -> None:
        """Read tokens and the client registration from storage."""
        await OAuthClientProvider._initialize(self)

    async def take_refresh_response(self, response: httpx2.Response) -> bool:
        """Store the tokens of a refresh response; False when the refresh was refused."""
        return await OAuthClientProvider._handle_refresh_response(self, response)

    async def refresh_request(self) -> httpx2.Request:
        """The token request that refreshes the current tokens."""
        return await self._refresh_token()

    def add_auth_header(self, request: httpx2.Request) -> None:
        """Put the current access token on `request`."""
        self._add_auth_header(request)

    # The SDK's hook names, routed to ours.

    def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        return self.oauth_flow(request)

    async def _initialize(self) -> None:
        await self.load()

    async def _handle_refresh_response(self, response: httpx2.Response) -> bool:
        return await self.take_refresh_response(response)


def _uses(cls: type, method: str, *names: str) -> bool:
    """Whether `cls.method` exists and its code (past decorators) reads or writes each name in `names`."""
    function = getattr(cls, method, None)
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    return code is not None and set(names) <= set(code.co_names)


def problems(
    manager: type[StreamableHTTPSessionManager] = StreamableHTTPSessionManager,
    transport: type[StreamableHTTPServerTransport] = StreamableHTTPServerTransport,
    provider: type[OAuthClientProvider] = OAuthClientProvider,
    session: type[ClientSession] = ClientSession,
) -> list[str]:
    """Each internal this module relies on that the given SDK classes lack, in words (none: all there)."""
    tables = ("_server_instances", "_session_owners")
    timer = ("_requests_in_flight", "_idle_timeout", "idle_scope")
    steps = ("_initialized", "_initialize", "_refresh_token", "_handle_refresh_response", "_add_auth_header")
    expected = {
        "StreamableHTTPSessionManager routes requests by _server_instances and _session_owners": (
            _uses(manager, "__init__", *tables) and _uses(manager, "_handle_stateful_request", *tables)
        ),
        "StreamableHTTPServerTransport holds its idle timer with _requests_in_flight and _idle_timeout": (
            _uses(transport, "__init__", *timer) and _uses(transport, "handle_request", *timer)
        ),
        "StreamableHTTPServerTransport.is_terminated is a property": isinstance(
            inspect.getattr_static(transport, "is_terminated", None), property
        ),
        "OAuthClientProvider.async_auth_flow runs the flow of _auth_flow": _uses(
            provider, "async_auth_flow", "_auth_flow"
        ),
        "OAuthClientProvider._auth_flow is an async generator that loads, refreshes and signs requests": (
            inspect.isasyncgenfunction(getattr(provider, "_auth_flow", None))
            and _uses(provider, "_auth_flow", *steps)
        ),
        "OAuthClientProvider._initialize is a coroutine that sets _initialized": (
            inspect.iscoroutinefunction(getattr(provider, "_initialize", None))
            and _uses(provider, "_initialize", "_initialized")
        ),
        "OAuthClientProvider._refresh_token and _handle_refresh_response are coroutines": all(
            inspect.iscoroutinefunction(getattr(provider, name, None))
            for name in ("_refresh_token", "_handle_refresh_response")
        ),
        "OAuthClientProvider._add_auth_header is a plain method": inspect.isfunction(
            getattr(provider, "_add_auth_header", None)
        ),
        "ClientSession.send_request stamps with _stamp and sends on _dispatcher.send_raw_request": _uses(
            session, "send_request", "_stamp", "_dispatcher", "send_raw_request"
        ),
        "ClientSession answers server requests with the coroutine _on_request(dctx, method, params)": (
            inspect.iscoroutinefunction(getattr(session, "_on_request", None))
            and list(inspect.signature(session._on_request).parameters)
            == ["self", "dctx", "method", "params"]
            and _uses(session, "__aenter__", "_on_request")
        ),
        "ClientSession declares its capabilities with _build_capabilities(version) at the handshake": (
            list(inspect.signature(getattr(session, "_build_capabilities", lambda: None)).parameters)
            == ["self", "version"]
            and _uses(session, "initialize", "_build_capabilities")
        ),
    }
    return [what for what, present in expected.items() if not present]


IncompatibleLibraryError.require("mcp", WRITTEN_FOR, problems())
