"""A call the proxy could not carry out says why in a stable, machine-readable way (issue 17, finding 9).

`_meta["mcpproxy/error"] = {"kind", "server"}` marks every error the proxy
answered itself — a server gone, quarantined, unknown, timed out — so a
client (and the activity log) can tell "server gone" from "tool failed"; a
tool's own failure carries no kind.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
import trio

from tests.proxyctl import SERVERS, echo_server, running_proxy
from tests.system.test_supervision import wait_for_log

pytestmark = pytest.mark.system


def kind_of(result: types.CallToolResult) -> Any:
    marker = (result.meta or {}).get("mcpproxy/error")
    return marker["kind"] if marker else None


async def test_errors_of_the_proxy_carry_a_kind_and_a_tools_own_failure_does_not(tmp_path: Path) -> None:
    servers = [echo_server("echo"), echo_server("held", quarantined=True), echo_server("off", enabled=False)]
    async with running_proxy(tmp_path, servers) as proxy:
        echo = await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session, proxy.mcp("/mcp/all") as direct:

            async def read(name: str, **args: Any) -> types.CallToolResult:
                result: types.CallToolResult = await session.call_tool(
                    "call_tool_read", {"name": name, "args": args}
                )
                return result

            assert kind_of(await read("echo:fail", message="no")) is None
            failed = await direct.call_tool("echo__fail", {"message": "no"})
            assert failed.is_error and kind_of(failed) is None
            assert kind_of(await read("held:echo", message="x")) == "quarantined"
            assert kind_of(await read("off:echo", message="x")) == "unavailable"
            assert kind_of(await read("nowhere:echo", message="x")) == "unknown_server"
            assert kind_of(await read("echo:nothing")) == "unknown_tool"
            destructive = await read("echo:delete_everything")
            assert kind_of(destructive) == "destructive_variant"

            outcome: list[types.CallToolResult] = []

            async def sleeper() -> None:
                outcome.append(await direct.call_tool("echo__sleep", {"seconds": 60}))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sleeper)
                await wait_for_log(proxy, "echo", "sleep started")
                os.kill(echo["worker_pid"], signal.SIGKILL)
            assert outcome[0].is_error and kind_of(outcome[0]) == "unavailable", outcome[0]
            meta = (outcome[0].meta or {})["mcpproxy/error"]
            assert meta["server"] == "echo"

        statuses: dict[tuple[str, str], str] = {}
        with trio.fail_after(30):  # the activity log is written off the call path
            while ("echo", "sleep") not in statuses:
                answer = await proxy.get("/api/v1/activity", params={"limit": 100})
                statuses = {(r["server"], r["tool"]): r["status"] for r in answer.json()["data"]["records"]}
                await trio.sleep(0.05)
        assert statuses[("held", "echo")] == "blocked"
        assert statuses[("off", "echo")] == "unavailable"
        assert statuses[("echo", "sleep")] == "unavailable"
        assert statuses[("echo", "fail")] == "error"
        filtered = await proxy.get("/api/v1/activity", params={"status": "unavailable"})
        assert filtered.status_code == 200 and filtered.json()["data"]["total"] == 2


async def test_an_invalid_result_is_refused_once_with_a_kind_and_the_server_serves_on(tmp_path: Path) -> None:
    raw = {"name": "raw", "command": echo_server()["command"], "args": [str(SERVERS / "raw_server.py")]}
    async with running_proxy(tmp_path, [raw]) as proxy:
        before = await proxy.wait_for("raw", "running")
        async with proxy.mcp("/mcp/all") as session:
            broken = await session.call_tool("raw__broken", {})
            assert broken.is_error and kind_of(broken) == "upstream_error", broken
            assert "invalid tool result" in broken.content[0].text  # type: ignore[union-attr]
            fine = await session.call_tool("raw__echo", {"message": "still here"})
            assert not fine.is_error and fine.content[0].text == "still here"  # type: ignore[union-attr]
        after = (await proxy.servers())["raw"]
        assert after["worker_pid"] == before["worker_pid"] and after["state"] == "running"
