"""The worker: one process, one upstream. Talks to the supervisor (control) and the gateway (calls).

Lifetime: Hello -> StartUpstream -> connect and initialize -> Attach to the
gateway -> WorkerReady -> serve calls until Shutdown, upstream exit, or the
lifeline (our stdin, a pipe from the supervisor) reaches EOF. Every exit path
stops the upstream with the staged stop before the process ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import trio
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import JSONRPCNotification

from bus.errors import BusError, LoginRequiredError, ProxyError
from bus.messages import (
    AskAnswered,
    AskMethod,
    Attach,
    Attached,
    CallFailed,
    CallProgress,
    CallTool,
    CancelCall,
    CatalogChanged,
    ForwardRequest,
    ForwardResult,
    GatewayToWorker,
    Heartbeat,
    LoginStarted,
    Shutdown,
    StartUpstream,
    SupervisorToWorker,
    ToolResult,
    ToolsChanged,
    UpstreamAsked,
    UpstreamHealth,
    UpstreamNotified,
    UpstreamSpawned,
    WorkerFailed,
    WorkerHello,
    WorkerReady,
    worker_identity,
)
from bus.transport import DealerChannel
from services import process
from services.references import resolve
from services.secrets import SecretStore
from services.upstream_log import RotatingLog
from services.worker.asks import AskRelay, call_answering
from services.worker.catalog import (
    CATALOG_CHANGES,
    RELAYED,
    brief,
    catalog_or_empty,
    forward,
    method_of,
    params_of,
    summary_of,
)
from services.worker.gateways import GatewayLinks, connect_calls
from services.worker.health import cancel_when_set, send_heartbeats, watch_health, watch_lifeline
from services.worker.log_format import hide_in_log
from services.worker.raw_calls import raw_lane, takes_raw
from services.worker.tasks import required_tasks, run_as_task, start_task
from services.worker.traces import serve_traced
from services.worker.upstream import (
    Upstream,
    describe_error,
    list_all_tools,
    login_required,
    open_upstream,
)

logger = logging.getLogger(__name__)

LOG_MESSAGE: Final = "notifications/message"
HELLO_TIMEOUT_S: Final = 10.0
ATTACH_TIMEOUT_S: Final = 10.0
EXIT_FAILED: Final = 1


class Worker:
    """The actor. Built by `run_worker`; one instance per process."""

    def __init__(self, server: str, generation: int, control: DealerChannel[SupervisorToWorker]) -> None:
        self.server = server
        self.generation = generation
        self.identity = worker_identity(server, generation)
        self.control = control
        self.calls: DealerChannel[GatewayToWorker] | GatewayLinks | None = None
        self.upstream: Upstream | None = None
        self.in_flight: dict[int, trio.CancelScope] = {}
        self.served = 0
        """Calls and forwarded requests this generation has begun (its heartbeats report it)."""
        self.last_active = trio.current_time()
        """When the last of them ended (the idle stop of an on-demand server counts from it)."""
        self.stop_requested = trio.Event()
        self.tools_changed = trio.Event()
        self.catalog_changed = trio.Event()
        self.raw_tools: frozenset[str] = frozenset()
        """Tools a stdio upstream is called through the raw lane for (services/worker/raw_calls.py)."""
        self.task_required: frozenset[str] = frozenset()
        """Tools the upstream runs only as tasks: a plain call of one waits for its task (tasks.py)."""
        self.ping_interval_s = 10.0
        self.login_required = False
        """The upstream needs a person to sign in (OAuth): the supervisor waits instead of retrying."""
        self._scrub: Callable[[str], str] = lambda text: text
        self.asks = AskRelay([], self._send_ask)
        """The upstream's questions (elicitation, sampling, roots), put to the caller that caused them."""
        self.call_body: Callable[[CallTool], Awaitable[bytes]] = self._call_body  # (traces.py wraps it)

    async def run(self, lifeline_fd: int | None) -> int:
        await self.control.send(WorkerHello(server=self.server, generation=self.generation, pid=os.getpid()))
        start = None
        with trio.move_on_after(HELLO_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                # A stop can come before the upstream spec does: then there is nothing to do.
                nursery.start_soon(cancel_when_set, self.stop_requested, nursery.cancel_scope)
                start = await self.control.receive()
                nursery.cancel_scope.cancel()
        if start is None:
            if self.stop_requested.is_set():
                return 0
            logger.error("server %s: no StartUpstream within %gs; exiting", self.server, HELLO_TIMEOUT_S)
            return EXIT_FAILED
        if not isinstance(start, StartUpstream):
            logger.error("expected StartUpstream, got %s", type(start).__name__)
            return EXIT_FAILED
        spec = start.spec
        log = RotatingLog(Path(spec.log_path), spec.log_max_bytes) if spec.log_path else None
        assert log is not None, "the supervisor always sends a log path"
        error: str | None = None  # (stays None when a stop cancels the connect)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_heartbeats, self.control.send, self._beat)
                nursery.start_soon(self._control_loop)
                if lifeline_fd is not None:
                    nursery.start_soon(watch_lifeline, lifeline_fd, self.server, self.stop_requested)
                nursery.start_soon(self._cancel_on_stop, nursery.cancel_scope)
                error = await serve_traced(self, spec, lambda: self._serve(start, log))
                nursery.cancel_scope.cancel()
        finally:
            log.close()
        if error is None:
            return 0
        logger.error("server %s: %s", self.server, error)
        with trio.move_on_after(1.0):
            await self.control.send(
                WorkerFailed(
                    server=self.server,
                    generation=self.generation,
                    error=error,
                    login_required=self.login_required,
                )
            )
        return EXIT_FAILED

    async def _serve(self, start: StartUpstream, log: RotatingLog) -> str | None:
        """Connect, attach and serve; return an error text, or None after a requested stop."""
        self.ping_interval_s = start.spec.ping_interval_s
        try:
            store = (
                SecretStore(Path(start.spec.secrets_dir), start.spec.secrets_backend)
                if start.spec.secrets_dir
                else None
            )
            resolution = await resolve(start.spec, store)
        except ProxyError as exc:
            return str(exc)
        spec = resolution.spec
        self._scrub = resolution.scrub
        self.asks = AskRelay(spec.roots, self._send_ask)
        # What the upstream receives stays out of our log lines and its log file from here on.
        hide_in_log(resolution.values)
        log.hide(resolution.values)

        def on_spawn(child: process.Child) -> None:
            msg = UpstreamSpawned(
                server=self.server,
                generation=self.generation,
                pid=child.pid,
                pgid=child.pgid,
                start=child.key[1] if child.key is not None else 0,
            )
            self._send_control_nowait(msg)

        async def on_login_url(url: str) -> None:
            log.note("waiting for a person to sign in (authorization URL sent to the supervisor)")
            await self.control.send(LoginStarted(server=self.server, generation=self.generation, url=url))

        try:
            async with open_upstream(
                spec, log, on_spawn, self._on_upstream_message, store, on_login_url, self.asks, self._tap
            ) as upstream:
                self.upstream = upstream
                if upstream.auth is not None:  # OAuth tokens are scrubbed from errors like any secret
                    self._scrub = upstream.auth.scrubber(resolution.scrub)
                tools = await list_all_tools(upstream.session)
                self.raw_tools = raw_lane(self.upstream.session, tools)
                self.task_required = required_tasks(tools)
                catalog = await catalog_or_empty(upstream.session, self.server, self._scrub)
                info = upstream.session.server_info
                await self._attach(start.calls_endpoint)
                await self.control.send(
                    WorkerReady(
                        server=self.server,
                        generation=self.generation,
                        tools=tools,
                        server_version=info.version if info else None,
                        signed_in=upstream.auth is not None and upstream.auth.signed_in,
                        catalog=catalog,
                        summary=summary_of(upstream.session),
                    )
                )
                logger.info("server %s: ready with %d tools", self.server, len(tools))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._calls_loop, nursery)
                    nursery.start_soon(self._relist_on_change)
                    nursery.start_soon(self._relist_catalog_on_change)
                    nursery.start_soon(
                        watch_health, upstream, self.ping_interval_s, self._scrub, self._report_health
                    )
                    stop_waiter = trio.Event()

                    async def _wait_stop() -> None:
                        await self.stop_requested.wait()
                        stop_waiter.set()

                    async def _wait_gone() -> None:
                        await upstream.gone.wait()
                        stop_waiter.set()

                    async def _wait_signed_out() -> None:
                        assert upstream.auth is not None
                        await upstream.auth.broken.wait()
                        stop_waiter.set()

                    nursery.start_soon(_wait_stop)
                    nursery.start_soon(_wait_gone)
                    if upstream.auth is not None:
                        nursery.start_soon(_wait_signed_out)
                    await stop_waiter.wait()
                    nursery.cancel_scope.cancel()
                if self.stop_requested.is_set():
                    return None
                if upstream.auth is not None and upstream.auth.failure is not None:
                    self.login_required = True
                    return self._scrub(str(upstream.auth.failure))
                return self._scrub(upstream.exit_reason)
        except LoginRequiredError as exc:
            self.login_required = True
            return self._scrub(str(exc))
        except ProxyError as exc:
            return self._scrub(str(exc))
        except Exception as exc:  # task boundary: any failure ends this worker with a reason
            auth = self.upstream.auth if self.upstream is not None else None
            needs_person = login_required(exc) or (auth.failure if auth is not None else None)
            if needs_person is not None:  # (wrapped by a nursery, or signed out while listing tools)
                self.login_required = True
                return self._scrub(str(needs_person))
            return self._scrub(f"upstream failed: {describe_error(exc)}")
        finally:
            for scope in self.in_flight.values():
                scope.cancel()

    async def _send_ask(self, message: UpstreamAsked) -> None:
        assert self.calls is not None, "questions come only while calls are served"
        await self.calls.send(message)

    def _send_control_nowait(self, message: Any) -> None:
        trio.lowlevel.spawn_system_task(self.control.send, message)

    async def _attach(self, endpoint: str) -> None:
        self.calls = connect_calls(endpoint, self.identity)  # one gateway, or each replica
        await self.calls.send(Attach(server=self.server, generation=self.generation))
        with trio.fail_after(ATTACH_TIMEOUT_S):
            while not isinstance(await self.calls.receive(), Attached):
                pass

    async def _calls_loop(self, nursery: trio.Nursery) -> None:
        assert self.calls is not None
        while True:
            try:
                message = await self.calls.receive()
            except BusError as exc:
                logger.warning("dropped a bad message from the gateway: %s", exc)
                continue
            match message:
                case CallTool():
                    nursery.start_soon(self._call, message)
                case ForwardRequest():
                    nursery.start_soon(self._forward, message)
                case CancelCall(request_id=request_id):
                    scope = self.in_flight.get(request_id)
                    if scope is not None:
                        scope.cancel()
                case AskAnswered():
                    self.asks.answered(message)
                case Attached():
                    pass

    async def _call(self, call: CallTool) -> None:
        await self._answer(
            call.request_id,
            call.asks,
            call.timeout_s,
            lambda: self.call_body(call),
            lambda body: ToolResult(request_id=call.request_id, result=body),
            what="call",
            too_slow=f"upstream did not answer within call_tool_timeout ({call.timeout_s:g}s)",
        )

    async def _call_body(self, call: CallTool) -> bytes:
        """The upstream's answer to `call` as JSON bytes, by the lane the call takes."""
        assert self.upstream is not None
        session, stdio = self.upstream.session, self.upstream.stdio
        if call.task is not None:
            return await start_task(session, call)
        if call.tool in self.task_required:
            return await run_as_task(session, call)
        if stdio is not None and takes_raw(call, self.raw_tools):
            return await stdio.raw.call(stdio.raw_lines, call.tool, call.arguments, call.traceparent)
        progress = self._progress_relay(call.request_id) if call.want_progress else None
        result = await call_answering(session, call, self.asks, progress)
        return result.model_dump_json(by_alias=True, exclude_unset=True).encode()

    async def _forward(self, request: ForwardRequest) -> None:
        assert self.upstream is not None
        session = self.upstream.session
        await self._answer(
            request.request_id,
            request.asks,
            request.timeout_s,
            lambda: forward(session, request.method, request.params),
            lambda body: ForwardResult(request_id=request.request_id, result=body),
            what="request",
            too_slow=f"upstream did not answer {request.method} within {request.timeout_s:g}s",
            error_codes=True,
        )

    async def _answer(
        self,
        request_id: int,
        asks: tuple[AskMethod, ...],
        timeout_s: float,
        work: Callable[[], Awaitable[bytes]],
        reply: Callable[[bytes], ToolResult | ForwardResult],
        *,
        what: str,
        too_slow: str,
        error_codes: bool = False,
    ) -> None:
        """Run one request from the gateway within its deadline and send the answer, whatever happens:
        the result, or a CallFailed (`error_codes`: with the upstream's JSON-RPC error code)."""
        assert self.calls is not None
        answer: ToolResult | ForwardResult | CallFailed
        self.served += 1
        with trio.CancelScope() as scope, self.asks.serving(request_id, asks):
            self.in_flight[request_id] = scope
            try:
                with trio.fail_after(timeout_s):
                    answer = reply(await work())
            except trio.TooSlowError:
                answer = CallFailed(request_id=request_id, kind="timeout", error=too_slow)
            except Exception as exc:  # task boundary: every failure becomes a reply
                if error_codes and isinstance(exc, MCPError):
                    error, code = exc.message, exc.code
                else:
                    error, code = describe_error(exc), None
                answer = CallFailed(
                    request_id=request_id, kind="upstream", error=self._scrub(error), code=code
                )
            finally:
                self.in_flight.pop(request_id, None)
                self.last_active = trio.current_time()
        if scope.cancelled_caught:
            answer = CallFailed(request_id=request_id, kind="gone", error=f"{what} cancelled")
        try:
            await self.calls.send_soon(answer)  # the task ends here: no need to yield first
        except BusError as exc:
            logger.warning("could not deliver the answer to a %s: %s", what, exc)

    def _progress_relay(self, request_id: int) -> ProgressFnT:
        async def relay(progress: float, total: float | None, message: str | None) -> None:
            assert self.calls is not None
            with contextlib.suppress(BusError):
                await self.calls.send(
                    CallProgress(request_id=request_id, progress=progress, total=total, message=message)
                )

        return relay

    async def _on_upstream_message(self, message: Any) -> None:
        if (
            isinstance(message, types.ServerNotification)
            and isinstance(
                message.root if hasattr(message, "root") else message, types.ToolListChangedNotification
            )
        ) or isinstance(message, types.ToolListChangedNotification):
            self.tools_changed.set()
            return
        method = method_of(message)
        if method in CATALOG_CHANGES:
            self.catalog_changed.set()
        elif method in RELAYED and method != LOG_MESSAGE and self.calls is not None:
            with contextlib.suppress(BusError):
                await self.calls.send(
                    UpstreamNotified(
                        server=self.server,
                        method=method,
                        params=self._scrub(params_of(message).decode()).encode(),
                    )
                )

    async def _tap(self, item: Any) -> None:
        """Log messages are relayed in the order the upstream sent them, before the session sees the
        rest: one written during a call reaches the gateway before the call's answer does."""
        message = getattr(getattr(item, "message", None), "root", getattr(item, "message", None))
        if (
            not isinstance(message, JSONRPCNotification)
            or message.method != LOG_MESSAGE
            or self.calls is None
        ):
            return
        with contextlib.suppress(BusError):
            await self.calls.send(
                UpstreamNotified(
                    server=self.server,
                    method=LOG_MESSAGE,
                    params=self._scrub(json.dumps(message.params or {})).encode(),
                    request_id=self.asks.only_call(),
                )
            )

    async def _relist_on_change(self) -> None:
        while True:
            await self.tools_changed.wait()
            self.tools_changed = trio.Event()
            assert self.upstream is not None
            try:
                tools = await list_all_tools(self.upstream.session)
            except Exception as exc:  # task boundary
                logger.warning("server %s: re-listing tools failed: %s", self.server, self._scrub(brief(exc)))
                continue
            self.raw_tools = raw_lane(self.upstream.session, tools)
            self.task_required = required_tasks(tools)
            await self.control.send(ToolsChanged(server=self.server, generation=self.generation, tools=tools))

    async def _relist_catalog_on_change(self) -> None:
        while True:
            await self.catalog_changed.wait()
            self.catalog_changed = trio.Event()
            assert self.upstream is not None
            catalog = await catalog_or_empty(self.upstream.session, self.server, self._scrub)
            await self.control.send(
                CatalogChanged(server=self.server, generation=self.generation, catalog=catalog)
            )

    async def _report_health(self, healthy: bool, error: str | None) -> None:
        await self.control.send(
            UpstreamHealth(server=self.server, generation=self.generation, healthy=healthy, error=error)
        )

    def _beat(self) -> Heartbeat:
        busy, idle_s = len(self.in_flight), trio.current_time() - self.last_active
        return Heartbeat(
            server=self.server, generation=self.generation, busy=busy, idle_s=idle_s, served=self.served
        )

    async def _control_loop(self) -> None:
        while True:
            try:
                message = await self.control.receive()
            except BusError as exc:
                logger.warning("dropped a bad message from the supervisor: %s", exc)
                continue
            if isinstance(message, Shutdown):
                self.stop_requested.set()

    async def _cancel_on_stop(self, scope: trio.CancelScope) -> None:
        # When no upstream session exists yet (still connecting), a stop cancels the connect.
        await self.stop_requested.wait()
        if self.upstream is None:
            scope.cancel()
