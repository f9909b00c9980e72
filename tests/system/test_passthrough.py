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


async def test_a_progress_message_never_carries_a_secret_the_proxy_injected(tmp_path: Path) -> None:
    secret = "progress-secret-" + "p" * 24
    echo = echo_server(env={"API_TOKEN": "${keyring:tok}"})
    async with running_proxy(tmp_path, [echo]) as proxy:
        assert (await proxy.post("/api/v1/secrets", json={"name": "tok", "value": secret})).status_code == 201
        await proxy.wait_for("echo", "running")
        messages: list[str | None] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            messages.append(message)

        with trio.fail_after(60):
            while not messages or "••••" not in (messages[-1] or ""):  # the gateway learns the value
                async with proxy.mcp() as session:
                    await session.call_tool(
                        "call_tool_read",
                        {"name": "echo:sleep", "args": {"seconds": 0, "progress_env": "API_TOKEN"}},
                        progress_callback=on_progress,
                    )
                await trio.sleep(0.1)
        assert messages[-1] == "••••", messages
