"""Lazy start and idle stop (issue 23 item 1): `start: on_demand`, `idle_timeout`, `max_lifetime`.

A real `mcpproxy serve` with our echo servers; processes are checked in /proc, calls are made by
the MCP Python SDK's client in both protocol eras. Every wait has a deadline; nothing is timed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import pytest
import trio
from mcp.client import Client

from tests.proxyctl import Proxy, alive, descendants, echo_server, running_proxy

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
DEADLINE_S: Final = 60.0
ON_DEMAND: Final = {"start": "on_demand"}


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


def upstreams_of(proxy: Proxy) -> set[int]:
    """Every echo server process below the proxy."""
    found = set()
    for pid in descendants(proxy.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"echo_server.py" in argv:
            found.add(pid)
    return found


async def learned(proxy: Proxy, *names: str) -> None:
    """An on-demand server with nothing cached starts once to learn its tools, then goes idle."""
    for name in names:
        status = await proxy.wait_for(name, "idle", DEADLINE_S)
        assert status["tool_count"] > 0, status


async def listed(proxy: Proxy, mode: str) -> set[str]:
    async with Client(f"{proxy.base_url}/mcp/all", mode=mode, cache=None) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def found_by_search(proxy: Proxy, query: str) -> str:
    async with Client(f"{proxy.base_url}/mcp", mode="legacy", cache=None) as client:
        return text_of(await client.call_tool("retrieve_tools", {"query": query, "limit": 50}))


async def test_idle_servers_are_listed_and_searched_from_the_cache_before_they_run(tmp_path: Path) -> None:
    servers = [echo_server(name, **ON_DEMAND) for name in ("alpha", "beta", "gamma")]
    async with running_proxy(tmp_path, servers) as proxy:
        with trio.fail_after(DEADLINE_S):
            await learned(proxy, "alpha", "beta", "gamma")
            while upstreams_of(proxy):  # the learning runs' upstreams are being stopped
                await trio.sleep(0.05)
            for mode in MODES:
                assert {"alpha__echo", "beta__add", "gamma__sleep"} <= await listed(proxy, mode)
            hits = await found_by_search(proxy, "add two numbers")
            assert all(f"{name}:add" in hits for name in ("alpha", "beta", "gamma")), hits
    # A restart of the proxy keeps the cache: nothing starts, everything is listed and searchable.
    async with running_proxy(tmp_path, servers) as proxy:
        with trio.fail_after(DEADLINE_S):
            for name in ("alpha", "beta", "gamma"):
                status = await proxy.wait_for(name, "idle", DEADLINE_S)
                assert status["last_exit"] is None and status["worker_pid"] is None, status
            for mode in MODES:
                assert {"alpha__echo", "beta__add", "gamma__sleep"} <= await listed(proxy, mode)
            hits = await found_by_search(proxy, "echo a message back")
            assert "beta:echo" in hits, hits
            assert not upstreams_of(proxy)
            assert all(s["state"] == "idle" for s in (await proxy.servers()).values())


@pytest.mark.parametrize("mode", MODES)
async def test_the_first_call_starts_an_idle_server_and_gets_its_answer(tmp_path: Path, mode: str) -> None:
    async with running_proxy(tmp_path, [echo_server("lazy", **ON_DEMAND)]) as proxy:
        with trio.fail_after(DEADLINE_S):
            await learned(proxy, "lazy")
            async with Client(f"{proxy.base_url}/mcp/all", mode=mode, cache=None) as client:
                result = await client.call_tool("lazy__echo", {"message": "wake up"})
                assert not result.is_error, text_of(result)
                assert text_of(result) == "wake up"
            status = (await proxy.servers())["lazy"]
            assert status["state"] == "running" and status["worker_pid"] is not None, status
            records: list[dict[str, Any]] = []
            while not records:  # the activity log is written off the call's path
                records = (await proxy.get("/api/v1/activity", params={"tool": "echo"})).json()["data"][
                    "records"
                ]
                await trio.sleep(0.05)
            assert records[0]["status"] == "ok", records


async def test_a_server_idle_past_its_idle_timeout_is_stopped_to_idle_with_no_process_left(
    tmp_path: Path,
) -> None:
    server = echo_server("sleepy", start="on_demand", idle_timeout="1s")
    async with running_proxy(tmp_path, [server]) as proxy:
        with trio.fail_after(DEADLINE_S):
            await learned(proxy, "sleepy")
            async with Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client:
                assert text_of(await client.call_tool("sleepy__echo", {"message": "once"})) == "once"
            running = await proxy.wait_for("sleepy", "running", DEADLINE_S)
            pids = {running["worker_pid"], running["upstream_pid"]} | upstreams_of(proxy)
            assert alive(pids) == pids
            status = await proxy.wait_for("sleepy", "idle", DEADLINE_S)
            assert status["last_error"] is None and status["worker_pid"] is None, status
            while alive(pids):  # reaped processes may linger as zombies for a moment
                await trio.sleep(0.05)
            assert not upstreams_of(proxy)
            # Idle again means listed again, and callable again.
            assert "sleepy__echo" in await listed(proxy, "2026-07-28")
            async with Client(f"{proxy.base_url}/mcp/all", mode="2026-07-28", cache=None) as client:
                assert text_of(await client.call_tool("sleepy__echo", {"message": "twice"})) == "twice"


async def test_max_lifetime_recycles_a_server_once_its_call_in_flight_has_finished(tmp_path: Path) -> None:
    server = echo_server("aging", max_lifetime="1s")
    async with running_proxy(tmp_path, [server]) as proxy:
        first = await proxy.wait_for("aging", "running", DEADLINE_S)
        with trio.fail_after(DEADLINE_S):
            results: list[types.CallToolResult] = []
            async with Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client:
                async with trio.open_nursery() as nursery:

                    async def long_call() -> None:
                        results.append(await client.call_tool("aging__sleep", {"seconds": 8}))

                    nursery.start_soon(long_call)
                    # The generation outlives max_lifetime while the call runs: it drains, not stops.
                    await proxy.wait_for("aging", "running", DEADLINE_S, draining=True)
                    assert not results
                assert not results[0].is_error, text_of(results[0])
                assert text_of(results[0]) == "slept"
                # A call made while it drains waits for the next generation.
                after = await client.call_tool("aging__echo", {"message": "next"})
                assert not after.is_error and text_of(after) == "next", text_of(after)
            status = (await proxy.servers())["aging"]
            assert status["worker_pid"] != first["worker_pid"], status
            assert status["restarts"] == first["restarts"], status


async def test_a_changed_tool_set_at_an_on_demand_start_is_held_by_pinning(tmp_path: Path) -> None:
    tools_file = tmp_path / "tools.json"
    server = echo_server("shifty", env={"ECHO_SERVER_TOOLS_FILE": str(tools_file)}, **ON_DEMAND)
    async with running_proxy(tmp_path, [server]) as proxy:
        with trio.fail_after(DEADLINE_S):
            await learned(proxy, "shifty")
            assert "shifty__echo" in await listed(proxy, "legacy")
            tools_file.write_text(json.dumps({"echo_description": "Echo, and mail it to someone."}))
            async with Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client:
                result = await client.call_tool("shifty__echo", {"message": "hi"})
                assert result.is_error, text_of(result)
                assert "changed since it was approved" in text_of(result), text_of(result)
                error: dict[str, Any] = (result.meta or {}).get("mcpproxy/error") or {}
                assert error.get("kind") == "held", result.meta
                untouched = await client.call_tool("shifty__add", {"a": 1, "b": 2})
                assert not untouched.is_error, text_of(untouched)
            assert "shifty__echo" not in await listed(proxy, "legacy")
            tools = (await proxy.get("/api/v1/servers/shifty/tools")).json()["data"]["tools"]
            echo = next(t for t in tools if t["name"] == "echo")
            assert echo["approval"] == "changed", echo
