"""The README's "Connect your client" section, checked: each snippet parses as its client reads it,
has the keys that client expects, and names a URL where a running proxy answers MCP."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.proxyctl import FIXTURES, REPO, Proxy, echo_server, running_proxy

pytestmark = pytest.mark.system

README: Final = REPO / "README.md"
DOCUMENTED_BASE: Final = "http://127.0.0.1:8080"
MCP_REMOTE: Final = FIXTURES / "node_modules" / "mcp-remote" / "dist" / "proxy.js"
BRIDGE_TIMEOUT_S: Final = 60.0
SNIPPET_RE: Final = re.compile(
    r"^\*\*(?P<client>[^*]+)\*\*[^\n]*\n\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.M | re.S
)


def client_snippets() -> dict[str, tuple[str, str]]:
    """Client name -> (language, snippet), from the README section as written."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Connect your client") :]
    section = section[: section.index("\n## ", 1)]
    return {m["client"]: (m["lang"], m["body"]) for m in SNIPPET_RE.finditer(section)}


def claude_desktop(lang: str, body: str) -> str:
    assert lang == "json"
    entry = json.loads(body)["mcpServers"]["mcpproxy"]
    assert entry["command"] == "npx" and entry["args"][:2] == ["-y", "mcp-remote"]
    assert len(entry["args"]) == 3
    return str(entry["args"][2])


def claude_code(lang: str, body: str) -> str:
    assert lang == "sh"
    argv = shlex.split(body)
    assert argv[:5] == ["claude", "mcp", "add", "--transport", "http"] and argv[5] == "mcpproxy"
    assert len(argv) == 7
    return argv[6]


def cursor(lang: str, body: str) -> str:
    assert lang == "json"
    entry = json.loads(body)["mcpServers"]["mcpproxy"]
    assert set(entry) == {"url"}
    return str(entry["url"])


def vs_code(lang: str, body: str) -> str:
    assert lang == "json"
    entry = json.loads(body)["servers"]["mcpproxy"]
    assert entry["type"] == "http" and set(entry) == {"type", "url"}
    return str(entry["url"])


def windsurf(lang: str, body: str) -> str:
    assert lang == "json"
    entry = json.loads(body)["mcpServers"]["mcpproxy"]
    assert set(entry) == {"serverUrl"}
    return str(entry["serverUrl"])


def codex(lang: str, body: str) -> str:
    assert lang == "toml"
    entry = tomllib.loads(body)["mcp_servers"]["mcpproxy"]
    assert set(entry) == {"url"}
    return str(entry["url"])


def gemini(lang: str, body: str) -> str:
    assert lang == "json"
    entry = json.loads(body)["mcpServers"]["mcpproxy"]
    assert set(entry) == {"httpUrl"}
    return str(entry["httpUrl"])


def inspector(lang: str, body: str) -> str:
    assert lang == "sh"
    argv = shlex.split(body)
    assert argv[:3] == ["npx", "@modelcontextprotocol/inspector", "--cli"]
    assert argv[4:] == ["--method", "tools/list"]
    assert argv[3].endswith("/mcp")  # its CLI picks streamable HTTP by that ending
    return argv[3]


CLIENTS: Final[dict[str, Callable[[str, str], str]]] = {
    "Claude Desktop": claude_desktop,
    "Claude Code": claude_code,
    "Cursor": cursor,
    "VS Code": vs_code,
    "Windsurf": windsurf,
    "Codex CLI": codex,
    "Gemini CLI": gemini,
    "MCP Inspector": inspector,
}


def test_the_readme_has_a_snippet_for_each_client_and_each_reads_as_its_client_reads_it() -> None:
    snippets = client_snippets()
    assert set(snippets) == set(CLIENTS)
    for client, parse in CLIENTS.items():
        url = parse(*snippets[client])
        assert url.startswith(DOCUMENTED_BASE + "/mcp"), (client, url)


async def tool_names(proxy: Proxy, path: str) -> set[str]:
    async with proxy.mcp(path) as session:
        return {tool.name for tool in (await session.list_tools()).tools}


async def test_every_url_the_snippets_name_answers_mcp_on_a_running_proxy(tmp_path: Path) -> None:
    paths: dict[str, Any] = {}
    for client, parse in CLIENTS.items():
        paths[client] = parse(*client_snippets()[client]).removeprefix(DOCUMENTED_BASE)
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        for client, path in paths.items():
            names = await tool_names(proxy, path)
            if path.startswith("/mcp/all"):
                assert "echo__echo" in names, client
            else:
                assert "retrieve_tools" in names, client


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
async def test_claude_desktops_snippet_runs_mcp_remote_as_a_stdio_server_that_reaches_the_proxy(
    tmp_path: Path,
) -> None:
    """What Claude Desktop starts from the snippet: `npx -y mcp-remote URL`, here the pinned
    mcp-remote from tests/fixtures, driven over stdio by the MCP SDK's client as Claude Desktop would."""
    if not MCP_REMOTE.exists():
        pytest.fail(f"{MCP_REMOTE} is missing: run `npm ci --prefix tests/fixtures`")
    url = claude_desktop(*client_snippets()["Claude Desktop"])
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        bridge = StdioServerParameters(
            command="node",
            args=[str(MCP_REMOTE), url.replace(DOCUMENTED_BASE, proxy.base_url)],
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},  # mcp-remote keeps state in ~/.mcp-auth
        )
        with trio.fail_after(BRIDGE_TIMEOUT_S):
            async with stdio_client(bridge) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                names = {tool.name for tool in (await session.list_tools()).tools}
                assert "retrieve_tools" in names and "call_tool_read" in names
                called = await session.call_tool(
                    "call_tool_read", {"name": "echo:echo", "args": {"message": "via mcp-remote"}}
                )
        assert not called.is_error
        assert called.content[0].type == "text" and called.content[0].text == "via mcp-remote"
