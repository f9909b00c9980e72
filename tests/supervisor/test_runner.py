"""The real ServerRunner on trio's MockClock, with a fake worker that speaks the real bus messages.

The seam is the runner's context: the spawner hands out `FakeChild` processes
(no fork), `send_worker` delivers to a scripted fake worker, and the fake
worker answers with the same messages a real one sends (WorkerHello,
WorkerReady, Heartbeat, WorkerFailed, LoginStarted) through the runner's
inbox. Everything else is real: the lifecycle table, the restart policy, the
start slots, the ledger and the tool pins. Minutes of restarts run in
milliseconds and every time is exact.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from bus.messages import (
    PROTOCOL_VERSION,
    Heartbeat,
    LoginStarted,
    Shutdown,
    StartUpstream,
    WorkerFailed,
    WorkerHello,
    WorkerReady,
)
from services.config import ServerConfig
from services.pinning import PinStore
from supervisor.inbox import Command
from supervisor.ledger import Ledger
from supervisor.policy import RestartPolicy
from supervisor.runner import ServerRunner
from supervisor.runner_context import RunnerContext
from supervisor.spawn import WorkerProcess

HEARTBEAT_S = 1.0


class FakeChild:
    """What the runner needs of a worker process: a pid, its exit, and signals to its group."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pgid = pid
        self.key = None
        self.returncode: int | None = None
        self.exited = trio.Event()
        self.signals: list[int] = []

    @property
    def running(self) -> bool:
        return self.returncode is None

    def exit(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self.exited.set()

    async def wait(self) -> int:
        await self.exited.wait()
        assert self.returncode is not None
        return self.returncode

    def signal_group(self, sig: int) -> None:
        self.signals.append(sig)
        if sig in (signal.SIGTERM, signal.SIGKILL):
            self.exit(-sig)


Behaviour = Callable[["FakeWorker"], Any]


@dataclass
class FakeWorker:
    """One generation's worker, scripted: `behaviour(worker)` runs once StartUpstream arrives."""

    runner: ServerRunner
    generation: int
    child: FakeChild
    heartbeats: bool = True
    spec_login: bool = False

    def deliver(self, message: Any) -> None:
        self.runner.deliver_nowait(message)

    async def beat(self) -> None:
        while self.child.running and self.heartbeats:
            self.deliver(Heartbeat(server=self.runner.name, generation=self.generation))
            await trio.sleep(HEARTBEAT_S)

    def ready(self) -> None:
        self.deliver(WorkerReady(server=self.runner.name, generation=self.generation, tools=[]))

    def fail(self, error: str, code: int = 1, *, login_required: bool = False) -> None:
        failed = WorkerFailed(
            server=self.runner.name, generation=self.generation, error=error, login_required=login_required
        )
        self.deliver(failed)
        self.child.exit(code)


@dataclass
class Harness:
    """The runner's context with the fake seams, and what happened (states with their times)."""

    tmp_path: Path
    nursery: trio.Nursery
    script: list[Behaviour]
    policy: RestartPolicy = field(default_factory=lambda: RestartPolicy(jitter=0.0))
    slots: int | None = None
    states: list[tuple[float, str]] = field(default_factory=list)
    workers: list[FakeWorker] = field(default_factory=list)
    sent: list[Any] = field(default_factory=list)
    runner: ServerRunner | None = None
    hello_version: int = PROTOCOL_VERSION

    def context(self) -> RunnerContext:
        harness = self

        class Spawner:
            async def spawn(self, server: str, generation: int) -> WorkerProcess:
                child = FakeChild(10_000 + generation)
                assert harness.runner is not None
                worker = FakeWorker(harness.runner, generation, child)
                harness.workers.append(worker)
                hello = WorkerHello(
                    server=server,
                    generation=generation,
                    pid=child.pid,
                    protocol_version=harness.hello_version,
                )
                worker.deliver(hello)
                return WorkerProcess(child=child)  # type: ignore[arg-type]

        async def send_worker(identity: bytes, message: Any) -> bool:
            self.sent.append(message)
            worker = self.workers[-1]
            if isinstance(message, StartUpstream):
                worker.spec_login = message.spec.login
                behaviour = self.script[min(worker.generation - 1, len(self.script) - 1)]
                self.nursery.start_soon(worker.beat)
                result = behaviour(worker)
                if hasattr(result, "__await__"):
                    self.nursery.start_soon(lambda: result)
            elif isinstance(message, Shutdown):
                worker.child.exit(0)
            return True

        async def publish(runner: ServerRunner) -> None:
            state = runner.life.state.value
            if not self.states or self.states[-1][1] != state:
                self.states.append((trio.current_time(), state))

        async def publish_tools(runner: ServerRunner) -> None:
            pass

        (self.tmp_path / "run").mkdir(exist_ok=True)
        return RunnerContext(
            control_endpoint="ipc://unused",
            calls_endpoint="ipc://unused",
            data_dir=self.tmp_path,
            close_timeout_s=10.0,
            kill_timeout_s=9.0,
            log_level="WARNING",
            restart_policy=self.policy,
            send_worker=send_worker,
            publish=publish,
            publish_tools=publish_tools,
            nursery=self.nursery,
            ledger=Ledger(self.tmp_path / "run"),
            spawner=Spawner(),  # type: ignore[arg-type]
            config_view=lambda name: b"{}",
            pins=PinStore(self.tmp_path / "tool_approvals.json"),
            prompt_pins=PinStore(self.tmp_path / "prompt_approvals.json"),
            start_slots=trio.CapacityLimiter(self.slots) if self.slots else None,
        )

    def start(self, config: ServerConfig, context: RunnerContext | None = None) -> ServerRunner:
        self.runner = ServerRunner(config, context or self.context())
        self.nursery.start_soon(self.runner.run)
        return self.runner

    def timeline(self) -> list[tuple[float, str]]:
        return [(round(at, 3), state) for at, state in self.states]


def local(name: str = "s") -> ServerConfig:
    return ServerConfig(name=name, command="upstream")


def ok(worker: FakeWorker) -> None:
    worker.ready()


def crash_after(seconds: float) -> Behaviour:
    async def behaviour(worker: FakeWorker) -> None:
        worker.ready()
        await trio.sleep(seconds)
        worker.child.exit(1)

    return behaviour


def fail_start(worker: FakeWorker) -> None:
    worker.fail("boom: missing API key", code=3)


async def wait_for_state(harness: Harness, state: str, count: int = 1) -> float:
    """The time `state` was reached for the `count`-th time (waits on the mock clock, with a deadline)."""
    with trio.fail_after(3600):
        while sum(1 for _, s in harness.states if s == state) < count:
            await trio.sleep(0.01)
    return [at for at, s in harness.states if s == state][count - 1]


async def test_a_server_starts_and_runs(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [ok])
        runner = harness.start(local())
        await wait_for_state(harness, "running")
        assert [s for _, s in harness.states] == ["starting", "running"]
        assert runner.has_run and runner.generation == 1
        runner.deliver_nowait(Command("remove"))
        await wait_for_state(harness, "stopped")
        assert isinstance(harness.sent[-1], Shutdown)
        nursery.cancel_scope.cancel()


async def test_a_crash_backs_off_one_second_then_runs_again(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [crash_after(5.0), ok])
        harness.start(local())
        first = await wait_for_state(harness, "running", 1)
        second = await wait_for_state(harness, "running", 2)
        states = [s for _, s in harness.states]
        assert states == ["starting", "running", "exited", "backoff", "starting", "running"]
        backoff = next(at for at, s in harness.states if s == "backoff")
        starting_again = [at for at, s in harness.states if s == "starting"][1]
        assert starting_again - backoff == 1.0
        assert second - first >= 6.0
        nursery.cancel_scope.cancel()


async def test_a_local_server_that_never_starts_goes_fatal_after_1_2_4_8_seconds(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [fail_start])
        runner = harness.start(local())
        await wait_for_state(harness, "fatal")
        backoffs = [at for at, s in harness.states if s == "backoff"]
        starts = [at for at, s in harness.states if s == "starting"]
        assert [round(b - a, 3) for a, b in zip(backoffs, starts[1:], strict=True)] == [1.0, 2.0, 4.0, 8.0]
        assert len(starts) == 5 and "boom: missing API key" in (runner.last_error or "")
        assert "restart to retry" in (runner.last_error or "")
        runner.deliver_nowait(Command("restart"))  # a human restart tries again from scratch
        await wait_for_state(harness, "starting", 6)
        nursery.cancel_scope.cancel()


async def test_a_server_that_has_run_crash_loops_forever_at_the_cap(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    policy = RestartPolicy(jitter=0.0, max_backoff_s=8.0)
    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [crash_after(0.5)], policy=policy)
        runner = harness.start(local())
        await wait_for_state(harness, "running", 12)
        assert "fatal" not in [s for _, s in harness.states]
        assert runner.condition == "crash-looping" or runner.life.state.value == "running"
        starts = [at for at, s in harness.states if s == "starting"]
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
        # 0.5 s up, 0.5 s for the worker's last words (LAST_WORDS_S), then the capped 8 s backoff
        assert max(gaps) == 9.0 and gaps[-1] == 9.0
        nursery.cancel_scope.cancel()


async def test_a_stop_during_start_stops_the_worker_and_stays_stopped(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    def hang(worker: FakeWorker) -> None:
        pass  # never ready

    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [hang])
        runner = harness.start(local())
        await wait_for_state(harness, "starting")
        await trio.sleep(2.0)
        runner.deliver_nowait(Command("disable"))
        stopped = await wait_for_state(harness, "stopped")
        assert [s for _, s in harness.states] == ["starting", "stopping", "stopped"]
        assert isinstance(harness.sent[-1], Shutdown) and not harness.workers[0].child.running
        await trio.sleep(120.0)
        assert harness.states[-1] == (stopped, "stopped") and len(harness.workers) == 1
        nursery.cancel_scope.cancel()


async def test_an_init_timeout_is_a_failed_start(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [lambda worker: None, ok])
        runner = harness.start(ServerConfig(name="s", command="upstream", init_timeout=5))
        await wait_for_state(harness, "running")
        exited = next(at for at, s in harness.states if s == "exited")
        assert exited == 20.0  # HELLO_TIMEOUT_S (15) + init_timeout (5), from the spawn
        assert "init_timeout" in (runner.last_error or "") or runner.last_error is None
        nursery.cancel_scope.cancel()


async def test_a_frozen_worker_is_killed_after_three_missed_beats_and_replaced_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    def freeze_after_ready(worker: FakeWorker) -> None:
        worker.ready()
        worker.heartbeats = False

    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [freeze_after_ready, ok])
        harness.start(local())
        running = await wait_for_state(harness, "running", 1)
        exited = await wait_for_state(harness, "exited")
        again = await wait_for_state(harness, "starting", 2)
        assert exited - running <= 3.01  # HEARTBEAT_TIMEOUT_S after the last beat
        assert again == exited  # no backoff for a first freeze
        assert signal.SIGKILL in harness.workers[0].child.signals
        assert signal.SIGTERM not in harness.workers[0].child.signals
        nursery.cancel_scope.cancel()


async def test_a_server_that_needs_a_person_waits_for_login_without_retrying(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    def needs_login(worker: FakeWorker) -> None:
        if worker.spec_login:
            worker.deliver(
                LoginStarted(server="r", generation=worker.generation, url="https://idp/authorize")
            )
            worker.ready()
        else:
            worker.fail("sign-in required", code=1, login_required=True)

    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [needs_login])
        runner = harness.start(ServerConfig(name="r", url="http://127.0.0.1:9/mcp", protocol="http"))
        await wait_for_state(harness, "needs_login")
        await trio.sleep(600.0)
        assert len(harness.workers) == 1, "no retry loop while waiting for a person"
        outcome = runner.begin_login()
        with trio.fail_after(60):
            await outcome.done.wait()
        assert outcome.url == "https://idp/authorize" and outcome.error is None
        await wait_for_state(harness, "running")
        assert harness.workers[-1].spec_login
        nursery.cancel_scope.cancel()


async def test_start_slots_queue_a_fleet_and_a_queued_server_can_be_stopped(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def slow_ready(worker: FakeWorker) -> None:
        await trio.sleep(10.0)
        worker.ready()

    async with trio.open_nursery() as nursery:
        first = Harness(tmp_path / "a", nursery, [slow_ready], slots=1)
        (tmp_path / "a").mkdir()
        context = first.context()
        first.start(local("a"), context)
        await wait_for_state(first, "starting")
        await trio.sleep(1.0)  # a holds the one slot
        second = Harness(tmp_path / "b", nursery, [slow_ready])
        (tmp_path / "b").mkdir()
        second_context = second.context()
        second_context.start_slots = context.start_slots  # one limiter for the fleet
        second.start(local("b"), second_context)
        await wait_for_state(second, "starting")
        third = Harness(tmp_path / "c", nursery, [slow_ready])
        (tmp_path / "c").mkdir()
        third_context = third.context()
        third_context.start_slots = context.start_slots
        queued = third.start(local("c"), third_context)
        a_running = await wait_for_state(first, "running")
        queued.deliver_nowait(Command("remove"))
        b_running = await wait_for_state(second, "running")
        assert a_running == 10.0 and b_running == 20.0  # one start at a time: b queued behind a
        assert [s for _, s in third.states][-1] == "stopped" and third.workers == []
        nursery.cancel_scope.cancel()


async def test_a_worker_of_another_bus_protocol_is_refused_with_a_clear_error(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        harness = Harness(tmp_path, nursery, [ok], hello_version=PROTOCOL_VERSION - 1)
        runner = harness.start(local())
        await wait_for_state(harness, "backoff")
        assert f"bus protocol {PROTOCOL_VERSION - 1}" in (runner.last_error or "")
        assert "reinstall" in (runner.last_error or "")
        assert not any(isinstance(message, StartUpstream) for message in harness.sent)
        nursery.cancel_scope.cancel()
