"""One server's runner: drives its worker through the lifecycle, one generation at a time.

Everything that happens to a server arrives in its inbox (bus messages from
its worker, the worker's exit, commands from the gateway), so the runner is a
single sequential task and its state changes are easy to follow. Its timing
uses trio's clock only (wall-clock time is only reported: `next_retry_at`,
`last_exit.at`), so tests drive the real runner on `trio.testing.MockClock`.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Final, assert_never

import msgspec
import trio

from bus.messages import (
    PROTOCOL_VERSION,
    Catalog,
    CatalogChanged,
    ExitInfo,
    Heartbeat,
    LoginStarted,
    ServerStatus,
    StartUpstream,
    ToolInfo,
    ToolsChanged,
    UpstreamHealth,
    UpstreamSpawned,
    WorkerFailed,
    WorkerHello,
    WorkerReady,
    worker_identity,
)
from services.config import LOGIN_TIMEOUT_S, ServerConfig
from services.pinning import held_prompts
from services.upstream_log import log_path, with_stderr
from supervisor import policy
from supervisor.inbox import Command, Event, LoginOutcome, WorkerExited
from supervisor.on_demand import StartKeeper
from supervisor.runner_context import (
    RunnerContext,
    slot_or_event,
    status_of,
    stop_generation,
    upstream_spec,
)
from supervisor.spawn import WorkerProcess
from supervisor.states import Lifecycle, WorkerState

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_S: Final = 15.0
HEARTBEAT_TIMEOUT_S: Final = 3.0
"""Three missed beats (HEARTBEAT_INTERVAL_S is 1 s): the worker is frozen (SIGSTOP, a deadlock) and is
SIGKILLed at once; its in-flight calls fail when it is reported gone."""
LAST_WORDS_S: Final = 0.5
INBOX_SIZE: Final = 1000


class ServerRunner:
    """Owns one configured server and, at most, one worker generation."""

    def __init__(self, config: ServerConfig, ctx: RunnerContext) -> None:
        self.config = config
        self.ctx = ctx
        self.life = Lifecycle(config.name)
        self.generation = 0
        self.inbox_send, self.inbox = trio.open_memory_channel[Event](INBOX_SIZE)
        self.worker: WorkerProcess | None = None
        self.upstream_pid: int | None = None
        self.upstream_pgid: int | None = None
        self.tools: list[ToolInfo] = []
        self.catalog = Catalog()
        self.server_version: str | None = None
        self.summary = ""
        self.restarts = 0
        self.last_error: str | None = None
        self.last_exit: ExitInfo | None = None
        self.next_retry_at: float | None = None
        self.failures: tuple[float, ...] = ()
        self.has_run = False
        """Reached running since it was last configured or restarted by hand (see policy.after_failure)."""
        self.condition: policy.Condition | None = None
        self.healthy = True
        self._reported_generation = 0
        self.wanted = config.enabled and not config.quarantined
        self.removed = False
        self.login_next = False
        """The next generation is a person-led OAuth sign-in."""
        self.login_required = False
        """The current generation reported that only a person signing in can help."""
        self.signed_in = False
        self.person_led = False
        self.login: LoginOutcome | None = None
        self.keeper = StartKeeper(self)
        """Starts it on demand, stops it when idle, recycles it (supervisor/on_demand.py)."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def identity(self) -> bytes:
        return worker_identity(self.name, self.generation)

    def status(self) -> ServerStatus:
        return status_of(self)

    def deliver_nowait(self, event: Event) -> None:
        try:
            self.inbox_send.send_nowait(event)
        except trio.WouldBlock:
            logger.warning("server %s: inbox full, dropped %s", self.name, type(event).__name__)

    async def _set(self, state: WorkerState) -> None:
        self.life.transition(state)
        await self.ctx.publish(self)

    # --- the loop ------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled (proxy shutdown) or removed; always leaves no worker behind."""
        try:
            while not self.removed:
                if not self.wanted:
                    await self._idle()
                    continue
                if self.keeper.parked():
                    await self.keeper.park()
                    continue
                await self._run_generation()
        finally:
            with trio.CancelScope(shield=True):
                await self._stop_worker()

    async def _idle(self) -> None:
        event = await self.inbox.receive()
        if isinstance(event, Command):
            outcome = await self._apply_command(event)
            if outcome == "stop" and self.life.state is WorkerState.NEEDS_LOGIN:
                await self._set(WorkerState.STOPPED)
            elif outcome == "stop":
                await self.ctx.publish(self)  # still stopped, but its config (e.g. a pending change) moved

    def begin_login(self) -> LoginOutcome:
        """A person wants to sign in: the next generation runs the browser flow; see `LoginOutcome`."""
        outcome = LoginOutcome(done=trio.Event())
        self.deliver_nowait(Command("login", login=outcome))
        return outcome

    def _settle_login(self, *, url: str | None = None, error: str | None = None) -> None:
        if self.login is not None:
            self.login.url, self.login.error = url, self.ctx.scrub(error) if error else None
            self.login.done.set()
            self.login = None

    def reconfigure(self, config: ServerConfig) -> None:
        """The config file changed this server: adopt it and restart (or stop) it."""
        self.deliver_nowait(Command("reload", config=config))

    async def _apply_command(self, command: Command) -> str:
        """Apply a command; return "restart" (a fresh generation), "stop", or "continue" (as you were)."""
        try:
            return await self._carry_out(command)
        finally:
            if command.done is not None:
                command.done.set()

    async def _carry_out(self, command: Command) -> str:
        match command.action:
            case "repin":
                self.tools = self.ctx.pins.pin(self.name, self.tools, trusted=False)
                self.catalog = self._pinned(self.catalog, trusted=False)
                await self.ctx.publish_tools(self)
                await self.ctx.publish(self)
                return "continue"
            case "logout":
                self.signed_in = False
                if not (self.wanted or self.life.state is WorkerState.NEEDS_LOGIN):
                    return "continue"
            case "reload":
                self.config = command.config or self.config
            case "login":
                if self.login is not None:
                    self.login.done.set()  # an older request waits no more
                self.login = command.login
                self.keeper.demanded = True
            case "disable" | "remove":
                self.wanted = False
                self.removed = self.removed or command.action == "remove"
                return "stop"
            case "restart":
                self.keeper.demanded = True
            case "start":
                return await self.keeper.demand()
            case _:
                assert_never(command.action)
        self.wanted = self.config.enabled and not self.config.quarantined
        if command.action != "reload":
            self.failures = ()
        self.has_run = False
        if command.action == "login":
            self.login_next = self.wanted
            if not self.wanted:
                state = "quarantined" if self.config.quarantined else "disabled"
                self._settle_login(error=f"server {self.name!r} is {state}")
        return "restart" if self.wanted else "stop"

    async def _run_generation(self) -> None:
        self.generation += 1
        self.healthy = True
        self.next_retry_at = None
        self.upstream_pid = self.upstream_pgid = None
        self.tools = []
        self.login_required = False
        self.signed_in = False
        self.person_led, self.login_next = self.login_next, False
        await self._set(WorkerState.STARTING)
        if await self._wait_for_start_slot() == "stop":
            await self._set(WorkerState.STOPPING)
            await self._set(WorkerState.STOPPED)
            return
        try:
            outcome = await self._spawn_and_start()
        finally:
            if self.ctx.start_slots is not None:
                self.ctx.start_slots.release_on_behalf_of(self)
        if outcome == "spawn failed":
            await self._set(WorkerState.EXITED)
            await self._after_failure()
            return
        if outcome == "running":
            outcome = await self._running()
        if outcome in ("stop", "restart", "idle", "recycle"):
            await self._set(WorkerState.STOPPING)
            await self._stop_worker()
            await self._set(self.keeper.after_stop(outcome))
            return
        # The worker died or failed. Say so first — the gateway fails calls still in flight to it on
        # this news — then make sure nothing of it is left (that may take up to kill_timeout), then decide.
        await self._set(WorkerState.EXITED)
        await self._stop_worker(frozen=outcome == "frozen")
        if self.login_required:  # only a person can help: wait for one instead of retrying
            self._settle_login(error=self.last_error)
            self.wanted = False
            await self._set(WorkerState.NEEDS_LOGIN)
            return
        self._settle_login(error=self.last_error or "the server failed to start")
        await self._after_failure(frozen=outcome == "frozen")

    async def _wait_for_start_slot(self) -> str | None:
        """Queue for a start slot; a command that arrives meanwhile is applied. "stop": do not start."""
        slots = self.ctx.start_slots
        if slots is None:
            return None
        while True:
            acquired, events = await slot_or_event(slots, self.inbox, self)
            for event in events:  # anything else is from an earlier generation
                if isinstance(event, Command) and await self._apply_command(event) == "stop":
                    if acquired:
                        slots.release_on_behalf_of(self)
                    return "stop"
            if acquired:
                return None

    async def _spawn_and_start(self) -> str:
        """Spawn this generation's worker and wait until it runs or fails: "running", "failed", ...."""
        try:
            self.worker = await self.ctx.spawner.spawn(self.name, self.generation)
        except Exception as exc:  # task boundary: a spawn failure is a failed start
            self.last_error = f"cannot start worker: {exc}"
            return "spawn failed"
        if self.worker.child.key is not None:
            self.ctx.ledger.record(self.name, "worker", [self.worker.child.key])
        self.ctx.nursery.start_soon(self._watch_exit, self.worker, self.generation)
        await self.ctx.publish(self)  # now with the worker's pid
        return await self._starting()

    async def _watch_exit(self, worker: WorkerProcess, generation: int) -> None:
        code = await worker.child.wait()
        self.deliver_nowait(WorkerExited(generation, code))

    def _stale(self, event: Event) -> bool:
        generation = getattr(event, "generation", self.generation)
        return generation != self.generation

    async def _starting(self) -> str:
        deadline = trio.current_time() + HELLO_TIMEOUT_S + self._init_timeout_s()
        while True:
            with trio.move_on_at(deadline):
                event = await self.inbox.receive()
                if self._stale(event):
                    continue
                match event:
                    case WorkerHello(protocol_version=version) if version != PROTOCOL_VERSION:
                        self.last_error = (
                            f"the worker speaks bus protocol {version}, the supervisor {PROTOCOL_VERSION}: "
                            "parts of two mcpproxy versions are mixed; reinstall it and restart"
                        )
                        return "failed"
                    case WorkerHello():
                        await self.ctx.send_worker(
                            self.identity,
                            StartUpstream(
                                spec=upstream_spec(
                                    self.config,
                                    self.ctx,
                                    self.generation,
                                    self._init_timeout_s(),
                                    self.person_led,
                                ),
                                calls_endpoint=self.ctx.calls_endpoint,
                            ),
                        )
                    case UpstreamSpawned(pid=pid, pgid=pgid, start=start):
                        self.upstream_pid, self.upstream_pgid = pid, pgid
                        # The worker read the start time before it could reap the upstream: reading
                        # it here instead could find a newer process that reused the pid.
                        if start:
                            self.ctx.ledger.record(self.name, "upstream", [(pid, start)])
                            if pgid == pid:  # the group is recorded by its leader's identity
                                self.ctx.ledger.record_groups(self.name, [(pgid, start)])
                        await self.ctx.publish(self)
                    case WorkerReady(tools=tools, server_version=version, signed_in=signed_in):
                        self.tools = self.ctx.pins.pin(self.name, tools, trusted=not self.config.quarantined)
                        self.catalog = self._pinned(event.catalog, trusted=not self.config.quarantined)
                        self.server_version = version
                        self.summary = event.summary
                        self.signed_in = signed_in
                        self.last_error = None
                        self.has_run, self.condition = True, None
                        self.keeper.begin()
                        await self._set(WorkerState.RUNNING)
                        await self.ctx.publish_tools(self)
                        self._settle_login()
                        return "running"
                    case LoginStarted(url=url):
                        self._settle_login(url=url)
                    case WorkerFailed() | WorkerExited() | Command():
                        if (outcome := await self._either_phase(event)) is not None:
                            return outcome
                    case Heartbeat() | ToolsChanged() | CatalogChanged() | UpstreamHealth():
                        pass
                continue
            self.last_error = f"initialize did not finish within init_timeout ({self._init_timeout_s():g}s)"
            return "failed"

    async def _either_phase(self, event: WorkerFailed | WorkerExited | Command) -> str | None:
        """What starting and running both do with these events; an outcome ends the phase."""
        match event:
            case WorkerFailed(error=error, login_required=login_required):
                self.last_error = error
                self.login_required = login_required
                self._reported_generation = self.generation
            case WorkerExited(code=code):
                await self._collect_last_words(code)
                self._record_exit(code)
                if self.last_error and self.config.transport == "stdio":
                    # The worker is gone, so its log of the upstream's stderr is complete.
                    self.last_error = with_stderr(self.last_error, log_path(self.ctx.data_dir, self.name))
                return "failed"
            case Command() as command:
                outcome = await self._apply_command(command)
                return None if outcome == "continue" else outcome
        return None

    def _pinned(self, catalog: Catalog, *, trusted: bool) -> Catalog:
        """`catalog` with its held prompts marked (prompt pinning, services/pinning.py)."""
        held = held_prompts(self.ctx.prompt_pins, self.name, catalog.prompts, trusted=trusted)
        return msgspec.structs.replace(catalog, held_prompts=held)

    def _init_timeout_s(self) -> float:
        """A person-led sign-in also waits for the person."""
        return self.config.init_timeout_s() + (LOGIN_TIMEOUT_S if self.person_led else 0.0)

    async def _running(self) -> str:
        running_since = trio.current_time()
        last_beat = trio.current_time()
        while True:
            with trio.move_on_at(last_beat + HEARTBEAT_TIMEOUT_S):
                event = await self.inbox.receive()
                self.failures = policy.after_stable_run(
                    self.ctx.restart_policy, self.failures, running_since, trio.current_time()
                )
                if self._stale(event):
                    continue
                match event:
                    case Heartbeat():
                        last_beat = trio.current_time()
                        if (verdict := await self.keeper.on_beat(event)) is not None:
                            return verdict
                    case UpstreamHealth(healthy=healthy, error=error):
                        self.healthy = healthy
                        self.last_error = error if not healthy else None
                        await self.ctx.publish(self)
                    case ToolsChanged(tools=tools):
                        self.tools = self.ctx.pins.pin(self.name, tools, trusted=not self.config.quarantined)
                        await self.ctx.publish_tools(self)
                        await self.ctx.publish(self)
                    case CatalogChanged(catalog=catalog):
                        self.catalog = self._pinned(catalog, trusted=not self.config.quarantined)
                        await self.ctx.publish_tools(self)
                    case WorkerFailed() | WorkerExited() | Command():
                        if (outcome := await self._either_phase(event)) is not None:
                            return outcome
                    case UpstreamSpawned() | WorkerHello() | WorkerReady() | LoginStarted():
                        pass
                continue
            self.last_error = f"worker stopped responding (no heartbeat for {HEARTBEAT_TIMEOUT_S:g}s)"
            return "frozen"

    async def _collect_last_words(self, code: int) -> None:
        """A worker's WorkerFailed can arrive just after we saw it exit: wait briefly for its reason.

        Only a worker that exited by itself with a failure code has last words; a signalled one has
        none, and one whose reason already arrived needs no wait.
        """
        if code <= 0 or self._reported_generation == self.generation:
            return
        later: list[Event] = []
        with trio.move_on_after(LAST_WORDS_S):
            while True:
                event = await self.inbox.receive()
                if isinstance(event, WorkerFailed) and not self._stale(event):
                    self.last_error = event.error
                    self.login_required = event.login_required
                    break
                if isinstance(event, Command):
                    later.append(event)
        for event in later:
            self.deliver_nowait(event)

    def _record_exit(self, code: int) -> None:
        self.last_exit = ExitInfo(
            code=code if code >= 0 else None, signal=-code if code < 0 else None, at=time.time()
        )
        if code != 0 and not self.last_error:
            how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
            self.last_error = f"worker ended with {how}"

    async def _after_failure(self, *, frozen: bool = False) -> None:
        """Back off, or give up; a worker that froze once is replaced at once (it is already dead)."""
        decision = policy.after_failure(
            self.ctx.restart_policy,
            self.failures,
            trio.current_time(),
            has_run=self.has_run,
            remote=self.config.transport != "stdio",
        )
        self.failures = decision.failures
        self.condition = decision.condition
        if decision.fatal:
            reason = self.last_error or "failed"
            self.last_error = f"{reason} (gave up after {len(decision.failures)} failures; restart to retry)"
            await self._set(WorkerState.FATAL)
            self.wanted = False
            return
        delay_s = 0.0 if frozen and len(decision.failures) == 1 else decision.delay_s
        self.next_retry_at = time.time() + delay_s
        await self._set(WorkerState.BACKOFF)
        with trio.move_on_after(delay_s):
            while True:
                event = await self.inbox.receive()
                if isinstance(event, Command) and await self._apply_command(event) != "continue":
                    break
        self.next_retry_at = None
        if self.wanted:
            self.restarts += 1
        else:
            await self._set(WorkerState.STOPPED)

    async def _stop_worker(self, *, frozen: bool = False) -> None:
        """Staged stop of the current worker (and so of its upstream); then sweep what is left."""
        worker, self.worker = self.worker, None
        await stop_generation(self.name, self.identity, worker, self.upstream_pgid, self.ctx, frozen=frozen)
        self.upstream_pid = self.upstream_pgid = None
        self.tools = []
        self.catalog = Catalog()
