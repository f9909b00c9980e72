"""The whole proxy from its CLI: real upstreams, real workers, real MCP and HTTP clients."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import mcp.types as types
import pytest
import trio

from tests.proxyctl import PYTHON, REPO, echo_server, everything_server, free_port, running_proxy

pytestmark = pytest.mark.system


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_a_client_searches_and_calls_tools_of_two_real_servers_through_mcp(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server(), echo_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            menu = {t.name for t in (await session.list_tools()).tools}
            assert {"retrieve_tools", "call_tool_read", "call_tool_write", "call_tool_destructive"} <= menu

            found = await session.call_tool(
                "retrieve_tools", {"query": "echo back the input message", "detail": "full"}
            )
            assert not found.is_error
            assert found.structured_content is not None
            names = [t["name"] for t in found.structured_content["tools"]]
            assert "everything:echo" in names[:3]
            hit = next(t for t in found.structured_content["tools"] if t["name"] == "everything:echo")
            assert hit["server"] == "everything"
            assert hit["call_with"] == "call_tool_read"
            assert "inputSchema" in hit and hit["score"] > 0

            servers_found = {t["server"] for t in found.structured_content["tools"]}
            assert servers_found == {"everything", "echo"}

            result = await session.call_tool(
                "call_tool_read", {"name": "everything:echo", "args": {"message": "hi"}}
            )
            assert not result.is_error
            assert text_of(result) == "Echo: hi"

            result = await session.call_tool(
                "call_tool_read", {"name": "echo:add", "args_json": json.dumps({"a": 2, "b": 3})}
            )
            assert text_of(result) == "5"
            assert result.structured_content == {"sum": 5}


async def test_direct_mode_serves_every_upstream_tool_as_server__tool(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server(), echo_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.wait_for("echo", "running")
        async with proxy.mcp("/mcp/all") as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert "everything__echo" in tools
            assert "echo__delete_everything" in tools
            assert tools["echo__delete_everything"].annotations is not None
            assert tools["echo__delete_everything"].annotations.destructive_hint is True
            assert "message" in tools["everything__echo"].input_schema["properties"]
            result = await session.call_tool("everything__echo", {"message": "direct"})
            assert text_of(result) == "Echo: direct"


async def test_unknown_server_or_tool_is_an_error_result_that_suggests_close_names(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            result = await session.call_tool("call_tool_read", {"name": "ecko:echo", "args": {}})
            assert result.is_error
            assert "unknown server 'ecko'" in text_of(result) and "echo" in text_of(result)
            result = await session.call_tool("call_tool_read", {"name": "echo:ecko", "args": {}})
            assert result.is_error
            assert "unknown tool 'echo:ecko'" in text_of(result) and "echo:echo" in text_of(result)
        async with proxy.mcp("/mcp/all") as session:
            result = await session.call_tool("echo__ecko", {})
            assert result.is_error and "echo__echo" in text_of(result)


async def test_a_destructive_tool_is_refused_on_call_tool_read(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            result = await session.call_tool("call_tool_read", {"name": "echo:delete_everything", "args": {}})
            assert result.is_error and "call_tool_destructive" in text_of(result)
            result = await session.call_tool(
                "call_tool_destructive", {"name": "echo:delete_everything", "args": {}}
            )
            assert not result.is_error


async def test_rest_needs_the_api_key_and_answers_in_the_envelope(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        refused = await proxy.get("/api/v1/servers", headers={})
        assert refused.status_code == 401
        body = refused.json()
        assert body["success"] is False and body["error"] and body["request_id"]
        assert refused.headers["x-request-id"] == body["request_id"]
        assert (await proxy.get("/api/v1/servers", headers={"X-API-Key": "wrong"})).status_code == 401

        for headers, params in (
            ({"X-API-Key": proxy.api_key}, {}),
            ({"Authorization": f"Bearer {proxy.api_key}"}, {}),
            ({}, {"apikey": proxy.api_key}),
        ):
            response = await proxy.get("/api/v1/servers", headers=headers, params=params)
            assert response.status_code == 200
            assert response.headers["x-request-id"]

        servers = (await proxy.get("/api/v1/servers")).json()
        assert servers["success"] is True
        echo = servers["data"]["servers"][0]
        for key in (
            "name",
            "protocol",
            "enabled",
            "quarantined",
            "connected",
            "state",
            "tool_count",
            "last_error",
            "worker_pid",
        ):
            assert key in echo
        assert echo["connected"] is True and echo["tool_count"] == 6 and echo["protocol"] == "stdio"

        tools = (await proxy.get("/api/v1/servers/echo/tools")).json()["data"]["tools"]
        assert {t["name"] for t in tools} >= {"echo", "add"}
        missing = await proxy.get("/api/v1/servers/nope/tools")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]

        status = (await proxy.get("/api/v1/status")).json()["data"]
        assert status["servers_running"] == 1
        assert (await proxy.get("/healthz", headers={})).status_code == 200
        assert (await proxy.get("/readyz", headers={})).status_code == 200


async def test_mcp_on_loopback_needs_no_key_but_accepts_one(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            assert (await session.list_tools()).tools


async def test_each_upstream_runs_under_its_own_worker_process(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server("one"), echo_server("two")]) as proxy:
        one = await proxy.wait_for("one", "running")
        two = await proxy.wait_for("two", "running")
        assert one["worker_pid"] != two["worker_pid"]
        for server in (one, two):
            cmdline = Path(f"/proc/{server['worker_pid']}/cmdline").read_bytes().replace(b"\0", b" ")
            assert b"services.worker" in cmdline and f"--server {server['name']}".encode() in cmdline


async def test_a_broken_or_hanging_upstream_never_delays_the_others(tmp_path: Path) -> None:
    servers = [
        {"name": "missing", "command": "/nonexistent/server"},
        {"name": "mute", "command": "sleep", "args": ["600"], "init_timeout": 60},
        echo_server(),
    ]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("echo", "running", timeout_s=20)
        states = await proxy.servers()
        assert states["mute"]["state"] == "starting"
        missing = await proxy.wait_for("missing", "backoff")
        assert "command not found" in missing["last_error"]


async def test_tools_list_changed_reaches_direct_clients_when_a_server_restarts(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        changed = trio.Event()

        async def on_message(message: object) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        import httpx2
        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async with (
            httpx2.AsyncClient(timeout=30) as http,
            streamable_http_client(f"{proxy.base_url}/mcp/all", http_client=http) as (read, write),
            ClientSession(read, write, message_handler=on_message) as session,
        ):
            await session.initialize()
            assert caps_list_changed(session)
            assert any(t.name == "echo__echo" for t in (await session.list_tools()).tools)
            response = await proxy.post("/api/v1/servers/echo/restart")
            assert response.status_code == 200
            with trio.fail_after(30):
                await changed.wait()


def caps_list_changed(session: object) -> bool:
    caps = session.server_capabilities  # type: ignore[attr-defined]
    return bool(caps and caps.tools and caps.tools.list_changed)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(PYTHON).parent / "mcpproxy"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '{"mcpServers": [{"name": "a", "command": "x"}, {"name": "b", "command": "y"}, '
            '{"name": "c", "command": "z", "args": "--flag"}]}',
            "mcp_config.json: mcpServers[2].args: expected array, got string",
        ),
        (
            '{"mcpServers": [{"name": "a:b", "command": "x"}]}',
            "mcp_config.json: mcpServers[0].name: invalid server name",
        ),
        (
            '{"mcpServers": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}',
            "mcp_config.json: mcpServers[1].name: duplicate server name 'a'",
        ),
        (
            '{"mcpServers": [{"name": "a", "protocol": "ftp", "url": "x"}]}',
            "mcp_config.json: mcpServers[0].protocol: unknown protocol 'ftp'",
        ),
        (
            '{"mcpServers": [{"name": "a", "protocol": "http"}]}',
            "mcp_config.json: mcpServers[0].url: an http server needs a url",
        ),
        ('{"listen": 8080}', "mcp_config.json: listen: expected string, got integer"),
        ('{"mcpServers": [', "mcp_config.json: invalid JSON at line 1"),
    ],
)
def test_an_invalid_config_stops_startup_with_one_message_naming_file_path_and_problem(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "mcp_config.json"
    path.write_text(body)
    result = run_cli("serve", "--config", str(path), "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert message in result.stderr
    assert path.read_text() == body


def test_first_run_creates_a_safe_default_config(tmp_path: Path) -> None:
    home_config = tmp_path / "home" / "mcp_config.json"
    process = subprocess.Popen(
        [str(Path(PYTHON).parent / "mcpproxy"), "serve", "--listen", f"127.0.0.1:{free_port()}"],
        env={**os.environ, "MCPPROXY_CONFIG": str(home_config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if b"mcpproxy ready" in line:
                break
        config = json.loads(home_config.read_text())
        assert config["listen"] == "127.0.0.1:8080"
        assert len(config["api_key"]) >= 32
        assert config["mcpServers"] == []
        assert stat.S_IMODE(home_config.stat().st_mode) == 0o600
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_the_package_exposes_the_mcpproxy_console_script() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "serve" in result.stdout
    assert sys.version_info >= (3, 11)
