"""Every tool call on the record, through every surface, with secrets scrubbed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.proxyctl import PYTHON, Proxy, echo_server, running_proxy

pytestmark = pytest.mark.system
CLI = str(Path(PYTHON).parent / "mcpproxy")


async def records(proxy: Proxy, count: int, **params: Any) -> list[dict[str, Any]]:
    """Wait until at least `count` records match, then return them (newest first)."""
    with trio.fail_after(20):
        while True:
            data = (await proxy.get("/api/v1/activity", params=params)).json()["data"]
            if data["total"] >= count:
                return list(data["records"])
            await trio.sleep(0.05)


async def test_calls_through_every_surface_land_with_their_fields(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            await session.call_tool(
                "call_tool_read",
                {"name": "echo:echo", "args": {"message": "via mcp"}, "intent_reason": "testing the log"},
            )
        async with proxy.mcp("/mcp/all") as session:
            await session.call_tool("echo__add", {"a": 1, "b": 2})
        rest = await proxy.post(
            "/api/v1/tools/call", json={"name": "echo:echo", "args": {"message": "via rest"}}
        )
        assert rest.status_code == 200 and rest.json()["data"]["result"]["content"][0]["text"] == "via rest"

        found = await records(proxy, 3)
        by_surface = {r["surface"]: r for r in found}
        assert set(by_surface) == {"mcp", "mcp_all", "rest"}
        mcp = by_surface["mcp"]
        assert mcp["server"] == "echo" and mcp["tool"] == "echo" and mcp["status"] == "ok"
        assert json.loads(mcp["arguments"]) == {"message": "via mcp"}
        assert "via mcp" in mcp["result"] and mcp["duration_ms"] > 0
        assert mcp["intent_reason"] == "testing the log"
        assert mcp["client_name"] and mcp["session_id"] and mcp["request_id"] is not None
        assert by_surface["mcp_all"]["tool"] == "add"

        one = (await proxy.get(f"/api/v1/activity/{mcp['id']}")).json()["data"]["record"]
        assert one == mcp
        filtered = (await proxy.get("/api/v1/activity", params={"surface": "rest"})).json()["data"]
        assert filtered["total"] == 1
        by_session = (await proxy.get("/api/v1/activity", params={"session": mcp["session_id"]})).json()[
            "data"
        ]
        assert by_session["total"] == 1

        listing = subprocess.run(
            [
                CLI,
                "activity",
                "list",
                "--config",
                str(proxy.config_path),
                "--url",
                proxy.base_url,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listing.returncode == 0 and json.loads(listing.stdout)["total"] == 3
        table = subprocess.run(
            [CLI, "activity", "list", "--config", str(proxy.config_path), "--url", proxy.base_url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "echo:echo" in table.stdout and "ok" in table.stdout


async def test_blocked_and_failed_calls_are_recorded_as_such(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            await session.call_tool("call_tool_read", {"name": "echo:delete_everything", "args": {}})
            await session.call_tool("call_tool_read", {"name": "echo:fail", "args": {"message": "boom"}})
        found = {r["tool"]: r for r in await records(proxy, 2)}
        assert found["delete_everything"]["status"] == "blocked"
        assert "call_tool_destructive" in found["delete_everything"]["error"]
        assert found["fail"]["status"] == "error"


async def test_a_secret_passed_as_an_argument_is_scrubbed_from_the_database(tmp_path: Path) -> None:
    secret = "sk-live-" + "s" * 32
    # allow_secret_echo: the answer may show the value the server was given; the record never does.
    echo = echo_server(env={"API_TOKEN": "${keyring:api}"}, allow_secret_echo=True)
    async with running_proxy(tmp_path, [echo]) as proxy:
        assert (await proxy.post("/api/v1/secrets", json={"name": "api", "value": secret})).status_code == 201
        await proxy.wait_for("echo", "running")
        await trio.sleep(0.5)  # the gateway learns the new secret value asynchronously
        async with proxy.mcp() as session:
            result = await session.call_tool(
                "call_tool_read", {"name": "echo:echo", "args": {"message": secret}}
            )
            assert result.content[0].text == secret  # the agent still gets the real answer
        record = (await records(proxy, 1))[0]
        assert secret not in json.dumps(record) and "••••" in record["arguments"]
    stored = list((tmp_path / "data").glob("activity.db*"))
    assert stored  # the database and its WAL files: nothing read would make this pass silently
    for path in stored:
        assert secret.encode() not in path.read_bytes(), path


async def test_the_proxy_keeps_serving_when_the_database_is_locked(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with proxy.mcp() as session:
            await session.call_tool("call_tool_read", {"name": "echo:echo", "args": {"message": "before"}})
        await records(proxy, 1)
        blocker = sqlite3.connect(proxy.data_dir / "activity.db", timeout=0.1)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            async with proxy.mcp() as session:
                for i in range(5):
                    result = await session.call_tool(
                        "call_tool_read", {"name": "echo:echo", "args": {"message": str(i)}}
                    )
                    assert not result.is_error and result.content[0].text == str(i)
            with trio.fail_after(20):
                while "activity log: could not record" not in (tmp_path / "proxy.log").read_text():
                    await trio.sleep(0.1)
        finally:
            blocker.rollback()
            blocker.close()
