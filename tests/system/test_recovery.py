"""Servers come back by themselves (issue 17, findings 3, 4 and 5).

- A server that has run before and then crash-loops, or a remote that is
  down for longer than the failure budget, is retried at the capped backoff
  (`crash-looping`, `unreachable`), never left `fatal`.
- A fleet of slow-starting upstreams on two cores starts through a bounded
  number of start slots, so none times out its own `initialize`.
- A frozen worker (SIGSTOP) is noticed after three missed heartbeats and
  replaced at once; its in-flight calls fail when it is reported gone.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.proxyctl import SERVERS, Proxy, echo_server, free_port, running_proxy
from tests.system.test_remote_and_secrets import http_upstream
from tests.system.test_supervision import measure, text_of, wait_for_log

pytestmark = pytest.mark.system

QUICK_RETRIES = {"restart": {"initial_backoff": 0.2, "max_backoff": 1.0, "max_failures": 3}}
"""Small backoffs, so a minute-long outage plays out in seconds; the policy is the same at any scale."""
RECOVERY_TIMEOUT_S = 60.0


async def watch_states(proxy: Proxy, name: str, until: Any, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """Poll REST, keeping every distinct (state, condition) seen, until `until(server)`."""
    with trio.fail_after(RECOVERY_TIMEOUT_S):
        while True:
            server = (await proxy.servers()).get(name, {})
            key = (server.get("state"), server.get("condition"))
            if not seen or (seen[-1].get("state"), seen[-1].get("condition")) != key:
                seen.append(server)
            if until(server):
                return server
            await trio.sleep(0.05)


async def test_a_remote_down_for_longer_than_the_failure_budget_comes_back_by_itself(
    tmp_path: Path,
) -> None:
    port = free_port()
    seen: list[dict[str, Any]] = []
    with http_upstream(port=port) as (url, upstream):
        remote = {"name": "remote", "url": url, "protocol": "http", "health_check_interval": 1}
        async with running_proxy(tmp_path, [remote], **QUICK_RETRIES) as proxy:
            await proxy.wait_for("remote", "running")
            upstream.send_signal(signal.SIGTERM)
            upstream.wait(timeout=30)
            down = await watch_states(
                proxy,
                "remote",
                lambda s: s.get("condition") == "unreachable" and s.get("restarts", 0) > 3,
                seen,
            )
            assert down["state"] in ("backoff", "starting"), down
            with http_upstream(port=port):
                back = await watch_states(proxy, "remote", lambda s: s.get("state") == "running", seen)
            assert back.get("condition") is None
    assert all(s.get("state") != "fatal" for s in seen), [(s["state"], s.get("condition")) for s in seen]


async def test_a_crash_looping_server_keeps_coming_back_and_says_so(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    async with running_proxy(tmp_path, [echo_server("looper")], **QUICK_RETRIES) as proxy:
        server = await proxy.wait_for("looper", "running")
        for _ in range(6):  # twice the failure budget
            os.kill(server["worker_pid"], signal.SIGKILL)
            before = server["worker_pid"]
            server = await watch_states(
                proxy,
                "looper",
                lambda s, before=before: s.get("state") == "running" and s.get("worker_pid") != before,
                seen,
            )
    conditions = {s.get("condition") for s in seen if s.get("state") == "backoff"}
    assert "crash-looping" in conditions, seen
    assert all(s.get("state") != "fatal" for s in seen)


async def test_a_server_that_never_starts_still_goes_fatal(tmp_path: Path) -> None:
    broken = {"name": "broken", "command": str(tmp_path / "no-such-binary")}
    async with running_proxy(tmp_path, [broken], **QUICK_RETRIES) as proxy:
        fatal = await proxy.wait_for("broken", "fatal", timeout_s=RECOVERY_TIMEOUT_S)
        assert "no-such-binary" in fatal["last_error"] and "restart to retry" in fatal["last_error"]


async def test_fifty_slow_starting_upstreams_on_two_cores_all_start(tmp_path: Path) -> None:
    fleet = [
        {**echo_server(f"slow{i:02d}"), "args": [*echo_server()["args"], "--startup-cpu", "0.4"]}
        for i in range(50)
    ]
    started = time.monotonic()
    async with running_proxy(tmp_path, fleet, init_timeout="30s") as proxy:
        seen_fatal: set[str] = set()
        with trio.fail_after(240):
            while True:
                servers = await proxy.servers()
                seen_fatal |= {n for n, s in servers.items() if s["state"] == "fatal"}
                running = sum(s["state"] == "running" for s in servers.values())
                if running == len(fleet):
                    break
                await trio.sleep(0.2)
        elapsed = time.monotonic() - started
        restarts = sum(s["restarts"] for s in (await proxy.servers()).values())
        measure(
            "start storm",
            f"50 upstreams x 0.4 s CPU on {os.cpu_count()} cores: {elapsed:.1f}s, {restarts} restarts",
        )
        assert seen_fatal == set()
        assert restarts == 0, "no start should have timed out and been retried"


async def test_a_frozen_worker_is_replaced_and_its_calls_fail_at_once(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server("frozen"), echo_server("steady")]) as proxy:
        frozen = await proxy.wait_for("frozen", "running")
        await proxy.wait_for("steady", "running")
        outcome: list[tuple[str, float]] = []
        async with proxy.mcp() as session:

            async def in_flight() -> None:
                result = await session.call_tool(
                    "call_tool_read", {"name": "frozen:sleep", "args": {"seconds": 60}}
                )
                outcome.append((text_of(result) if result.is_error else "answered", time.monotonic()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(in_flight)
                await wait_for_log(proxy, "frozen", "sleep started")  # the upstream has the call
                stopped_at = time.monotonic()
                os.kill(frozen["worker_pid"], signal.SIGSTOP)
                with trio.fail_after(20):  # was ~33 s before the heartbeat fix
                    replaced = await watch_states(
                        proxy,
                        "frozen",
                        lambda s: s.get("state") == "running" and s.get("worker_pid") != frozen["worker_pid"],
                        [],
                    )
                replaced_at = time.monotonic()
            steady = await session.call_tool(
                "call_tool_read", {"name": "steady:echo", "args": {"message": "ok"}}
            )
            assert text_of(steady) == "ok"
        message, failed_at = outcome[0]
        assert message != "answered" and "frozen" in message, message
        measure(
            "frozen worker",
            f"in-flight call failed {failed_at - stopped_at:.1f}s after SIGSTOP, "
            f"replaced after {replaced_at - stopped_at:.1f}s",
        )
        assert replaced["worker_pid"] != frozen["worker_pid"]
        with trio.fail_after(10):
            while os.path.exists(f"/proc/{frozen['worker_pid']}"):
                await trio.sleep(0.05)


async def test_after_an_answer_over_the_line_limit_the_server_serves_on_at_once(tmp_path: Path) -> None:
    huge = {
        "name": "huge",
        "command": echo_server()["command"],
        "args": [str(SERVERS / "hostile_server.py"), "--mode", "huge-message"],
    }
    async with running_proxy(tmp_path, [huge]) as proxy:
        before = await proxy.wait_for("huge", "running")
        async with proxy.mcp() as session:
            result = await session.call_tool("call_tool_read", {"name": "huge:huge", "args": {"mb": 40}})
            assert result.is_error and "over the" in text_of(result) and "line limit" in text_of(result), (
                text_of(result)[:300]
            )
            again = await session.call_tool(
                "call_tool_read", {"name": "huge:echo", "args": {"message": "on"}}
            )
            assert not again.is_error and text_of(again) == "on", text_of(again)
        after = (await proxy.servers())["huge"]
        assert after["state"] == "running" and after["worker_pid"] == before["worker_pid"]
        assert after["restarts"] == before["restarts"]
