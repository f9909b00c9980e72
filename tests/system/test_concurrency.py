"""Concurrency limits (issue 23 item 3): `max_concurrent_calls` with a bounded FIFO queue and
`queue_timeout`, per server and for the whole proxy, on every call surface.

The upstream is tests/servers/echo_server.py with ECHO_SERVER_GATE: its `gate` tool holds each call
until the test creates the gate file, so calls stay in flight exactly as long as a test needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import httpx2
import mcp.types as types
import pytest
import trio
from mcp.client import Client

from tests.proxyctl import Proxy, echo_server, running_proxy

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
DEADLINE_S: Final = 60.0
ERROR_KEY: Final = "mcpproxy/error"


def gated(gate: Path, name: str = "db", **extra: Any) -> dict[str, Any]:
    return echo_server(name, env={"ECHO_SERVER_GATE": str(gate)}, **extra)


def shed(result: types.CallToolResult) -> bool:
    error = (result.meta or {}).get(ERROR_KEY) or {}
    return bool(result.is_error and error.get("kind") == "overloaded" and error.get("retryable"))


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


async def rejected_records(proxy: Proxy, tool: str, expected: int) -> list[dict[str, Any]]:
    """The `rejected` activity records of `tool`, once there are `expected` of them (the log is written
    off the call's path, so the last may land a moment after its answer), or as they are at the deadline."""
    records: list[dict[str, Any]] = []
    with trio.move_on_after(DEADLINE_S):
        while True:
            params = {"status": "rejected", "tool": tool, "limit": 100}
            answer = await proxy.get("/api/v1/activity", params=params)
            assert answer.status_code == 200, answer.text
            records = answer.json()["data"]["records"]
            if len(records) >= expected:
                break
            await trio.sleep(0.05)
    return records


async def gate_entered(proxy: Proxy, count: int = 1) -> None:
    """Until db's upstream has `count` calls of `gate` in hand (it logs each to stderr)."""
    while True:
        logs = (await proxy.get("/api/v1/servers/db/logs", params={"tail": 200})).json()["data"]["lines"]
        if sum("gate entered" in line for line in logs) >= count:
            return
        await trio.sleep(0.05)


async def call_many(client: Client, path: str, count: int, results: list[types.CallToolResult]) -> None:
    """`count` parallel calls of db's `gate`, through `/mcp/all` or `/mcp`'s `call_tool_read`."""

    async def one() -> None:
        if path == "/mcp/all":
            results.append(await client.call_tool("db__gate", {}))
        else:
            results.append(await client.call_tool("call_tool_read", {"name": "db:gate", "args": {}}))

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["/mcp/all", "/mcp"])
async def test_twenty_parallel_calls_to_a_server_running_two_with_a_queue_of_five_shed_thirteen(
    tmp_path: Path, mode: str, path: str
) -> None:
    gate = tmp_path / "gate"
    server = gated(gate, max_concurrent_calls=2, max_queued_calls=5, queue_timeout="60s")
    async with running_proxy(tmp_path, [server]) as proxy:
        await proxy.wait_for("db", "running")
        results: list[types.CallToolResult] = []
        with trio.fail_after(DEADLINE_S):
            async with (
                Client(f"{proxy.base_url}{path}", mode=mode, cache=None) as client,  # type: ignore[arg-type]
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(call_many, client, path, 20, results)
                # 2 run and 5 wait while the gate is closed: every other call is answered at once.
                while len(results) < 13:
                    await trio.sleep(0.05)
                assert all(shed(r) for r in results), [text_of(r) for r in results]
                assert "max_concurrent_calls" in text_of(results[0])
                gate.touch()
        passed = [r for r in results if not r.is_error]
        assert len(results) == 20
        assert len(passed) == 7, [text_of(r) for r in results if r.is_error]
        assert all(text_of(r) == "passed" for r in passed)
        assert sum(shed(r) for r in results) == 13
        assert len(await rejected_records(proxy, "gate", 13)) == 13


async def test_rest_answers_a_shed_call_429_with_retry_after(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running_proxy(tmp_path, [gated(gate, max_concurrent_calls=1, max_queued_calls=0)]) as proxy:
        await proxy.wait_for("db", "running")
        body = {"name": "db:gate", "args": {}}
        answers: list[httpx2.Response] = []

        async def held() -> None:
            answers.append(await proxy.post("/api/v1/tools/call", json=body))

        with trio.fail_after(DEADLINE_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held)
                await gate_entered(proxy)  # the held call has the one slot
                probe = {"name": "db:echo", "args": {"message": "probe"}}
                refused = await proxy.post("/api/v1/tools/call", json=probe)
                gate.touch()
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "max_concurrent_calls" in refused.json()["error"]
        assert answers[0].status_code == 200
        assert answers[0].json()["data"]["result"]["content"][0]["text"] == "passed"
        assert len(await rejected_records(proxy, "echo", 1)) == 1


async def test_a_call_waiting_longer_than_queue_timeout_is_shed(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    server = gated(gate, max_concurrent_calls=1, max_queued_calls=5, queue_timeout="1s")
    async with running_proxy(tmp_path, [server]) as proxy:
        await proxy.wait_for("db", "running")
        results: list[types.CallToolResult] = []
        with trio.fail_after(DEADLINE_S):
            async with (
                Client(f"{proxy.base_url}/mcp/all", mode="2026-07-28", cache=None) as client,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(call_many, client, "/mcp/all", 1, results)
                await gate_entered(proxy)
                nursery.start_soon(call_many, client, "/mcp/all", 1, results)
                while not results:  # the second waits for the held slot, then runs out of time
                    await trio.sleep(0.05)
                assert shed(results[0]) and "wait ran out" in text_of(results[0])
                gate.touch()
        assert [text_of(r) for r in results[1:]] == ["passed"]


async def test_time_in_the_queue_does_not_count_against_call_tool_timeout(tmp_path: Path) -> None:
    """The global limit: one call at a time across servers. A call to `fast` (call_tool_timeout 2s)
    waits behind `db`'s held call for longer than 2 s, then runs and succeeds."""
    gate = tmp_path / "gate"
    servers = [gated(gate), echo_server("fast", call_tool_timeout="2s")]
    async with running_proxy(tmp_path, servers, max_concurrent_calls=1, queue_timeout="60s") as proxy:
        await proxy.wait_for("db", "running")
        await proxy.wait_for("fast", "running")
        results: dict[str, types.CallToolResult] = {}
        with trio.fail_after(DEADLINE_S):
            async with (
                Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client,
                trio.open_nursery() as nursery,
            ):

                async def call(name: str, tool: str, args: dict[str, Any]) -> None:
                    results[name] = await client.call_tool(tool, args)

                nursery.start_soon(call, "held", "db__gate", {})
                await gate_entered(proxy)
                nursery.start_soon(call, "queued", "fast__echo", {"message": "after the queue"})
                await trio.sleep(3.0)  # longer than fast's call_tool_timeout, all of it in the queue
                assert not results, {k: text_of(v) for k, v in results.items()}
                gate.touch()
        assert text_of(results["held"]) == "passed"
        assert not results["queued"].is_error, text_of(results["queued"])
        assert text_of(results["queued"]) == "after the queue"
