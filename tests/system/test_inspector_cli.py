"""MCP Inspector's CLI (`@modelcontextprotocol/inspector-cli` from npm, pinned in tests/fixtures)
reaches direct mode at /mcp/all/mcp: it picks its transport by the URL's ending, and only a path
ending in /mcp gets streamable HTTP (/mcp/all would be taken for SSE)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from tests.proxyctl import API_KEY, FIXTURES, echo_server, running_proxy

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("node") is None, reason="needs node"),
]

INSPECTOR: Final = (
    FIXTURES / "node_modules" / "@modelcontextprotocol" / "inspector-cli" / "build" / "index.js"
)
NODE_TIMEOUT_S: Final = 60.0


async def inspector(*argv: str) -> dict[str, Any]:
    with trio.fail_after(NODE_TIMEOUT_S):
        # Run from its build directory: it finds its own package.json (for its client name) relative
        # to the working directory.
        done = await trio.run_process(
            ["node", str(INSPECTOR), *argv],
            cwd=INSPECTOR.parent,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def test_the_inspector_cli_lists_and_calls_direct_mode_tools_at_the_path_ending_in_mcp(
    tmp_path: Path,
) -> None:
    if not INSPECTOR.exists():
        pytest.fail(f"{INSPECTOR} is missing: run `npm ci --prefix tests/fixtures`")
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        url = f"{proxy.base_url}/mcp/all/mcp"
        listed = await inspector(url, "--method", "tools/list")
        assert {"echo__echo", "echo__add"} <= {tool["name"] for tool in listed["tools"]}
        called = await inspector(
            url, "--method", "tools/call", "--tool-name", "echo__echo", "--tool-arg", "message=hello"
        )
        assert called["content"][0]["text"] == "hello" and not called.get("isError")
        # The proxy's own endpoint, for comparison: the small menu, not the upstream tools.
        menu = await inspector(f"{proxy.base_url}/mcp", "--method", "tools/list")
        assert "retrieve_tools" in {tool["name"] for tool in menu["tools"]}


async def test_a_profiles_endpoints_also_answer_at_paths_ending_in_mcp(tmp_path: Path) -> None:
    if not INSPECTOR.exists():
        pytest.fail(f"{INSPECTOR} is missing: run `npm ci --prefix tests/fixtures`")
    profiles = [{"name": "reader", "servers": ["alpha"], "max_tier": "read"}]
    servers = [echo_server("alpha"), echo_server("beta")]
    async with running_proxy(tmp_path, servers, profiles=profiles) as proxy:
        await proxy.wait_for("alpha", "running")
        await proxy.wait_for("beta", "running")
        key = ["--header", f"X-API-Key: {API_KEY}"]  # the admin key: on a profile's path, its view
        direct = await inspector(f"{proxy.base_url}/mcp/p/reader/all/mcp", "--method", "tools/list", *key)
        names = {tool["name"] for tool in direct["tools"]}
        assert "alpha__echo" in names and not any(name.startswith("beta__") for name in names)
        menu = await inspector(f"{proxy.base_url}/mcp/p/reader/mcp", "--method", "tools/list", *key)
        menu_names = {tool["name"] for tool in menu["tools"]}
        assert "retrieve_tools" in menu_names and "call_tool_write" not in menu_names  # read-capped
