"""HTTP and SSE upstreams, headers, env, and secret references, through a real proxy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import mcp.types as types
import pytest

from tests.proxyctl import EVERYTHING_JS, PYTHON, SERVERS, Proxy, echo_server, free_port, running_proxy

pytestmark = pytest.mark.system

TOKEN = "ghp_" + "Z" * 65 + "59"  # 71 characters ending in 59, like the seed's example
CLI = str(Path(PYTHON).parent / "mcpproxy")


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@contextmanager
def http_upstream(
    mode: str = "streamable", port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Our headers-reporting server over HTTP; yields its MCP URL."""
    port = port or free_port()
    process = subprocess.Popen(
        [PYTHON, str(SERVERS / "headers_server.py"), "--port", str(port), "--mode", mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        yield (
            (f"http://127.0.0.1:{port}/mcp" if mode == "streamable" else f"http://127.0.0.1:{port}/sse"),
            process,
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout_s}s")


def cli(proxy: Proxy, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CLI,
            *args,
            "--config",
            str(proxy.config_path),
            "--data-dir",
            str(proxy.data_dir),
            "--url",
            proxy.base_url,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def headers_seen(proxy: Proxy, server: str) -> dict[str, str]:
    async with proxy.mcp() as session:
        result = await session.call_tool("call_tool_read", {"name": f"{server}:headers", "args": {}})
        assert not result.is_error, text_of(result)
        return {k.lower(): v for k, v in json.loads(text_of(result)).items()}


def assert_secret_nowhere(proxy: Proxy, tmp_path: Path, secret: str) -> None:
    """The resolved value is in no file (but the encrypted store), log, or process command line."""
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name not in ("secrets.enc", "secrets.key"):
            assert secret.encode() not in path.read_bytes(), f"secret found in {path}"
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=True).stdout
    assert secret not in ps


@pytest.mark.parametrize("mode", ["streamable", "sse"])
async def test_a_keyring_reference_in_a_header_reaches_the_upstream_and_nowhere_else(
    tmp_path: Path, mode: str
) -> None:
    with http_upstream(mode) as (url, _server):
        protocol = "http" if mode == "streamable" else "sse"
        servers = [
            {
                "name": "remote",
                "url": url,
                "protocol": protocol,
                "headers": {"Authorization": "Bearer ${keyring:gh_token}", "X-Trace": "on"},
                "allow_secret_echo": True,  # the headers tool shows what arrived (else: ••••)
            }
        ]
        async with running_proxy(tmp_path, servers) as proxy:
            failed = await proxy.wait_for("remote", "backoff")
            assert "${keyring:gh_token}" in failed["last_error"]

            result = cli(proxy, "secrets", "set", "gh_token", "--from-stdin", stdin=TOKEN + "\n")
            assert result.returncode == 0, result.stderr
            assert "remote" in result.stdout  # restarted because it references the secret

            await proxy.wait_for("remote", "running")
            seen = await headers_seen(proxy, "remote")
            assert seen["authorization"] == f"Bearer {TOKEN}"
            assert seen["x-trace"] == "on"

            listed = (await proxy.get("/api/v1/secrets")).json()["data"]
            assert listed["backend"] == "encrypted file"
            assert listed["secrets"] == [{"name": "gh_token", "stored": True, "servers": ["remote"]}]
            for path in (
                "/api/v1/servers",
                "/api/v1/status",
                "/api/v1/secrets",
                "/api/v1/servers/remote/logs",
            ):
                assert TOKEN not in (await proxy.get(path)).text

            masked = cli(proxy, "secrets", "get", "gh_token")
            assert masked.stdout.strip() == "••••59 (71 chars)"
            revealed = cli(proxy, "secrets", "get", "gh_token", "--reveal")
            assert revealed.stdout.strip() == TOKEN
            assert_secret_nowhere(proxy, tmp_path, TOKEN)


async def test_auto_protocol_falls_back_to_sse_for_an_sse_only_server(tmp_path: Path) -> None:
    with http_upstream("sse") as (url, _server):
        servers = [{"name": "legacy", "url": url, "headers": {"X-From": "proxy"}}]
        async with running_proxy(tmp_path, servers) as proxy:
            await proxy.wait_for("legacy", "running")
            assert (await headers_seen(proxy, "legacy"))["x-from"] == "proxy"


async def test_an_env_reference_resolves_into_a_stdio_servers_environment_only(tmp_path: Path) -> None:
    env_secret = "env-secret-" + "q" * 20
    servers = [
        echo_server(
            env={
                "ECHO_SERVER_REPORT_ENV": "API_TOKEN,PATH,PARENT_ONLY,LANG",
                "API_TOKEN": "${env:SOURCE_TOKEN}",
            },
            allow_secret_echo=True,  # whoami shows the value that arrived (else: ••••)
        )
    ]
    async with running_proxy(
        tmp_path, servers, env={"SOURCE_TOKEN": env_secret, "PARENT_ONLY": "leak"}
    ) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            report = json.loads(
                text_of(await session.call_tool("call_tool_read", {"name": "echo:whoami", "args": {}}))
            )
        assert report["env"]["API_TOKEN"] == env_secret
        assert report["env"]["PATH"]
        assert report["env"]["PARENT_ONLY"] is None  # not on the allow-list
        assert_secret_nowhere(proxy, tmp_path, env_secret)


async def test_working_dir_is_honoured(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    async with running_proxy(tmp_path, [echo_server(working_dir=str(workdir))]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            report = json.loads(
                text_of(await session.call_tool("call_tool_read", {"name": "echo:whoami", "args": {}}))
            )
        assert report["cwd"] == str(workdir)


async def test_a_missing_env_reference_is_an_error_naming_it(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(env={"X": "${env:DEFINITELY_UNSET_VAR}"})]) as proxy:
        state = await proxy.wait_for("echo", "backoff")
        assert "${env:DEFINITELY_UNSET_VAR}" in state["last_error"]


async def test_remote_http_errors_surface_with_their_status(tmp_path: Path) -> None:
    with http_upstream() as (url, _server):
        servers = [{"name": "wrongpath", "url": url.replace("/mcp", "/nothing-here"), "protocol": "http"}]
        async with running_proxy(tmp_path, servers) as proxy:
            state = await proxy.wait_for("wrongpath", "backoff")
            assert "HTTP 404" in state["last_error"]


async def test_a_remote_that_goes_away_is_reconnected_when_it_comes_back(tmp_path: Path) -> None:
    port = free_port()
    with http_upstream(port=port) as (url, server):
        servers = [{"name": "flaky", "url": url, "protocol": "http", "health_check_interval": 1}]
        async with running_proxy(
            tmp_path, servers, restart={"initial_backoff": 0.5, "max_failures": 50}
        ) as proxy:
            await proxy.wait_for("flaky", "running")
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=10)
            down = await proxy.wait_for("flaky", "backoff", timeout_s=30)
            assert down["last_error"]
            with http_upstream(port=port):
                await proxy.wait_for("flaky", "running", timeout_s=60)
                assert (await headers_seen(proxy, "flaky"))["host"].endswith(str(port))


@pytest.mark.parametrize("mode", ["streamableHttp", "sse"])
async def test_server_everything_over_http_transports(tmp_path: Path, mode: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        ["node", str(EVERYTHING_JS), mode],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/mcp" if mode == "streamableHttp" else f"http://127.0.0.1:{port}/sse"
        protocol = "http" if mode == "streamableHttp" else "sse"
        async with running_proxy(
            tmp_path, [{"name": "everything", "url": url, "protocol": protocol}]
        ) as proxy:
            await proxy.wait_for("everything", "running")
            async with proxy.mcp() as session:
                result = await session.call_tool(
                    "call_tool_read", {"name": "everything:echo", "args": {"message": "x"}}
                )
                assert text_of(result) == "Echo: x"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


async def test_secrets_rest_validates_and_deleting_restarts_users(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(env={"T": "${keyring:svc}"})]) as proxy:
        bad = await proxy.post("/api/v1/secrets", json={"name": "a b", "value": "x"})
        assert bad.status_code == 400 and "name" in bad.json()["error"]
        assert (await proxy.post("/api/v1/secrets", json={"name": "svc"})).status_code == 400
        created = await proxy.post("/api/v1/secrets", json={"name": "svc", "value": "value-1234"})
        assert created.status_code == 201 and created.json()["data"]["restarted"] == ["echo"]
        await proxy.wait_for("echo", "running")
        async with httpx2.AsyncClient(base_url=proxy.base_url) as client:
            gone = await client.delete("/api/v1/secrets/svc", headers=proxy.headers)
            assert gone.status_code == 200
            missing = await client.delete("/api/v1/secrets/svc", headers=proxy.headers)
            assert missing.status_code == 404
        state = await proxy.wait_for("echo", "backoff")
        assert "${keyring:svc}" in state["last_error"]
