"""The gateway's two bus conversations: the supervisor subscription, and calls to workers.

Sockets: the gateway connects a DEALER (`gateway`) to the supervisor's control
ROUTER, and binds the `calls` ROUTER that every worker connects to.
A call is routed to the worker identity `w/<server>/<generation>` that the
supervisor reported as running. When that generation stops, every call still
in flight to it fails at once with PeerGoneError.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from bus.codec import TO_GATEWAY, WORKER_TO_GATEWAY
from bus.errors import BusError, PeerGoneError, UnknownToolError, UpstreamError
from bus.messages import (
    AccessPolicy,
    AskAnswered,
    Attach,
    Attached,
    CallFailed,
    CallLimits,
    CallProgress,
    CallTool,
    CancelCall,
    ClientCommand,
    ClientResult,
    CommandResult,
    ConfigAction,
    ConfigCommand,
    ConfigResult,
    ConfigSource,
    ControlAction,
    ControlCommand,
    ForwardRequest,
    ForwardResult,
    KnownSecrets,
    Message,
    Notice,
    ResultLimits,
    SecretAction,
    SecretCommand,
    SecretResult,
    ServerCatalog,
    ServerChanged,
    ServerRemoved,
    ServerStatus,
    ServerTools,
    Snapshot,
    Subscribe,
    SupervisorToGateway,
    ToolResult,
    UpstreamAsked,
    UpstreamNotified,
    WorkerToGateway,
    worker_identity,
)
from bus.transport import DealerChannel, RouterChannel, bind_router, connect_dealer
from gateway import trace_context
from gateway.asks import Asking
from gateway.in_flight import (
    LOG_FLUSH_S,
    NO_OPTIONS,
    CallOptions,
    Pending,
    Progress,
    log_to_caller,
    put_question,
)
from gateway.on_demand import Starter
from gateway.registry import Registry
from services.runtime import gateway_identity

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S: Final = 10.0
SUBSCRIBE_RETRY_S: Final = 2.0
ROUTE_SETTLE_S: Final = 1.0
"""How long after a dropped worker connection its route may still look alive (libzmq tears it down
asynchronously; ~ms here): the calls in flight are probed for this long."""
ROUTE_PROBE_S: Final = 0.05


Reply = CommandResult | SecretResult | ConfigResult | ClientResult


class CallTimeoutError(UpstreamError):
    """The upstream did not answer within call_tool_timeout."""


class UpstreamReplyError(UpstreamError):
    """The upstream answered a forwarded request with a JSON-RPC error (`code`, when it gave one)."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code


class Upstreams:
    """Routes tool calls to workers and keeps the registry in sync with the supervisor."""

    def __init__(self, registry: Registry, control_endpoint: str, calls_endpoint: str) -> None:
        self.registry = registry
        self.control_endpoint = control_endpoint
        self.calls_endpoint = calls_endpoint
        self._ids = itertools.count(1)
        self._pending: dict[int, Pending] = {}
        self._commands: dict[int, tuple[trio.Event, list[Reply]]] = {}
        self.on_notice: Callable[[str, Any], None] = lambda event, data: None
        self.on_tools: Callable[[str, int], None] = lambda server, count: None
        self.on_known_secrets: Callable[[list[str]], None] = lambda values: None
        self.on_access: Callable[[], None] = lambda: None
        self.on_result_limits: Callable[[ResultLimits], None] = lambda limits: None
        self.on_call_limits: Callable[[CallLimits], None] = lambda limits: None
        self.on_upstream_notice: Callable[[UpstreamNotified], None] = lambda notice: None
        """An upstream's log message or resource update, to relay to MCP clients (from the calls loop)."""
        self.secrets_backend = ""
        self._control: DealerChannel[SupervisorToGateway] | None = None
        self._calls: RouterChannel[WorkerToGateway] | None = None
        self._live: dict[str, bytes] = {}
        self._draining: dict[str, bytes] = {}
        """Per server, a generation stopped politely: it takes no new calls, its calls in flight go on."""
        self.synced = trio.Event()
        self.starter = Starter(registry, self._live.get, lambda server: self.command("start", server))
        """Starts an on-demand server a call needs (gateway/on_demand.py)."""

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._calls = bind_router(self.calls_endpoint, WORKER_TO_GATEWAY)
        self._control = connect_dealer(
            self.control_endpoint, gateway_identity(), TO_GATEWAY, watch_connects=True
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._calls_loop)
                nursery.start_soon(self._control_loop)
                nursery.start_soon(self._fail_unreachable)
                nursery.start_soon(self._resubscribe_on_reconnect)
                task_status.started()
        finally:
            self._calls.close()
            self._control.close()

    # --- supervisor ----------------------------------------------------------

    async def _control_loop(self) -> None:
        assert self._control is not None
        await self._control.send(Subscribe())
        while True:
            with trio.move_on_after(SUBSCRIBE_RETRY_S) as scope:
                try:
                    message = await self._control.receive()
                except BusError as exc:
                    logger.warning("dropped a bad message from the supervisor: %s", exc)
                    continue
            if scope.cancelled_caught:
                if not self.synced.is_set():
                    await self._control.send(Subscribe())
                continue
            match message:
                case Snapshot(servers=servers, tools=tools, secrets_backend=backend):
                    self.secrets_backend = backend
                    self.registry.replace_all(servers, tools, message.catalogs)
                    for status in servers:
                        self._track(status)
                    self.synced.set()
                case ServerChanged(status=status):
                    self.registry.update(status)
                    self._track(status)
                case ServerTools(server=server, generation=generation, tools=tools):
                    self.registry.set_tools(server, generation, tools)
                    self.on_tools(server, len(tools))
                case ServerCatalog(server=server, generation=generation, catalog=catalog):
                    self.registry.set_catalog(server, generation, catalog)
                case Notice(event=event, data=data):
                    self.on_notice(event, json.loads(data))
                case KnownSecrets(values=values):
                    self.on_known_secrets(values)
                case AccessPolicy():
                    self.registry.access = message
                    self.on_access()
                case ResultLimits():
                    self.on_result_limits(message)
                case CallLimits():
                    self.on_call_limits(message)
                case ServerRemoved(name=name):
                    self.registry.remove(name)
                    self._fail_identity(self._live.pop(name, b""), f"server {name!r} was removed")
                    self._fail_identity(self._draining.pop(name, b""), f"server {name!r} was removed")
                case (
                    CommandResult(request_id=request_id)
                    | SecretResult(request_id=request_id)
                    | ConfigResult(request_id=request_id)
                    | ClientResult(request_id=request_id)
                ):
                    waiter = self._commands.get(request_id)
                    if waiter is not None:
                        waiter[1].append(message)
                        waiter[0].set()

    def _track(self, status: ServerStatus) -> None:
        identity = worker_identity(status.name, status.generation)
        old = self._live.get(status.name) or self._draining.pop(status.name, None)
        if status.state == "running" and not status.draining:
            self._live[status.name] = identity
        else:
            self._live.pop(status.name, None)
        if status.state == "running" and status.draining:
            # Its calls in flight finish; new ones wait for the next generation (gateway/on_demand.py).
            self._draining[status.name] = identity
            return
        if old is not None and old != self._live.get(status.name):
            reason = status.last_error or f"server is {status.state}"
            self._fail_identity(old, f"server {status.name!r} went away during the call: {reason}")

    async def _request(self, build: Callable[[int], Message], timeout_s: float = COMMAND_TIMEOUT_S) -> Reply:
        assert self._control is not None
        request_id = next(self._ids)
        event = trio.Event()
        box: list[Reply] = []
        self._commands[request_id] = (event, box)
        try:
            await self._control.send(build(request_id))
            with trio.move_on_after(timeout_s):
                await event.wait()
        finally:
            self._commands.pop(request_id, None)
        if not box:
            raise BusError(f"the supervisor did not answer within {timeout_s:g}s")
        return box[0]

    async def command(
        self,
        action: ControlAction,
        server: str,
        tools: list[str] | None = None,
        timeout_s: float = COMMAND_TIMEOUT_S,
        prompts: list[str] | None = None,
    ) -> CommandResult:
        """Ask the supervisor to act on a server."""
        result = await self._request(
            lambda rid: ControlCommand(
                request_id=rid, action=action, server=server, tools=tools, prompts=prompts
            ),
            timeout_s,
        )
        assert isinstance(result, CommandResult)
        return result

    async def config(
        self,
        action: ConfigAction,
        server: str = "",
        body: Any = None,
        source: ConfigSource = "rest",
        keyed: bool = False,
    ) -> ConfigResult:
        """Read or change the configuration through its one writer, the supervisor."""
        payload = json.dumps(body).encode()
        result = await self._request(
            lambda rid: ConfigCommand(
                request_id=rid, action=action, server=server, body=payload, source=source, keyed=keyed
            )
        )
        assert isinstance(result, ConfigResult)
        return result

    async def secret(self, action: SecretAction, name: str = "", value: str = "") -> SecretResult:
        """List, set or delete a secret through the supervisor (which owns the store)."""
        result = await self._request(
            lambda rid: SecretCommand(request_id=rid, action=action, name=name, value=value)
        )
        assert isinstance(result, SecretResult)
        return result

    async def client(self, command: Callable[[int], ClientCommand]) -> ClientResult:
        """List, add, rotate or revoke a client credential through the supervisor (gateway/clients.py)."""
        result = await self._request(command)
        assert isinstance(result, ClientResult)
        return result

    # --- workers -------------------------------------------------------------

    async def _calls_loop(self) -> None:
        assert self._calls is not None
        while True:
            try:
                peer, message = await self._calls.receive()
            except BusError as exc:
                logger.warning("dropped a bad message from a worker: %s", exc)
                continue
            match message:
                case Attach():
                    with contextlib.suppress(PeerGoneError):
                        await self._calls.send(peer, Attached())
                case CallProgress(request_id=request_id):
                    pending = self._pending.get(request_id)
                    if pending is not None and pending.on_progress is not None and pending.identity == peer:
                        # Relayed from its own task: a slow client must not stall this loop.
                        self._nursery.start_soon(
                            pending.on_progress, message.progress, message.total, message.message
                        )
                case (
                    ToolResult(request_id=request_id)
                    | ForwardResult(request_id=request_id)
                    | CallFailed(request_id=request_id)
                ):
                    pending = self._pending.get(request_id)
                    if pending is not None and pending.identity == peer:
                        pending.reply = message
                        pending.done.set()
                case UpstreamNotified(server=server):
                    if self._live.get(server) == peer:  # only the current generation speaks for a server
                        self.on_upstream_notice(message)
                        pending = self._pending.get(message.request_id or 0)
                        if pending is not None and pending.on_log is not None and pending.identity == peer:
                            log_to_caller(self._nursery, pending, message.params)
                case UpstreamAsked(request_id=request_id):
                    pending = self._pending.get(request_id)
                    if pending is not None and pending.identity == peer and not pending.done.is_set():
                        self._nursery.start_soon(put_question, self._calls, peer, pending, message)
                    else:
                        with contextlib.suppress(BusError):
                            await self._calls.send(
                                peer, AskAnswered(ask_id=message.ask_id, error="no such call", code=-32600)
                            )

    async def _resubscribe_on_reconnect(self) -> None:
        """Over tcp://, the supervisor can come back as a new run (its pod moved) while this gateway lives
        on: each time the control connection is made again, subscribe again; the Snapshot replaces the
        registry. The first connection's Subscribe is harmless: the supervisor answers with a Snapshot."""
        assert self._control is not None
        first = True
        while True:
            await self._control.connected()
            if not first:
                logger.info("control connection to the supervisor made again: subscribing again")
                await self._control.send(Subscribe())
            first = False

    async def _fail_unreachable(self) -> None:
        """Over tcp://, a worker's connection can drop while its process lives on (a network partition):
        the supervisor sees no exit, so the calls in flight to it fail here, once the connection has
        dropped (at most the bus heartbeat's deadline after the link went silent)."""
        assert self._calls is not None
        while True:
            await self._calls.disconnected()
            # libzmq reports the drop before it removes the route: watch the suspects for a moment.
            with trio.move_on_after(ROUTE_SETTLE_S):
                while suspects := {p.identity for p in self._pending.values() if not p.done.is_set()}:
                    for identity in suspects:
                        if not self._calls.probe_nowait(identity, Attached()):  # a live worker ignores it
                            server = (identity.decode(errors="replace").split("/")[1:2] or ["?"])[0]
                            self._fail_identity(identity, f"the bus connection to server {server!r} was lost")
                    await trio.sleep(ROUTE_PROBE_S)

    def _fail_identity(self, identity: bytes, reason: str) -> None:
        for pending in self._pending.values():
            if pending.identity == identity and not pending.done.is_set():
                pending.gone = reason
                pending.done.set()

    async def call(
        self, server: str, tool: str, arguments: bytes, options: CallOptions = NO_OPTIONS
    ) -> bytes:
        """Call `tool` on `server`; return the upstream's result JSON bytes, unchanged (a
        CallToolResult, or an InputRequiredResult for a 2026-era caller)."""
        reply = await self._exchange(
            server,
            lambda request_id, timeout: CallTool(
                request_id=request_id,
                tool=tool,
                arguments=arguments,
                timeout_s=timeout,
                want_progress=options.progress is not None,
                want_logs=options.on_log is not None,
                asks=options.asking.methods if options.asking is not None else (),
                input_required=options.input_required,
                input_responses=options.input_responses,
                request_state=options.request_state,
                task=options.task,
                traceparent=trace_context.OUTBOUND.get() if trace_context.enabled else None,
            ),
            options.timeout_s,
            options.progress,
            options.asking,
            options.on_log,
            tool=tool,
        )
        if isinstance(reply, CallFailed):
            if reply.kind == "timeout":
                raise CallTimeoutError(reply.error)
            raise UpstreamError(reply.error)
        assert isinstance(reply, ToolResult)
        return reply.result

    async def forward(
        self,
        server: str,
        method: str,
        params: bytes,
        timeout_s: float | None = None,
        asking: Asking | None = None,
        *,
        prompt: str | None = None,
    ) -> bytes:
        """Send `method` with `params` (JSON bytes) to `server`'s upstream; return its result JSON bytes.

        Raises UpstreamReplyError when the upstream answers with an error, CallTimeoutError,
        PeerGoneError (not running, or its worker died meanwhile) or UnknownToolError; StartRefusedError
        when `prompt` (the prompt a `prompts/get` names) is held in the generation started for it.
        """
        reply = await self._exchange(
            server,
            lambda request_id, timeout: ForwardRequest(
                request_id=request_id,
                method=method,
                params=params,
                timeout_s=timeout,
                asks=asking.methods if asking is not None else (),
            ),
            timeout_s,
            None,
            asking,
            prompt=prompt,
        )
        if isinstance(reply, CallFailed):
            if reply.kind == "timeout":
                raise CallTimeoutError(reply.error)
            raise UpstreamReplyError(reply.error, reply.code)
        assert isinstance(reply, ForwardResult)
        return reply.result

    async def _exchange(
        self,
        server: str,
        build: Callable[[int, float], Message],
        timeout_s: float | None,
        progress: Progress | None,
        asking: Asking | None = None,
        on_log: Callable[[bytes], Awaitable[None]] | None = None,
        *,
        tool: str | None = None,
        prompt: str | None = None,
    ) -> ToolResult | ForwardResult | CallFailed:
        """One request to `server`'s worker, in the in-flight table: a dead worker fails it at once.
        An on-demand server is started first (`tool`, `prompt`: checked again once it runs)."""
        assert self._calls is not None
        status = self.registry.servers.get(server)
        identity = self._live.get(server)
        if status is None:
            raise UnknownToolError(f"unknown server {server!r}")
        if identity is None:
            identity = await self.starter.start(server, status, tool, prompt=prompt)
            status = self.registry.servers.get(server, status)
        timeout = status.call_timeout_s if timeout_s is None else timeout_s
        request_id = next(self._ids)
        pending = Pending(identity, on_progress=progress, asking=asking, on_log=on_log)
        self._pending[request_id] = pending
        try:
            try:
                await self._calls.send_soon(identity, build(request_id, timeout))  # then waits below
            except PeerGoneError as exc:
                raise PeerGoneError(f"server {server!r} is not reachable right now") from exc
            # The worker enforces `timeout`; our own deadline only covers a frozen worker.
            with trio.move_on_after(timeout + 1.0) as scope:
                await pending.done.wait()
            if scope.cancelled_caught:
                raise CallTimeoutError(f"server {server!r} did not answer within {timeout:g}s")
        except trio.Cancelled:
            with trio.CancelScope(shield=True), trio.move_on_after(0.5), contextlib.suppress(BusError):
                await self._calls.send(identity, CancelCall(request_id=request_id))
            raise
        finally:
            self._pending.pop(request_id, None)
            for question in pending.questions:
                question.cancel()
            if pending.logs is not None:
                pending.logs.close()
        if pending.logs_sent is not None:
            with trio.move_on_after(LOG_FLUSH_S):
                await pending.logs_sent.wait()
        if pending.gone is not None:
            raise PeerGoneError(pending.gone)
        assert pending.reply is not None
        return pending.reply
