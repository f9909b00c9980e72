"""`mcpproxy serve` restarts a crashed gateway or supervisor (issue 17, finding 1).

The gateway is the one process that is not isolated: a `kill -9` of it used
to stop everything. Now serve starts it again and the workers reconnect to it,
so calls resume with no upstream restarted. A killed supervisor comes back
with a new gateway, and its servers run again with nothing of the old run
left behind.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import mcp.types as types
import pytest
import trio

from tests.proxyctl import Proxy, alive, echo_server, running_proxy

pytestmark = pytest.mark.system

RECOVERY_TIMEOUT_S = 60.0


async def echo_through_the_proxy(proxy: Proxy, message: str) -> str:
    """Call echo through /mcp/all, retrying while the gateway is away; every try has a deadline."""
    with trio.fail_after(RECOVERY_TIMEOUT_S):
        while True:
            try:
                async with proxy.mcp("/mcp/all") as session:
                    result = await session.call_tool("echo__echo", {"message": message})
                    if not result.is_error:
                        content = result.content[0]
                        assert isinstance(content, types.TextContent)
                        return content.text
            except Exception:  # the gateway is not listening yet, or not yet synced
                pass
            await trio.sleep(0.2)


async def wait_for_new_child(proxy: Proxy, module: str, old: int) -> int:
    with trio.fail_after(RECOVERY_TIMEOUT_S):
        while True:
            try:
                pid = proxy.child(module)
            except AssertionError:
                pid = old
            if pid != old:
                return pid
            await trio.sleep(0.05)


async def test_a_killed_gateway_is_restarted_and_no_upstream_restarts(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        before = await proxy.wait_for("echo", "running")
        assert await echo_through_the_proxy(proxy, "before") == "before"
        gateway = proxy.child("gateway")
        supervisor = proxy.child("supervisor")

        os.kill(gateway, signal.SIGKILL)
        await wait_for_new_child(proxy, "gateway", gateway)
        assert await echo_through_the_proxy(proxy, "after") == "after"

        after = await proxy.wait_for("echo", "running")
        assert proxy.child("supervisor") == supervisor
        for field in ("worker_pid", "upstream_pid", "restarts"):
            assert after[field] == before[field], field
        assert proxy.process.poll() is None
    log = (tmp_path / "proxy.log").read_text()
    assert "the gateway process exited with code -9; starting gateway again" in log


async def test_a_killed_supervisor_comes_back_with_its_servers_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        before = await proxy.wait_for("echo", "running")
        supervisor = proxy.child("supervisor")

        os.kill(supervisor, signal.SIGKILL)
        await wait_for_new_child(proxy, "supervisor", supervisor)
        assert await echo_through_the_proxy(proxy, "back") == "back"
        after = await proxy.wait_for("echo", "running")
        assert after["upstream_pid"] != before["upstream_pid"]
        with trio.fail_after(RECOVERY_TIMEOUT_S):
            while alive({before["upstream_pid"], before["worker_pid"]}):
                await trio.sleep(0.05)
        assert proxy.process.poll() is None
