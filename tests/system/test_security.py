"""Hardening seen from outside: the start-up sweep spares processes that are not ours, tool
approval takes only a well-formed request, wrong API keys are answered 429 after a few, the data
dir is the owner's alone, the config's backup is always a valid config.

Each test starts a real `mcpproxy serve` from its CLI and checks, through the
kernel's process table, HTTP and the data dir, what a user can rely on.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import trio

from gateway.lockout import MAX_FAILURES, WINDOW_S
from services import process
from tests.proxyctl import POLL_S, START_TIMEOUT_S, Proxy, echo_server, running_proxy

pytestmark = pytest.mark.system

REAP_TIMEOUT_S = 10.0


@pytest.fixture
def unrelated_groups() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two `setsid sleep` processes, each leading a group of its own, that mcpproxy never started."""
    sleepers = [subprocess.Popen(["sleep", "300"], start_new_session=True) for _ in range(2)]
    try:
        yield sleepers
    finally:
        for sleeper in sleepers:
            if sleeper.poll() is None:
                sleeper.kill()
            sleeper.wait(timeout=REAP_TIMEOUT_S)


async def test_the_start_up_sweep_spares_unrelated_groups_whose_numbers_a_ledger_names(
    tmp_path: Path, unrelated_groups: list[subprocess.Popen[bytes]]
) -> None:
    old_format, reused = unrelated_groups
    reused_key = process.proc_key(reused.pid)
    assert reused_key is not None
    run_dir = tmp_path / "data" / "run"
    run_dir.mkdir(parents=True)
    # A ledger from an older version (no start time), and one whose group had a leader that started
    # earlier than the process that holds the number now (the number was reused).
    (run_dir / "processes.json").write_text(
        json.dumps(
            {
                "old": {"pgids": [[old_format.pid, 0]]},
                "gone": {"pgids": [[reused.pid, reused_key[1] - 1]]},
            }
        )
    )

    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        assert old_format.poll() is None and reused.poll() is None
        assert process.proc_key(reused.pid) == reused_key
        log = (tmp_path / "proxy.log").read_text()
        assert f"not killing process group {old_format.pid} " in log
        assert f"not killing process group {reused.pid} " in log
        assert "older version" in log and "reused" in log


async def held_tools(proxy: Proxy) -> dict[str, str]:
    tools = (await proxy.get("/api/v1/servers/echo/tools")).json()["data"]["tools"]
    return {tool["name"]: tool["approval"] for tool in tools}


async def test_an_approval_request_that_is_not_a_list_of_tool_names_approves_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "tools.json"
    async with running_proxy(tmp_path, [echo_server(env={"ECHO_SERVER_TOOLS_FILE": str(spec)})]) as proxy:
        await proxy.wait_for("echo", "running")
        spec.write_text(json.dumps({"extra_tools": ["exfiltrate", "wipe"]}))
        assert (await proxy.post("/api/v1/servers/echo/restart")).status_code == 200
        with trio.fail_after(START_TIMEOUT_S):
            while (await held_tools(proxy)).get("wipe") != "pending":
                await trio.sleep(POLL_S)

        bodies = [
            b"[1]",
            b'"x"',
            b'{"tools": "notalist"}',
            b'{"tool": ["exfiltrate"]}',
            b'{"tools": []}',
            b'{"tools": null}',
            b'{"tools": [1]}',
            b"{",
            b"null",
        ]
        for body in bodies:
            refused = await proxy.post(
                "/api/v1/servers/echo/tools/approve",
                content=body,
                headers={**proxy.headers, "content-type": "application/json"},
            )
            assert refused.status_code == 400, (body, refused.text)
            assert 'expected {"tools": ["tool name", ...]}' in refused.json()["error"], body
        held = await held_tools(proxy)
        assert held["exfiltrate"] == "pending" and held["wipe"] == "pending"

        approved = await proxy.post("/api/v1/servers/echo/tools/approve", json={"tools": ["wipe"]})
        assert approved.status_code == 200 and approved.json()["data"]["approved"] == ["wipe"]
        assert (await held_tools(proxy))["exfiltrate"] == "pending"
        everything = await proxy.post("/api/v1/servers/echo/tools/approve", json={})
        assert everything.status_code == 200 and everything.json()["data"]["still_held"] == []


async def test_a_flood_of_wrong_api_keys_is_cut_to_the_limit_and_other_clients_keep_their_access(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, []) as proxy:
        wrong = {"X-API-Key": "not-the-key"}
        async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=30.0) as guesser:
            statuses: list[int] = []

            async def guess() -> None:
                statuses.append((await guesser.get("/api/v1/servers", headers=wrong)).status_code)

            with trio.fail_after(START_TIMEOUT_S):
                async with trio.open_nursery() as nursery:
                    for _ in range(5 * MAX_FAILURES):
                        nursery.start_soon(guess)
            assert statuses.count(401) == MAX_FAILURES
            assert statuses.count(429) == 4 * MAX_FAILURES

            refused = await guesser.get("/api/v1/servers", headers=wrong)
            assert refused.status_code == 429 and "too many wrong API keys" in refused.json()["error"]
            assert 1 <= int(refused.headers["retry-after"]) <= WINDOW_S
            # The right key from the locked-out address is refused as well: otherwise the lockout would
            # still tell a guesser which guess was right.
            assert (await guesser.get("/api/v1/servers", headers=proxy.headers)).status_code == 429
            assert (await guesser.get("/healthz")).status_code == 200  # what needs no key is not locked
            # A locked-out request whose body trickles in is still answered, and its connection closed:
            # the body is read meanwhile, never left to fill the app's queue and stall the connection.
            for path in (b"/mcp", b"/api/v1/servers"):
                assert (await trickled_post(proxy, path, wrong)).startswith(b"HTTP/1.1 429 ")

        # Another address (all of 127.0.0.0/8 is loopback) is not affected, and requests without a key
        # (no guess) do not count.
        other = httpx2.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx2.AsyncClient(base_url=proxy.base_url, transport=other, timeout=30.0) as client:
            for _ in range(2 * MAX_FAILURES):
                assert (await client.get("/api/v1/servers")).status_code == 401
            assert (await client.get("/api/v1/servers", headers=proxy.headers)).status_code == 200
            assert (await client.get("/api/v1/servers", headers=wrong)).status_code == 401
        assert "wrong API keys from 127.0.0.1" in (tmp_path / "proxy.log").read_text()


async def test_every_file_the_proxy_keeps_in_its_data_dir_is_the_owners_alone(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()], secrets_backend="file") as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            await session.call_tool("call_tool_read", {"name": "echo:echo", "args": {"message": "hi"}})
        stored = await proxy.post("/api/v1/secrets", json={"name": "token", "value": "s3cret-value"})
        assert stored.status_code == 201
        assert (await proxy.post("/api/v1/servers/echo/tools/approve", json={})).status_code == 200
        with trio.fail_after(START_TIMEOUT_S):
            while not (await proxy.get("/api/v1/activity")).json()["data"]["records"]:
                await trio.sleep(POLL_S)

        modes = {
            str(path.relative_to(proxy.data_dir)): (path.stat().st_mode & 0o777, path.is_dir())
            for path in [proxy.data_dir, *proxy.data_dir.rglob("*")]
        }
    expected = {
        "activity.db",
        "activity.db-wal",
        "activity.db-shm",
        "logs/server-echo.log",
        "run/processes.json",
        "run/supervisor.lock",
        "tool_approvals.json",
        "prompt_approvals.json",
        "secrets.key",
        "secrets.enc",
        "secrets.lock",
        "secrets-index.json",
    }
    assert expected <= set(modes), sorted(modes)
    loose = {
        name: oct(mode) for name, (mode, is_dir) in modes.items() if mode != (0o700 if is_dir else 0o600)
    }
    assert loose == {}


async def patch_server(proxy: Proxy, name: str, body: dict[str, object]) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=30.0) as client:
        return await client.patch(f"/api/v1/servers/{name}", json=body, headers=proxy.headers)


async def wait_for_log(proxy: Proxy, text: str) -> None:
    with trio.fail_after(START_TIMEOUT_S):
        while text not in (proxy.config_path.parent / "proxy.log").read_text():
            await trio.sleep(POLL_S)


async def test_the_config_backup_is_the_last_valid_config_never_a_broken_hand_edit(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        valid = json.loads(proxy.config_path.read_text())
        backup = proxy.config_path.with_name("mcp_config.json.bak")
        broken = proxy.config_path.read_text()[:-20]  # a hand edit cut short: not JSON
        proxy.config_path.write_text(broken)
        await wait_for_log(proxy, "hand edit rejected")

        changed = await patch_server(proxy, "echo", {"enabled": False})
        assert changed.status_code == 200, changed.text
        assert json.loads(backup.read_text()) == valid
        first = json.loads(proxy.config_path.read_text())
        assert first["mcpServers"][0]["enabled"] is False

        assert (await patch_server(proxy, "echo", {"enabled": True})).status_code == 200
        assert json.loads(backup.read_text()) == first
        assert backup.stat().st_mode & 0o777 == proxy.config_path.stat().st_mode & 0o777 == 0o600


async def trickled_post(proxy: Proxy, path: bytes, headers: dict[str, str]) -> bytes:
    """A chunked POST sent in 20 pieces 20 ms apart; the whole answer, read until the server closes."""
    host, port = proxy.base_url.removeprefix("http://").rsplit(":", 1)
    extra = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers.items())
    head = b"POST %s HTTP/1.1\r\nHost: %s\r\n%sTransfer-Encoding: chunked\r\n\r\n" % (
        path,
        host.encode(),
        extra,
    )
    with trio.fail_after(30):
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(head)
            for _ in range(20):
                await stream.send_all(b"2\r\nxx\r\n")
                await trio.sleep(0.02)
            await stream.send_all(b"0\r\n\r\n")
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
    assert b"\r\nconnection: close\r\n" in answer.lower(), answer
    return answer
