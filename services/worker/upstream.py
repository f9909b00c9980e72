"""Open an MCP client session to one upstream, whatever its transport."""

from __future__ import annotations

import http
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import httpx2
import mcp.types as types
import trio
from mcp.client.session import ClientSession, MessageHandlerFnT
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from bus.errors import LoginRequiredError, UpstreamError
from bus.messages import ToolInfo, UpstreamSpec
from services import process
from services.secrets import SecretStore
from services.upstream_log import RotatingLog
from services.worker.client_tasks import ClientTasks, TaskAnsweringSession
from services.worker.oauth import ProxyOAuth, open_oauth
from services.worker.stdio import StdioUpstream, open_stdio_upstream
from services.worker.tasks import status_binding

if TYPE_CHECKING:
    from services.worker.asks import AskRelay
    from services.worker.docker_stdio import DockerUpstream

logger = logging.getLogger(__name__)

CLIENT_INFO: Final = types.Implementation(name="mcpproxy", version="0.1.0")
HTTP_TIMEOUT_S: Final = 30.0


def tool_info(tool: types.Tool) -> ToolInfo:
    """Keep the upstream's definition as it was sent (camelCase JSON for schemas and annotations)."""
    dumped = tool.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return ToolInfo(
        name=tool.name,
        description=tool.description or "",
        title=tool.title,
        input_schema=dumped.get("inputSchema") or {"type": "object"},
        output_schema=dumped.get("outputSchema"),
        annotations=dumped.get("annotations"),
        meta=dumped.get("_meta"),
        execution=dumped.get("execution"),
    )


async def list_all_tools(session: ClientSession) -> list[ToolInfo]:
    """Every page of tools/list."""
    tools: list[ToolInfo] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(tool_info(tool) for tool in page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


class Upstream:
    """A connected, initialized upstream session plus what we know about its process."""

    def __init__(
        self,
        session: ClientSession,
        stdio: StdioUpstream | DockerUpstream | None,
        auth: ProxyOAuth | None = None,
    ) -> None:
        self.session = session
        self.stdio = stdio
        self.auth = auth
        """OAuth for a remote upstream: `auth.broken` means it needs a person to sign in again."""
        self.gone = stdio.closed if stdio is not None else trio.Event()

        self._failure: str | None = None

    @property
    def exit_reason(self) -> str:
        if self.stdio is not None and self.stdio.exit_reason:
            return self.stdio.exit_reason
        return self._failure or "upstream connection closed"

    def fail(self, reason: str) -> None:
        """A remote upstream is unreachable: end this worker so the supervisor reconnects with backoff."""
        self._failure = reason
        self.gone.set()


def status_phrase(response: httpx2.Response) -> str:
    try:
        return response.reason_phrase or http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def shown_url(url: httpx2.URL) -> str:
    """A request URL as errors name it: no credentials, no query, no fragment (they may hold secrets)."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def http_error(response: httpx2.Response) -> str:
    """`HTTP 404 Not Found from http://host/mcp`."""
    return f"HTTP {response.status_code} {status_phrase(response)} from {shown_url(response.request.url)}"


def leaves(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: the members of exception groups and the causes, depth first."""
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        elif current.__cause__ is not None:
            stack.append(current.__cause__)
    return seen


def login_required(exc: BaseException) -> LoginRequiredError | None:
    """The sign-in request inside `exc` (a nursery may have wrapped it in a group), if any."""
    return next((item for item in leaves(exc) if isinstance(item, LoginRequiredError)), None)


def describe_error(exc: BaseException) -> str:
    """One line for `last_error`: an HTTP status when there is one, else the innermost message."""
    if isinstance(exc, UpstreamError):
        return str(exc)
    seen = leaves(exc)
    for item in seen:
        if isinstance(item, UpstreamError):
            return str(item)
        if isinstance(item, httpx2.HTTPStatusError):
            return http_error(item.response)
    for item in seen:
        if isinstance(item, httpx2.ConnectError | httpx2.ConnectTimeout):
            return f"cannot connect: {item}"
    leaf = seen[-1]
    return str(leaf) or type(leaf).__name__


async def _initialize(session: ClientSession, spec: UpstreamSpec, closed: trio.Event | None) -> None:
    """`initialize` within `init_timeout`; an upstream that exits meanwhile fails at once."""
    done = False
    with trio.move_on_after(spec.init_timeout_s) as scope:
        async with trio.open_nursery() as nursery:
            if closed is not None:
                nursery.start_soon(_cancel_when, closed, nursery.cancel_scope)
            await _open_session(session, spec)
            done = True
            nursery.cancel_scope.cancel()
    if scope.cancelled_caught:
        raise UpstreamError(f"initialize did not finish within init_timeout ({spec.init_timeout_s:g}s)")
    if not done:
        raise UpstreamError("upstream exited during initialize")


Tap = Callable[[Any], Awaitable[None]]
"""Sees every message from the upstream, in the order it came, before the session handles it."""


class InOrder:
    """The session's read stream, with `tap` awaited on each message before the session gets it.

    The session hands notifications to its message handler in tasks of their own, so a log line
    the upstream wrote before a call's answer could be relayed after it; a tap sees it first.
    """

    def __init__(self, stream: Any, tap: Tap) -> None:
        self._stream = stream
        self._tap = tap

    async def receive(self) -> Any:
        item = await self._stream.receive()
        await self._tap(item)
        return item

    async def aclose(self) -> None:
        await self._stream.aclose()

    def __aiter__(self) -> InOrder:
        return self

    async def __anext__(self) -> Any:
        item = await self._stream.__anext__()
        await self._tap(item)
        return item

    async def __aenter__(self) -> InOrder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _tapped(stream: Any, tap: Tap | None) -> Any:
    return stream if tap is None else InOrder(stream, tap)


def _asking(asks: AskRelay | None) -> dict[str, Any]:
    """The session callbacks that declare elicitation (form and URL), sampling (with tools) and roots
    to the upstream, and put its questions to the caller (services/worker/asks.py)."""
    if asks is None:
        return {}
    return {
        "sampling_callback": asks.on_sampling,
        "elicitation_callback": asks.on_elicitation,
        "list_roots_callback": asks.on_list_roots,
        "sampling_capabilities": types.SamplingCapability(tools=types.SamplingToolsCapability()),
        "log_level": "debug",  # a 2026-era upstream logs per request, on opt-in: take every level
    }


async def _client_tasks(stack: AsyncExitStack, asks: AskRelay | None) -> ClientTasks | None:
    """The tasks the upstream may ask the worker to run (services/worker/client_tasks.py), running as
    long as the connection (closed after the session: the stack unwinds in reverse)."""
    if asks is None:
        return None
    tasks = ClientTasks(asks)
    await stack.enter_async_context(tasks.running())
    return tasks


async def _open_session(session: ClientSession, spec: UpstreamSpec) -> None:
    """Speak the upstream's era: the 2025 handshake (a session, standing notifications) unless the
    config says 2026-07-28, or says `auto` and the upstream refuses the handshake."""
    if spec.protocol_version == "2026-07-28":
        await session.discover()
        return
    try:
        await session.initialize()
    except MCPError:
        if spec.protocol_version != "auto":
            raise
        await session.discover()


class StatusRecorder:
    """An httpx2 response hook that remembers the last HTTP error, which the SDK reports only vaguely."""

    def __init__(self) -> None:
        self.last: str | None = None

    async def __call__(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self.last = http_error(response)


async def _open_remote(
    stack: AsyncExitStack,
    spec: UpstreamSpec,
    transport: str,
    message_handler: MessageHandlerFnT,
    auth: ProxyOAuth | None,
    asks: AskRelay | None,
    tap: Tap | None,
) -> ClientSession:
    assert spec.url is not None
    recorder = StatusRecorder()
    try:
        if transport == "sse":
            oauth = auth

            def factory(
                headers: dict[str, str] | None = None,
                timeout: httpx2.Timeout | None = None,
                auth: httpx2.Auth | None = None,
            ) -> httpx2.AsyncClient:
                return httpx2.AsyncClient(
                    headers=headers,
                    timeout=timeout,
                    auth=auth or oauth,
                    follow_redirects=True,
                    event_hooks={"response": [recorder]},
                )

            read, write = await stack.enter_async_context(
                sse_client(
                    spec.url, headers=spec.headers, timeout=HTTP_TIMEOUT_S, httpx_client_factory=factory
                )
            )
        else:
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=spec.headers,
                    timeout=HTTP_TIMEOUT_S,
                    auth=auth,
                    follow_redirects=True,
                    event_hooks={"response": [recorder]},
                )
            )
            read, write = await stack.enter_async_context(
                streamable_http_client(spec.url, http_client=client)
            )
        session = await stack.enter_async_context(
            TaskAnsweringSession(
                _tapped(read, tap),
                write,
                client_info=CLIENT_INFO,
                message_handler=message_handler,
                notification_bindings=[status_binding(message_handler)],
                **_asking(asks),
                client_tasks=await _client_tasks(stack, asks),
            )
        )
        await _initialize(session, spec, auth.broken if auth is not None else None)
    except Exception as exc:
        if auth is not None and auth.failure is not None:
            raise auth.failure from exc
        if recorder.last is not None:
            raise UpstreamError(f"{recorder.last}: {describe_error(exc)}") from exc
        raise
    return session


@asynccontextmanager
async def open_upstream(
    spec: UpstreamSpec,
    log: RotatingLog,
    on_spawn: Callable[[process.Child], None],
    message_handler: MessageHandlerFnT,
    store: SecretStore | None = None,
    on_login_url: Callable[[str], Awaitable[None]] | None = None,
    asks: AskRelay | None = None,
    tap: Tap | None = None,
) -> AsyncIterator[Upstream]:
    """Connect and initialize within `spec.init_timeout_s`; the exit stops the upstream (staged).

    A remote upstream signs in with OAuth (tokens from `store`) unless its config sets an
    Authorization header; `on_login_url` receives the authorization URL of a person-led sign-in.
    """
    async with AsyncExitStack() as stack:
        if spec.protocol == "stdio":
            assert spec.command is not None
            stdio: StdioUpstream | DockerUpstream
            if spec.container is not None:  # Docker isolation: the same streams, from a container
                # Imported here: the docker SDK costs ~0.5 s to import, and most servers never need it.
                from services.worker.docker_stdio import open_docker_upstream

                stdio = await stack.enter_async_context(open_docker_upstream(spec, log))
            else:
                stdio = await stack.enter_async_context(
                    open_stdio_upstream(
                        spec.command,
                        spec.args,
                        spec.env,
                        spec.working_dir,
                        log,
                        spec.close_timeout_s,
                        spec.kill_timeout_s,
                        on_spawn,
                        spec.limits,
                    )
                )
            session: ClientSession = await stack.enter_async_context(
                TaskAnsweringSession(
                    _tapped(stdio.read_stream, tap),
                    stdio.write_stream,
                    client_info=CLIENT_INFO,
                    message_handler=message_handler,
                    notification_bindings=[status_binding(message_handler)],
                    **_asking(asks),
                    client_tasks=await _client_tasks(stack, asks),
                )
            )
            try:
                await _initialize(session, spec, stdio.closed)
            except UpstreamError as exc:
                if stdio.closed.is_set():
                    raise UpstreamError(f"upstream failed during initialize: {stdio.exit_reason}") from exc
                raise
            yield Upstream(session, stdio)
            return
        transport = spec.protocol
        auth = None
        if not any(key.lower() == "authorization" for key in spec.headers):
            nursery = await stack.enter_async_context(trio.open_nursery())  # the sign-in callback listener
            stack.callback(nursery.cancel_scope.cancel)
            auth = await open_oauth(spec, store, nursery, on_login_url or _no_person)
        try:
            async with AsyncExitStack() as attempt:
                session = await _open_remote(attempt, spec, transport, message_handler, auth, asks, tap)
                stack.push_async_exit(attempt.pop_all())
        except LoginRequiredError:
            raise
        except Exception as exc:  # a remote that does not speak streamable HTTP may speak SSE
            if not spec.fallback_sse:
                raise UpstreamError(describe_error(exc)) from exc
            log.note(f"streamable HTTP failed ({describe_error(exc)}); trying SSE")
            transport = "sse"
            try:
                session = await _open_remote(stack, spec, transport, message_handler, auth, asks, tap)
            except LoginRequiredError:
                raise
            except Exception as sse_exc:
                raise UpstreamError(
                    f"{describe_error(exc)}; SSE fallback: {describe_error(sse_exc)}"
                ) from sse_exc
        log.note(
            f"connected over {transport}" + (" (signed in with OAuth)" if auth and auth.signed_in else "")
        )
        yield Upstream(session, None, auth)


async def _no_person(url: str) -> None:
    raise LoginRequiredError("no one to sign in")


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
