"""Messages an agent or a person acts on say what happened, once: a timeout names the tool once,
the quarantine hint reads as a sentence, and `upstream_servers patch` never answers success for a
change it did not make (a real proxy, the MCP SDK client and the real `mcpproxy` CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.proxyctl import PYTHON, SERVERS, Proxy, echo_server, running_proxy
from tests.system.test_cli import cli

pytestmark = pytest.mark.system


async def manage(proxy: Proxy, **arguments: Any) -> tuple[bool, str]:
    """upstream_servers as an agent with the management right (the API key) calls it."""
    async with proxy.mcp("/mcp", headers=proxy.headers) as session:
        result = await session.call_tool("upstream_servers", arguments)
    text = result.content[0].text if result.content and result.content[0].type == "text" else ""
    return result.is_error, text


async def test_a_timeout_names_the_tool_once(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(call_tool_timeout=1)]) as proxy:
        await proxy.wait_for("echo", "running")
        slow = await cli(proxy, "tools", "call", "echo:sleep", "--args", '{"seconds": 5}')
        assert slow.returncode == 1
        assert slow.stderr.splitlines() == [
            "mcpproxy: echo:sleep: upstream did not answer within call_tool_timeout (1s)"
        ]
        failed = await cli(proxy, "tools", "call", "echo:fail", "--args", '{"message": "boom"}')
        assert failed.stderr.splitlines() == ["mcpproxy: echo:fail: boom"]  # a tool's own error is named


async def test_upstream_servers_patch_says_what_it_did_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    held = echo_server("held", quarantined=True)
    async with running_proxy(tmp_path, [echo_server(), held]) as proxy:
        await proxy.wait_for("echo", "running")
        before = proxy.config_path.read_text()

        error, text = await manage(proxy, operation="patch", name="held", quarantined=False)
        assert error
        assert text == (
            "upstream_servers: patch: nothing was changed (quarantined: no MCP operation lifts or sets "
            "quarantine); a quarantined server stays so until a human approves it (`mcpproxy upstream "
            "approve held`, or POST /api/v1/servers/held/unquarantine)"
        )
        # Beside a field it does take, the whole patch is still refused: nothing half-applied.
        error, text = await manage(proxy, operation="patch", name="held", quarantined=False, command=PYTHON)
        assert error and "nothing was changed" in text
        error, text = await manage(proxy, operation="patch", name="held", frobnicate=1)
        assert error and "frobnicate: not an argument of upstream_servers" in text
        assert proxy.config_path.read_text() == before

        error, text = await manage(
            proxy, operation="patch", name="echo", command=PYTHON, args=[str(SERVERS / "echo_server.py")]
        )
        assert not error
        assert json.loads(text)["note"] == "nothing changed: echo already has these settings"
        assert proxy.config_path.read_text() == before

        error, text = await manage(proxy, operation="patch", name="echo", init_timeout=45, command=PYTHON)
        assert not error, text
        assert "note" not in json.loads(text)
        echo = next(s for s in json.loads(proxy.config_path.read_text())["mcpServers"] if s["name"] == "echo")
        assert echo["init_timeout"] == 45

        async with proxy.mcp("/mcp") as session:
            refused = await session.call_tool(
                "call_tool_read", {"name": "held:echo", "args": {"message": "x"}}
            )
        assert refused.is_error
        assert refused.content[0].type == "text"
        assert refused.content[0].text == (
            "server 'held' is quarantined: its tools cannot be called until a human approves it "
            "(`mcpproxy upstream approve held`, or POST /api/v1/servers/held/unquarantine)"
        )
