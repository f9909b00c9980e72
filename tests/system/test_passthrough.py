"""Progress notifications and cancellation pass through the proxy, both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.proxyctl import echo_server, everything_server, running_proxy

pytestmark = pytest.mark.system


async def test_upstream_progress_reaches_the_client(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        seen: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total))

        async with proxy.mcp() as session:
            result = await session.call_tool(
                "call_tool_read",
                {"name": "everything:trigger-long-running-operation", "args": {"duration": 1, "steps": 3}},
                progress_callback=on_progress,
            )
        assert not result.is_error
        assert [p for p, _ in seen] == [1, 2, 3] and seen[-1][1] == 3


async def test_a_client_cancellation_reaches_the_upstream(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            with trio.move_on_after(1.5):
                await session.call_tool("call_tool_read", {"name": "echo:sleep", "args": {"seconds": 60}})
            with trio.fail_after(20):
                while True:
                    lines = (await proxy.get("/api/v1/servers/echo/logs", params={"tail": 20})).json()[
                        "data"
                    ]["lines"]
                    if "sleep cancelled" in lines:
                        break
                    await trio.sleep(0.1)
            # The session and the server are still fine afterwards.
            again = await session.call_tool(
                "call_tool_read", {"name": "echo:echo", "args": {"message": "after"}}
            )
            assert again.content[0].text == "after"
