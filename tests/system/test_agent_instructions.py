"""Agents know what is behind the proxy (issue 22): the instructions of `initialize` (2025 era) and
`server/discover` (2026-07-28) and `retrieve_tools`' description name the servers of the caller's
profile, one line each, and stay current as servers come and go.
"""

from __future__ import annotations

from typing import Any, Final

import mcp.types as types
import pytest
import trio
from mcp.client import Client

from tests.proxyctl import echo_server, running_proxy
from tests.system.test_access import DEADLINE_S, add_client, bearer, mcp_client
from tests.system.test_cli import cli, ok

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "auto")
"""`auto` (the SDK's default) asks `server/discover` and gets 2026-07-28; a version pin would skip it."""
PROFILES: Final = [{"name": "reader", "servers": ["alpha"], "max_tier": "read"}]


def instructions_of(client: Client) -> str:
    text = client.session.instructions
    assert text is not None
    return text


def retrieve_description(tools: types.ListToolsResult) -> str:
    return next(t.description or "" for t in tools.tools if t.name == "retrieve_tools")


async def test_instructions_name_the_callers_servers_in_both_eras(tmp_path: Any) -> None:
    servers = [echo_server("alpha", description="Echoes what it is told, for testing"), echo_server("beta")]
    async with running_proxy(tmp_path, servers, profiles=PROFILES) as proxy:
        await proxy.wait_for("alpha", "running")
        await proxy.wait_for("beta", "running")
        reader = bearer(await add_client(proxy, "chat-app", "reader"))
        for mode in MODES:
            async with mcp_client(proxy, "/mcp", None, mode) as client:
                assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
                text = instructions_of(client)
                assert "retrieve_tools" in text, (mode, text)
                assert "- alpha: Echoes what it is told, for testing (" in text, (mode, text)
                assert "- beta: tools such as " in text, (mode, text)  # no description: a few tools
                assert "Servers: alpha, beta." in retrieve_description(await client.list_tools())
            async with mcp_client(proxy, "/mcp/all", reader, mode) as client:
                text = instructions_of(client)
                assert "server__tool" in text and "- alpha:" in text and "beta" not in text, (mode, text)
            async with mcp_client(proxy, "/mcp", reader, mode) as client:
                assert "beta" not in instructions_of(client)
                assert "Servers: alpha." in retrieve_description(await client.list_tools())
        shown = ok(await cli(proxy, "agent-instructions", "--profile", "reader")).stdout
        assert "/mcp/p/reader" in shown and "- alpha: Echoes" in shown and "beta" not in shown


async def test_a_server_added_later_is_announced_and_named(tmp_path: Any) -> None:
    async with running_proxy(tmp_path, [echo_server("alpha")]) as proxy:
        await proxy.wait_for("alpha", "running")
        changed = trio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        url = f"{proxy.base_url}/mcp"
        async with Client(url, mode="legacy", cache=None, message_handler=on_message) as client:
            assert "Servers: alpha." in retrieve_description(await client.list_tools())
            added = await proxy.post("/api/v1/servers", json=echo_server("gamma", description="Counts sheep"))
            assert added.status_code == 201, added.text
            await proxy.wait_for("gamma", "running")
            with trio.fail_after(DEADLINE_S):
                await changed.wait()
            assert "Servers: alpha, gamma." in retrieve_description(await client.list_tools())
        async with mcp_client(proxy, "/mcp", None, "auto") as client:
            assert client.protocol_version == "2026-07-28"
            assert "- gamma: Counts sheep" in instructions_of(client)
