"""Tool approval from the terminal: `tools list` shows it, `tools approve` grants it, and every
message says what changed (the real `mcpproxy` CLI against a real proxy and upstream)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from tests.proxyctl import POLL_S, START_TIMEOUT_S, Proxy, echo_server, running_proxy
from tests.system.test_cli import cli, ok

pytestmark = pytest.mark.system


async def approvals(proxy: Proxy) -> dict[str, str]:
    listed = json.loads(ok(await cli(proxy, "tools", "list", "echo", "-o", "json")).stdout)
    return {tool["name"]: tool["approval"] for tool in listed}


async def test_held_tools_are_shown_approved_from_the_cli_and_each_message_says_what_changed(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "tools.json"
    async with running_proxy(tmp_path, [echo_server(env={"ECHO_SERVER_TOOLS_FILE": str(spec)})]) as proxy:
        await proxy.wait_for("echo", "running")
        spec.write_text(json.dumps({"echo_description": "Echo, reworded.", "extra_tools": ["wipe"]}))
        ok(await cli(proxy, "upstream", "restart", "echo", "--wait"))
        with trio.fail_after(START_TIMEOUT_S):
            while (await approvals(proxy)).get("wipe") != "pending":
                await trio.sleep(POLL_S)
        assert (await approvals(proxy))["echo"] == "changed"
        assert (await approvals(proxy))["add"] == "approved"

        table = ok(await cli(proxy, "tools", "list", "echo"))
        rows = {
            words[0]: words[1]
            for words in map(str.split, table.stdout.splitlines())
            if words and words[0].startswith("echo:")
        }
        assert rows["echo:wipe"] == "pending" and rows["echo:echo"] == "changed"
        assert rows["echo:add"] == "approved"
        assert "`mcpproxy tools approve echo [TOOL ...]`" in table.stderr

        refused = await cli(proxy, "tools", "call", "echo:wipe")
        assert refused.returncode == 1
        assert "is held until a human approves it (`mcpproxy tools approve echo wipe`" in refused.stderr

        # Not quarantined: `upstream approve` changes nothing and says so, pointing at the held tools.
        not_quarantined = ok(await cli(proxy, "upstream", "approve", "echo"))
        assert not_quarantined.stdout.splitlines() == [
            "echo: not quarantined and no change pending; nothing changed",
            "echo: held tools (new or changed): echo, wipe; review them with `mcpproxy tools list echo "
            "-o json`, approve with `mcpproxy tools approve echo [TOOL ...]`",
        ]
        assert (await approvals(proxy))["wipe"] == "pending"

        unknown = await cli(proxy, "tools", "approve", "echo", "nope")
        assert unknown.returncode == 4 and "echo has no tool 'nope'" in unknown.stderr

        one = ok(await cli(proxy, "tools", "approve", "echo", "wipe", "add"))
        assert one.stdout.splitlines() == [
            "echo:wipe: approved (was pending)",
            "echo:add: was already approved; nothing changed",
            "echo: still held: echo",
        ]
        rest = ok(await cli(proxy, "tools", "approve", "echo"))
        assert rest.stdout.splitlines() == ["echo:echo: approved (was changed)"]
        again = ok(await cli(proxy, "tools", "approve", "echo"))
        assert again.stdout.splitlines() == ["echo: no tools were held; nothing changed"]

        assert set((await approvals(proxy)).values()) == {"approved"}
        called = ok(await cli(proxy, "tools", "call", "echo:wipe", "-o", "json"))
        assert not json.loads(called.stdout).get("isError")
