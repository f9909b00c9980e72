"""Supervision under abuse: killed workers, killed supervisors, hostile upstreams, floods and hangs.

Every test starts a real `mcpproxy serve` (or honcho with the Procfile) and
watches the kernel's process table through /proc. Figures the issue asks for
(latencies, stop times) are printed as `MEASURE ...` lines (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Final

import httpx2
import mcp.types as types
import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from supervisor.policy import MAX_FAILURES
from tests.proxyctl import (
    API_KEY,
    POLL_S,
    PYTHON,
    REPO,
    SERVERS,
    START_TIMEOUT_S,
    Proxy,
    alive,
    descendants,
    echo_server,
    free_port,
    running_proxy,
)

pytestmark = pytest.mark.system

FAST_STOP: Final = {"close_timeout": 1, "kill_timeout": 1}
STOP_BUDGET_S: Final = FAST_STOP["close_timeout"] + FAST_STOP["kill_timeout"]
# Margin over close_timeout + kill_timeout for process exits and reaping on a loaded 2-core host.
STOP_MARGIN_S: Final = 5.0
# The one explicit figure: an in-flight call fails within 1 s of its worker's death.
IN_FLIGHT_ERROR_S: Final = 1.0
STEP_TIMEOUT_S: Final = 30.0
LOG_CAP_BYTES: Final = 5 * 1024 * 1024


def measure(label: str, value: str) -> None:
    print(f"\nMEASURE {label}: {value}", flush=True)


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def hostile(
    name: str, *modes: str, pidfile: Path | None = None, args: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    """A config entry for tests/servers/hostile_server.py with the given misbehaviours."""
    argv = [str(SERVERS / "hostile_server.py")]
    for mode in modes:
        argv += ["--mode", mode]
    if pidfile is not None:
        argv += ["--pidfile", str(pidfile)]
    return {"name": name, "command": PYTHON, "args": [*argv, *args], **extra}


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def child_running(parent: int, module: str) -> int:
    """The child of `parent` that runs `python -m <module>`."""
    matches = [pid for pid in children(parent) if "-m" in (argv := cmdline(pid)) and module in argv]
    assert len(matches) == 1, f"expected one `-m {module}` child of {parent}, found {matches}"
    return matches[0]


@asynccontextmanager
async def unlimited_mcp(proxy: Proxy, path: str = "/mcp") -> AsyncIterator[ClientSession]:
    """Like proxy.mcp(), without the SDK client's default 1 MiB cap on one SSE event."""
    async with (
        httpx2.AsyncClient(timeout=60.0) as http,
        streamable_http_client(f"{proxy.base_url}{path}", http_client=http, max_sse_event_size=None) as (
            read,
            write,
        ),
        ClientSession(read, write) as session,
    ):
        with trio.fail_after(STEP_TIMEOUT_S):
            await session.initialize()
        yield session


async def wait_until(
    proxy: Proxy,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    what: str,
    timeout_s: float = START_TIMEOUT_S,
) -> dict[str, Any]:
    """Poll REST until server `name` satisfies `predicate`."""
    last: dict[str, Any] = {}
    with trio.move_on_after(timeout_s):
        while True:
            last = (await proxy.servers()).get(name, {})
            if predicate(last):
                proxy.remember_pids()
                return last
            await trio.sleep(POLL_S)
    raise AssertionError(f"server {name}: {what} not reached in {timeout_s}s; last: {last}")


def server_processes(proxy: Proxy, server: str, marker: str) -> set[int]:
    """The worker of `server` and every process below it, plus any upstream whose argv holds `marker`."""
    found = set()
    for pid in descendants(proxy.process.pid):
        argv = cmdline(pid)
        # A zygote-forked worker's title is one string: "python -m services.worker --server NAME ...".
        joined = " ".join(argv)
        if f"services.worker --server {server} " in joined + " " or any(marker in arg for arg in argv):
            found |= {pid, *descendants(pid)}
    return found


async def processes_of_a_start(
    proxy: Proxy, server: str, marker: str, exclude: set[int] = frozenset()
) -> set[int]:
    """While `server` is starting, wait until its worker and its upstream both show; return their pids.

    Found from /proc: REST does not show the pids of a server that is still starting.
    """
    with trio.fail_after(START_TIMEOUT_S):
        while True:
            state = (await proxy.servers())[server]["state"]
            pids = server_processes(proxy, server, marker) - exclude
            upstream = any(any(marker in a for a in cmdline(p)) for p in pids)
            worker = any(f"services.worker --server {server} " in " ".join(cmdline(p)) + " " for p in pids)
            if state == "starting" and upstream and worker:
                proxy.remember_pids()
                return pids
            await trio.sleep(POLL_S)


async def wait_all_gone(pids: set[int], timeout_s: float) -> set[int]:
    """Wait until none of `pids` is alive; return the survivors at the deadline."""
    with trio.move_on_after(timeout_s):
        while alive(pids):
            await trio.sleep(POLL_S)
    return alive(pids)


async def call(session: ClientSession, qualified: str, **args: Any) -> types.CallToolResult:
    with trio.fail_after(STEP_TIMEOUT_S):
        return await session.call_tool("call_tool_read", {"name": qualified, "args": args})


async def echo_ok(session: ClientSession, server: str, message: str) -> None:
    result = await call(session, f"{server}:echo", message=message)
    assert not result.is_error and text_of(result) == message, text_of(result)


async def wait_for_log(proxy: Proxy, server: str, needle: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
    path = proxy.data_dir / "logs" / f"server-{server}.log"
    with trio.fail_after(timeout_s):
        while not (path.exists() and needle in path.read_text(errors="replace")):
            await trio.sleep(0.01)


async def kill_in_flight_call(proxy: Proxy, session: ClientSession, server: str, token: str) -> float:
    """Start a 30 s call on `server`; SIGKILL its worker once the upstream has it; return the error delay."""
    status = (await proxy.servers())[server]
    outcome: list[tuple[types.CallToolResult, float]] = []

    async def in_flight() -> None:
        result = await call(session, f"{server}:sleep", seconds=30, token=token)
        outcome.append((result, time.perf_counter()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(in_flight)
        await wait_for_log(proxy, server, f"sleep {token} started")
        killed_at = time.perf_counter()
        os.kill(status["worker_pid"], signal.SIGKILL)
    result, answered_at = outcome[0]
    assert result.is_error, text_of(result)
    assert server in text_of(result), text_of(result)
    return answered_at - killed_at


async def back_to_running(proxy: Proxy, name: str, before: dict[str, Any]) -> dict[str, Any]:
    """After a worker kill: running again with a new worker (a server that has run never goes fatal)."""
    after = await wait_until(
        proxy,
        name,
        lambda s: (
            s.get("state") == "fatal"
            or (s.get("state") == "running" and s.get("worker_pid") not in (None, before["worker_pid"]))
        ),
        "running with a new worker",
    )
    assert after["state"] != "fatal", after
    return after


# --- worker kills ---------------------------------------------------------------------------------


async def test_a_kill_storm_on_one_worker_never_disturbs_calls_to_another(tmp_path: Path) -> None:
    # Quick retries, so ten kills in a row take seconds: the policy is the same at any scale.
    quick = {"restart": {"initial_backoff": 0.2, "max_backoff": 1.0, "max_failures": MAX_FAILURES}}
    servers = [echo_server("victim"), echo_server("steady")]
    async with running_proxy(tmp_path, servers, **FAST_STOP, **quick) as proxy:
        await proxy.wait_for("steady", "running")
        victim = await proxy.wait_for("victim", "running")
        errors: list[str] = []
        calls = 0
        storm_over = trio.Event()
        async with proxy.mcp() as session:

            async def call_steady() -> None:
                nonlocal calls
                while not storm_over.is_set():
                    message = f"steady {calls}"
                    try:
                        await echo_ok(session, "steady", message)
                    except Exception as exc:
                        errors.append(f"call {calls}: {exc!r}")
                    calls += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call_steady)
                for _kill in range(10):
                    os.kill(victim["worker_pid"], signal.SIGKILL)
                    # Past MAX_FAILURES kills it is crash-looping, retried at the capped backoff, never fatal.
                    victim = await back_to_running(proxy, "victim", victim)
                storm_over.set()
        measure(
            "kill storm",
            f"10 worker kills, back each time by itself, {calls} calls to steady, {len(errors)} errors",
        )
        assert calls > 0
        assert errors == []


async def test_an_in_flight_call_fails_within_a_second_when_its_worker_is_killed(tmp_path: Path) -> None:
    # hostile_server with no mode is polite; its `sleep` (like echo_server's) also says on stderr when
    # it starts, so the kill lands on a call the upstream really holds.
    async with running_proxy(tmp_path, [hostile("victim"), echo_server("steady")], **FAST_STOP) as proxy:
        await proxy.wait_for("victim", "running")
        latencies = []
        async with proxy.mcp() as session:
            for kill in range(3):
                latencies.append(await kill_in_flight_call(proxy, session, "victim", f"t{kill}"))
                await wait_until(proxy, "victim", lambda s: s.get("state") == "backoff", "backoff")
                assert (await proxy.post("/api/v1/servers/victim/restart")).status_code == 200
                await proxy.wait_for("victim", "running")
                await echo_ok(session, "steady", "still here")
        measure(
            "in-flight error latency after worker SIGKILL",
            f"{len(latencies)} kills: median {statistics.median(latencies) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms (50-kill figures: bench/kill_latency.py)",
        )
        assert max(latencies) < IN_FLIGHT_ERROR_S, latencies


async def test_an_in_flight_call_fails_fast_even_when_the_dead_upstream_leaves_a_stubborn_child(
    tmp_path: Path,
) -> None:
    # The upstream dies with its worker (PDEATHSIG), but a child in its process group that ignores
    # SIGTERM outlives both. Sweeping it takes kill_timeout; the call's error should not wait for that.
    helper = tmp_path / "helper.pid"
    servers = [hostile("victim", "ignore-sigterm", "group-child", pidfile=helper)]
    async with running_proxy(tmp_path, servers, close_timeout=1, kill_timeout=5) as proxy:
        await proxy.wait_for("victim", "running")
        async with proxy.mcp() as session:
            latency = await kill_in_flight_call(proxy, session, "victim", "stubborn")
        measure("in-flight error latency, SIGTERM-ignoring child in the upstream group", f"{latency:.2f} s")
        await wait_until(proxy, "victim", lambda s: s.get("state") != "running", "down")
        assert await wait_all_gone({read_pid(helper)}, STEP_TIMEOUT_S) == set()
        assert latency < IN_FLIGHT_ERROR_S


async def test_a_killed_worker_comes_back_by_itself_with_the_exit_recorded(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()], **FAST_STOP) as proxy:
        before = await proxy.wait_for("echo", "running")
        old_upstream = before["upstream_pid"]
        killed_at = time.perf_counter()
        os.kill(before["worker_pid"], signal.SIGKILL)
        after = await back_to_running(proxy, "echo", before)
        ready_after = time.perf_counter() - killed_at
        measure("back to ready after a worker SIGKILL", f"{ready_after:.2f} s (backoff ~1 s + worker start)")
        assert after["state"] == "running"
        assert after["restarts"] == before["restarts"] + 1
        assert after["last_exit"] is not None and after["last_exit"]["signal"] == signal.SIGKILL
        assert after["last_exit"]["code"] is None
        assert after["upstream_pid"] != old_upstream
        assert not alive({before["worker_pid"], old_upstream})
        async with proxy.mcp() as session:
            await echo_ok(session, "echo", "back")


async def test_a_down_server_leaves_retrieve_tools_and_direct_mode_and_returns_after(tmp_path: Path) -> None:
    gate = tmp_path / "hold-restart"
    servers = [hostile("victim", args=("--hold-while-exists", str(gate))), echo_server("steady")]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        await proxy.wait_for("steady", "running")
        victim = await proxy.wait_for("victim", "running")
        async with proxy.mcp() as session, proxy.mcp("/mcp/all") as direct:

            async def search_servers() -> set[str]:
                found = await session.call_tool(
                    "retrieve_tools", {"query": "echo a message back", "limit": 50}
                )
                assert found.structured_content is not None
                return {t["name"].split(":")[0] for t in found.structured_content["tools"]}

            async def direct_servers() -> set[str]:
                return {t.name.split("__")[0] for t in (await direct.list_tools()).tools if "__" in t.name}

            assert await search_servers() == {"victim", "steady"}
            assert await direct_servers() == {"victim", "steady"}

            gate.touch()  # the restarted upstream waits in `starting` until the gate goes
            os.kill(victim["worker_pid"], signal.SIGKILL)
            await wait_until(proxy, "victim", lambda s: s.get("state") != "running", "down")
            assert await search_servers() == {"steady"}
            assert await direct_servers() == {"steady"}
            result = await call(session, "victim:echo", message="anyone?")
            assert result.is_error and "victim" in text_of(result)
            held = await wait_until(proxy, "victim", lambda s: s.get("state") == "starting", "starting")
            assert held["tool_count"] == 0
            assert await search_servers() == {"steady"}
            assert await direct_servers() == {"steady"}

            gate.unlink()
            await wait_until(
                proxy,
                "victim",
                lambda s: s.get("state") == "running" and s.get("worker_pid") != victim["worker_pid"],
                "running again",
            )
            with trio.fail_after(STEP_TIMEOUT_S):
                while await search_servers() != {"victim", "steady"}:
                    await trio.sleep(POLL_S)
            assert await direct_servers() == {"victim", "steady"}
            await echo_ok(session, "victim", "back")


async def test_rest_shows_the_worker_and_upstream_pids_of_a_server_still_starting(tmp_path: Path) -> None:
    gate = tmp_path / "hold-start"
    gate.touch()
    servers = [hostile("held", args=("--hold-while-exists", str(gate)))]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        first = await processes_of_a_start(proxy, "held", str(gate))
        # A restart makes a generation the gateway only knows from published changes, not a snapshot.
        assert (await proxy.post("/api/v1/servers/held/restart")).status_code == 200
        pids = await processes_of_a_start(proxy, "held", str(gate), exclude=first)
        worker = next(pid for pid in pids if any("services.worker --server" in a for a in cmdline(pid)))
        upstream = next(pid for pid in pids if str(gate) in cmdline(pid))
        try:
            await wait_until(
                proxy,
                "held",
                lambda s: s.get("worker_pid") == worker and s.get("upstream_pid") == upstream,
                f"REST showing worker_pid {worker} and upstream_pid {upstream} while starting",
                timeout_s=10.0,
            )
        finally:
            gate.unlink()
        await proxy.wait_for("held", "running", worker_pid=worker, upstream_pid=upstream)


# --- stopping -------------------------------------------------------------------------------------


async def test_hostile_upstreams_and_their_escaped_children_do_not_outlive_serve(tmp_path: Path) -> None:
    daemon_pid, setsid_pid = tmp_path / "daemon.pid", tmp_path / "setsid.pid"
    servers = [
        hostile("no-term", "ignore-sigterm"),
        hostile("no-eof", "ignore-eof"),
        hostile("daemon", "double-fork", pidfile=daemon_pid),
        hostile("setsid", "setsid-child", pidfile=setsid_pid),
        hostile("stubborn", "ignore-sigterm", "ignore-eof"),
    ]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        statuses = {s["name"]: await proxy.wait_for(s["name"], "running") for s in servers}
        escaped = {read_pid(daemon_pid), read_pid(setsid_pid)}
        assert alive(escaped) == escaped
        proxy.remember_pids()
        watched = proxy.seen_pids | escaped | {s["upstream_pid"] for s in statuses.values()}
        started = time.perf_counter()
        assert proxy.stop() == 0
        stop_s = time.perf_counter() - started
        measure("stop time, 5 hostile upstreams", f"{stop_s:.2f} s (close_timeout 1 + kill_timeout 1)")
        assert alive(watched) == set()


async def test_twenty_polite_upstreams_stop_together(tmp_path: Path) -> None:
    servers = [echo_server(f"echo{i:02d}") for i in range(20)]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        for server in servers:
            await proxy.wait_for(server["name"], "running", timeout_s=120)
        proxy.remember_pids()
        assert len(proxy.seen_pids) >= 2 + 2 * len(servers)
        started = time.perf_counter()
        assert proxy.stop() == 0
        stop_s = time.perf_counter() - started
        measure("stop time, 20 polite upstreams", f"{stop_s:.2f} s")
        assert alive(proxy.seen_pids) == set()


async def test_a_killed_supervisor_leaves_no_worker_or_upstream_behind(tmp_path: Path) -> None:
    daemon_pid = tmp_path / "daemon.pid"
    servers = [
        echo_server(),
        hostile("stubborn", "ignore-sigterm", "ignore-eof"),
        hostile("daemon", "double-fork", pidfile=daemon_pid),
    ]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        statuses = {s["name"]: await proxy.wait_for(s["name"], "running") for s in servers}
        supervisor = child_running(proxy.process.pid, "supervisor")
        workers = {s["worker_pid"] for s in statuses.values()}
        upstreams = {s["upstream_pid"] for s in statuses.values()} | {read_pid(daemon_pid)}
        proxy.remember_pids()
        assert workers | upstreams <= proxy.seen_pids | {read_pid(daemon_pid)}
        killed_at = time.perf_counter()
        os.kill(supervisor, signal.SIGKILL)
        left = await wait_all_gone(workers | upstreams, STOP_BUDGET_S + STOP_MARGIN_S)
        measure(
            "all workers and upstreams gone after supervisor SIGKILL",
            f"{time.perf_counter() - killed_at:.2f} s",
        )
        assert left == set(), {pid: cmdline(pid) for pid in left}


async def test_after_the_whole_tree_is_sigkilled_the_next_start_cleans_up(tmp_path: Path) -> None:
    daemon_pid, setsid_pid = tmp_path / "daemon.pid", tmp_path / "setsid.pid"
    servers = [
        echo_server(),
        hostile("daemon", "double-fork", pidfile=daemon_pid),
        hostile("setsid", "setsid-child", pidfile=setsid_pid),
        hostile("stubborn", "ignore-sigterm", "ignore-eof"),
    ]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as first:
        statuses = {s["name"]: await first.wait_for(s["name"], "running") for s in servers}
        escaped = {read_pid(daemon_pid), read_pid(setsid_pid)}
        upstreams = {s["upstream_pid"] for s in statuses.values()}
        await wait_for_ledger(first, escaped)
        serve = first.process.pid
        tree = {serve, *children(serve), *(s["worker_pid"] for s in statuses.values())}
        first.remember_pids()
        everything = first.seen_pids | escaped
        for pid in tree:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        # Upstreams die with their worker (PDEATHSIG SIGKILL); give the kernel a moment to deliver it.
        await wait_all_gone(tree | upstreams, STEP_TIMEOUT_S)
        survivors = alive(everything)
        measure(
            "survivors of a whole-tree SIGKILL",
            f"{ {pid: ' '.join(cmdline(pid))[-80:] for pid in survivors} }",
        )
        assert alive(tree | upstreams) == set()

        async with running_proxy(tmp_path, servers, **FAST_STOP) as second:
            for server in servers:
                await second.wait_for(server["name"], "running")
            left = await wait_all_gone(survivors, STEP_TIMEOUT_S)
            assert left == set(), f"the next start did not clean up {sorted(left)} of a SIGKILLed run"


async def wait_for_ledger(proxy: Proxy, pids: set[int], timeout_s: float = 15.0) -> None:
    """Give a process ledger in the data dir (if the product keeps one) time to record `pids`."""
    ledger = proxy.data_dir / "run" / "processes.json"
    with trio.move_on_after(timeout_s):
        while True:
            with suppress(OSError, ValueError):
                recorded = json.dumps(json.loads(ledger.read_text()))
                if all(str(pid) in recorded for pid in pids):
                    return
            await trio.sleep(0.1)


@asynccontextmanager
async def honcho(tmp_path: Path, servers: list[dict[str, Any]], **top: Any) -> AsyncIterator[Proxy]:
    port = free_port()
    data_dir = tmp_path / "data"
    config_path = tmp_path / "mcp_config.json"
    body = {
        "listen": f"127.0.0.1:{port}",
        "api_key": API_KEY,
        "data_dir": str(data_dir),
        "mcpServers": servers,
        **top,
    }
    config_path.write_text(json.dumps(body, indent=2))
    env = {
        **os.environ,
        "MCPPROXY_CONFIG": str(config_path),
        "PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}",
    }
    with (tmp_path / "honcho.log").open("wb") as log:
        process = subprocess.Popen(
            [str(Path(PYTHON).parent / "honcho"), "-f", str(REPO / "Procfile"), "start"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proxy = Proxy(process=process, port=port, config_path=config_path, data_dir=data_dir)
        try:
            with trio.fail_after(START_TIMEOUT_S):
                while True:
                    assert process.poll() is None, (tmp_path / "honcho.log").read_text()
                    with suppress(Exception):
                        if (await proxy.get("/readyz")).status_code == 200:
                            break
                    await trio.sleep(POLL_S)
            yield proxy
        finally:
            proxy.remember_pids()
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            proxy.kill_leftovers()


async def test_honcho_with_the_procfile_stops_every_upstream_on_sigterm(tmp_path: Path) -> None:
    daemon_pid = tmp_path / "daemon.pid"
    servers = [
        echo_server(),
        hostile("stubborn", "ignore-sigterm", "ignore-eof"),
        hostile("daemon", "double-fork", pidfile=daemon_pid),
    ]
    async with honcho(tmp_path, servers, **FAST_STOP) as proxy:
        statuses = {s["name"]: await proxy.wait_for(s["name"], "running") for s in servers}
        upstreams = {s["upstream_pid"] for s in statuses.values()} | {read_pid(daemon_pid)}
        workers = {s["worker_pid"] for s in statuses.values()}
        proxy.remember_pids()
        assert workers | upstreams <= proxy.seen_pids | {read_pid(daemon_pid)}
        started = time.perf_counter()
        proxy.process.send_signal(signal.SIGTERM)
        with trio.fail_after(STOP_BUDGET_S + STOP_MARGIN_S + 5):  # honcho's own KILL_WAIT is 5 s
            while proxy.process.poll() is None:
                await trio.sleep(POLL_S)
        measure("honcho stop time", f"{time.perf_counter() - started:.2f} s")
        left = await wait_all_gone(upstreams | workers, STOP_MARGIN_S)
        assert left == set(), {pid: cmdline(pid) for pid in left}
        assert alive(proxy.seen_pids) == set()


# --- hostile upstreams while running --------------------------------------------------------------


async def test_a_stderr_flood_never_blocks_the_upstream_and_its_log_stays_capped(tmp_path: Path) -> None:
    servers = [hostile("flood", "stderr-flood", args=("--flood-mb", "20")), echo_server("steady")]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        await proxy.wait_for("flood", "running")
        await proxy.wait_for("steady", "running")
        async with proxy.mcp() as session:
            await echo_ok(session, "flood", "not blocked")
            await echo_ok(session, "steady", "fine")
        log = proxy.data_dir / "logs" / "server-flood.log"
        rotated = log.with_name(log.name + ".1")
        assert log.stat().st_size <= LOG_CAP_BYTES
        assert rotated.exists() and rotated.stat().st_size <= LOG_CAP_BYTES
        tail = (await proxy.get("/api/v1/servers/flood/logs", params={"tail": 5})).json()
        assert tail["success"] is True
        lines = tail["data"]["lines"]
        assert len(lines) == 5 and all(isinstance(line, str) for line in lines)
        assert any("hostile_server ready" in line for line in lines), lines


async def test_misbehaving_upstreams_fail_alone_with_a_clear_error(tmp_path: Path) -> None:
    servers = [
        echo_server("good"),
        hostile("garbage", "garbage-stdout"),
        hostile("huge", "huge-message", tool_response_limit=0),  # the transports' limits, not the cut
        hostile("endless", "endless-line", call_tool_timeout=3),
        hostile("crash", "crash-on-call"),
        hostile("never", "never-init", init_timeout=2),
    ]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        # never-init: a failed start after init_timeout, and nothing of it left behind.
        attempt = await processes_of_a_start(proxy, "never", "never-init")
        failed = await wait_until(
            proxy, "never", lambda s: s.get("state") in ("backoff", "fatal"), "a failed start"
        )
        assert "init_timeout" in (failed["last_error"] or ""), failed
        assert alive(attempt) == set(), {pid: cmdline(pid) for pid in alive(attempt)}
        for name in ("good", "garbage", "huge", "endless", "crash"):
            await proxy.wait_for(name, "running")
        async with proxy.mcp() as session:
            # garbage on stdout is skipped, line by line; the answers still arrive.
            for i in range(3):
                await echo_ok(session, "garbage", f"through the noise {i}")
            await wait_for_log(proxy, "garbage", "ignored non-JSON-RPC stdout line")
            await echo_ok(session, "good", "unaffected by garbage")

            # A 20 MB answer is under the proxy's limits (32 MiB line, 64 MiB bus message). A plain call
            # is answered as one JSON body (the fast lane), so even the SDK client's 1 MiB cap on SSE
            # events does not apply; the session lives on either way.
            result = await call(session, "huge:huge")
            assert not result.is_error, text_of(result)[:300]
            assert len(text_of(result)) == 20_000_000
            await echo_ok(session, "huge", "still serving")
            async with unlimited_mcp(proxy) as big:
                result = await call(big, "huge:huge")
            assert not result.is_error, text_of(result)[:300]
            assert len(text_of(result)) == 20_000_000
            await echo_ok(session, "good", "unaffected by huge")

            # A line that never ends: the over-long line fails the server at once with a clear
            # last_error (or, at worst, the call times out), and the server is restarted or flagged.
            result = await call(session, "endless:endless")
            assert result.is_error, text_of(result)
            assert any(
                hint in text_of(result)
                for hint in ("call_tool_timeout", "stdout line over", "went away", "Connection closed")
            ), text_of(result)
            await echo_ok(session, "good", "unaffected by endless")
            await wait_for_log(proxy, "endless", "stdout line over")
            endless = await wait_until(
                proxy,
                "endless",
                lambda s: (
                    (s.get("state") != "running" or s.get("healthy") is False) and bool(s.get("last_error"))
                ),
                "not running or unhealthy, with a last_error, after an endless stdout line",
                timeout_s=STEP_TIMEOUT_S,
            )
            measure(
                "endless-line server status",
                f"state {endless['state']}, last_error {endless['last_error']!r}",
            )

            # crash-on-call: the call fails, the server says why, and comes back.
            before = (await proxy.servers())["crash"]
            result = await call(session, "crash:crash")
            assert result.is_error and "crash" in text_of(result), text_of(result)
            crashed = await wait_until(
                proxy, "crash", lambda s: s.get("state") in ("exited", "backoff", "starting"), "down"
            )
            assert "code 3" in (crashed["last_error"] or ""), crashed
            await echo_ok(session, "good", "unaffected by crash")
            again = await back_to_running(proxy, "crash", before)
            assert again["state"] == "running" and again["restarts"] == before["restarts"] + 1
            await echo_ok(session, "crash", "back")

        statuses = await proxy.servers()
        assert statuses["good"]["state"] == "running" and statuses["good"]["restarts"] == 0


async def test_a_hung_upstream_times_out_only_its_own_calls(tmp_path: Path) -> None:
    servers = [echo_server("hung", call_tool_timeout=2), echo_server("good")]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        hung = await proxy.wait_for("hung", "running")
        await proxy.wait_for("good", "running")
        os.kill(hung["upstream_pid"], signal.SIGSTOP)
        try:
            async with proxy.mcp() as session:
                good_calls = 0
                hung_result: list[tuple[types.CallToolResult, float]] = []

                async def call_hung() -> None:
                    started = time.perf_counter()
                    result = await call(session, "hung:echo", message="hello?")
                    hung_result.append((result, time.perf_counter() - started))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(call_hung)
                    while not hung_result:
                        await echo_ok(session, "good", f"good {good_calls}")
                        good_calls += 1
                result, took = hung_result[0]
                measure(
                    "hung upstream call answered after", f"{took:.2f} s ({good_calls} good calls meanwhile)"
                )
                assert result.is_error and "call_tool_timeout" in text_of(result), text_of(result)
                assert good_calls > 0
                statuses = await proxy.servers()
                assert statuses["hung"]["state"] == "running" and statuses["good"]["state"] == "running"
                os.kill(hung["upstream_pid"], signal.SIGCONT)
                await echo_ok(session, "hung", "awake")
        finally:
            with suppress(ProcessLookupError):
                os.kill(hung["upstream_pid"], signal.SIGCONT)
