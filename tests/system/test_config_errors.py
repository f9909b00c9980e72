"""A config that cannot start, seen from outside: a hand edit is refused while the proxy runs, and
`serve` and `status` say what is wrong in one line, never with a traceback.

Each test runs the real `mcpproxy` CLI; the running proxy is watched through /events and REST.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests.proxyctl import PYTHON, Proxy, echo_server, running_proxy, write_config

pytestmark = pytest.mark.system

CLI = str(Path(PYTHON).parent / "mcpproxy")
CLI_DEADLINE_S = 60.0
EVENT_DEADLINE_S = 30.0
BAD_EDITS: list[tuple[dict[str, Any], str]] = [
    ({"listen": "not-a-listen"}, "mcp_config.json: listen: 'not-a-listen': expected HOST:PORT"),
    ({"listen": "127.0.0.1:99999"}, "mcp_config.json: listen: '127.0.0.1:99999': the port must be"),
    ({"listen": "::1:8080"}, "mcp_config.json: listen: '::1:8080': an IPv6 address goes in brackets"),
    ({"kill_timeout": 0}, "mcp_config.json: kill_timeout: invalid duration 0"),
    ({"restart": {"max_backoff": -1}}, "mcp_config.json: restart.max_backoff: -1.0: expected seconds"),
]
BAD_SERVER_EDIT = ({"init_timeout": -5}, "mcp_config.json: mcpServers[0].init_timeout: invalid duration -5")


async def mcpproxy(*argv: str) -> subprocess.CompletedProcess[str]:
    with trio.fail_after(CLI_DEADLINE_S):
        done = await trio.run_process([CLI, *argv], capture_stdout=True, capture_stderr=True, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


async def next_config_error(proxy: Proxy, edit: str) -> str:
    """Write `edit` over the config file and return the error of the `config.error` event it causes."""
    async with (
        httpx2.AsyncClient(base_url=proxy.base_url, timeout=None) as client,
        client.stream("GET", "/events", headers=proxy.headers) as events,
    ):
        assert events.status_code == 200
        proxy.config_path.write_text(edit)
        event = ""
        with trio.fail_after(EVENT_DEADLINE_S):
            async for line in events.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "config.error":
                    error: str = json.loads(line[6:])["error"]
                    return error
    raise AssertionError("the event stream ended")


def with_edit(text: str, top: dict[str, Any], server: dict[str, Any] | None = None) -> str:
    data = json.loads(text)
    data.update(top)
    if server:
        data["mcpServers"][0].update(server)
    return json.dumps(data, indent=2)


async def test_a_hand_edit_that_could_not_start_is_refused_and_the_running_config_stays(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        good = proxy.config_path.read_text()
        served = (await proxy.get("/api/v1/config")).json()["data"]
        for top, message in BAD_EDITS:
            assert (await next_config_error(proxy, with_edit(good, top))).startswith(message)
        edit, message = BAD_SERVER_EDIT
        assert (await next_config_error(proxy, with_edit(good, {}, edit))).startswith(message)
        # The running config is still the one in force, and serves.
        assert (await proxy.get("/api/v1/config")).json()["data"] == served
        async with proxy.mcp("/mcp/all") as session:
            assert not (await session.call_tool("echo__echo", {"message": "still here"})).is_error
        assert (await proxy.servers())["echo"]["state"] == "running"
    log = (tmp_path / "proxy.log").read_text()
    for _, message in [*BAD_EDITS, BAD_SERVER_EDIT]:
        assert f"hand edit rejected, the running config stays in force: {message}" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("top", "server", "message"), [(t, {}, m) for t, m in BAD_EDITS] + [({}, *BAD_SERVER_EDIT)]
)
async def test_serve_and_status_say_what_is_wrong_in_one_line(
    tmp_path: Path, top: dict[str, Any], server: dict[str, Any], message: str
) -> None:
    path = write_config(tmp_path, [echo_server()])
    path.write_text(with_edit(path.read_text(), top, server))
    serve = await mcpproxy("serve", "--config", str(path), "--data-dir", str(tmp_path / "data"))
    assert serve.returncode == 2
    lines = serve.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mcpproxy: {message}"), serve.stderr
    # status reads the same file to find the proxy: it says what is wrong first, then goes on
    # (a usable listen) or stops (an unusable one).
    status = await mcpproxy("status", "--config", str(path))
    assert status.returncode != 0
    assert message in status.stderr.splitlines()[0], status.stderr
    for output in (serve.stdout, serve.stderr, status.stdout, status.stderr):
        assert "Traceback" not in output


async def test_serve_says_in_one_line_when_it_cannot_listen(tmp_path: Path) -> None:
    path = write_config(tmp_path, [])
    bad = await mcpproxy("serve", "--config", str(path), "--listen", "127.0.0.1:http")
    assert bad.returncode == 2
    assert bad.stderr.startswith("mcpproxy: --listen '127.0.0.1:http': the port must be")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = await mcpproxy(
            "serve",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            f"127.0.0.1:{port}",
        )
    assert busy.returncode != 0
    assert f"mcpproxy: cannot listen on 127.0.0.1:{port}: Address already in use" in busy.stderr
    assert "Traceback" not in busy.stdout + busy.stderr
