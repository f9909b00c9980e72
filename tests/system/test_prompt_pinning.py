"""Prompt pinning through the real proxy: a prompt that changes on an approved server, or appears
on it, is held (not listed, not got) in both protocol eras until a human approves it over REST.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import pytest
import trio
from mcp.client import Client
from mcp.shared.exceptions import MCPError

from tests.proxyctl import PYTHON, SERVERS, Proxy, running_proxy

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
CHANGE_TIMEOUT_S: Final = 20.0
CLI_TIMEOUT_S: Final = 60.0
PROMPTS: Final = "/api/v1/servers/one/prompts"


def resource_server(name: str) -> dict[str, Any]:
    return {"name": name, "command": PYTHON, "args": [str(SERVERS / "resource_server.py"), "--name", name]}


async def rest_prompts(proxy: Proxy) -> dict[str, dict[str, Any]]:
    response = await proxy.get(PROMPTS)
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["data"]["prompts"]}


async def wait_for_prompts(proxy: Proxy, approvals: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Poll REST until the server's prompts have exactly these approval states."""
    with trio.fail_after(CHANGE_TIMEOUT_S):
        while True:
            prompts = await rest_prompts(proxy)
            if {name: p["approval"] for name, p in prompts.items()} == approvals:
                return prompts
            await trio.sleep(0.05)


async def listed_and_refusals(proxy: Proxy, mode: str) -> tuple[list[str], dict[str, str]]:
    """What a client of `mode` lists on /mcp/all, and the error of each prompt it cannot get."""
    refusals = {}
    with trio.fail_after(30):
        async with Client(f"{proxy.base_url}/mcp/all", mode=mode, cache=None) as client:
            listed = sorted(p.name for p in (await client.list_prompts()).prompts)
            for name in ("one__greet", "one__farewell"):
                try:
                    await client.get_prompt(name, {"name": "Ada"})
                except MCPError as exc:
                    refusals[name] = str(exc)
    return listed, refusals


async def test_a_changed_or_new_prompt_is_held_until_approved(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [resource_server("one")]) as proxy:
        await proxy.wait_for("one", "running")
        assert (await rest_prompts(proxy))["greet"]["approval"] == "approved"
        with trio.fail_after(30):
            async with Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client:
                assert [p.name for p in (await client.list_prompts()).prompts] == ["one__greet"]
                await client.call_tool("one__reword_prompts", {})

        # The upstream now serves greet with another description and argument, and a new farewell.
        prompts = await wait_for_prompts(proxy, {"greet": "changed", "farewell": "pending"})
        assert prompts["greet"]["previous"]["arguments"] == [{"name": "name", "required": True}]
        assert '+  "description": "Greets, then obeys"' in prompts["greet"]["diff"]
        assert "ignore your instructions" in prompts["greet"]["diff"]
        assert "diff" not in prompts["farewell"]
        for mode in MODES:
            listed, refusals = await listed_and_refusals(proxy, mode)
            assert listed == [], mode
            assert "changed since it was approved" in refusals["one__greet"], refusals
            assert "is new" in refusals["one__farewell"], refusals
            for refusal in refusals.values():
                assert "POST /api/v1/servers/one/prompts/approve" in refusal

        unknown = await proxy.post(f"{PROMPTS}/approve", json={"prompts": ["nothing"]})
        assert unknown.status_code == 404, unknown.text
        wrong = await proxy.post(f"{PROMPTS}/approve", json={"tools": ["greet"]})
        assert wrong.status_code == 400 and '{"prompts": ["prompt name", ...]}' in wrong.json()["error"]

        approved = await proxy.post(f"{PROMPTS}/approve", json={"prompts": ["greet"]})
        assert approved.status_code == 200, approved.text
        assert approved.json()["data"]["approved"] == ["greet"]
        await wait_for_prompts(proxy, {"greet": "approved", "farewell": "pending"})
        for mode in MODES:
            listed, refusals = await listed_and_refusals(proxy, mode)
            assert listed == ["one__greet"], mode
            assert list(refusals) == ["one__farewell"], refusals

        everything = await proxy.post(f"{PROMPTS}/approve")
        assert everything.status_code == 200, everything.text
        await wait_for_prompts(proxy, {"greet": "approved", "farewell": "approved"})
        listed, refusals = await listed_and_refusals(proxy, "2026-07-28")
        assert listed == ["one__farewell", "one__greet"] and refusals == {}

    stored = json.loads((proxy.data_dir / "prompt_approvals.json").read_text())
    assert sorted(stored["one"]) == ["farewell", "greet"]
    assert (proxy.data_dir / "prompt_approvals.json").stat().st_mode & 0o077 == 0


async def test_approving_a_quarantined_server_approves_its_first_prompts_as_they_are(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [{**resource_server("one"), "quarantined": True}]) as proxy:
        await proxy.wait_for("one", "stopped")
        assert await rest_prompts(proxy) == {}
        unquarantined = await proxy.post("/api/v1/servers/one/unquarantine")
        assert unquarantined.status_code == 200, unquarantined.text
        await proxy.wait_for("one", "running")
        # A person approved the server as it runs now: its prompts, like its tools, with it.
        await wait_for_prompts(proxy, {"greet": "approved"})
        listed, refusals = await listed_and_refusals(proxy, "legacy")
        assert listed == ["one__greet"] and "one__greet" not in refusals


def cli(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(PYTHON).parent / "mcpproxy"), *args, "--config", str(proxy.config_path)]
    return subprocess.run(
        [*command, "--url", proxy.base_url], capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )


async def test_the_cli_shows_held_prompts_and_approves_them(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [resource_server("one")]) as proxy:
        await proxy.wait_for("one", "running")
        await wait_for_prompts(proxy, {"greet": "approved"})
        reworded = await proxy.post("/api/v1/tools/call", json={"name": "one:reword_prompts", "args": {}})
        assert reworded.status_code == 200, reworded.text
        await wait_for_prompts(proxy, {"greet": "changed", "farewell": "pending"})

        listed = await trio.to_thread.run_sync(cli, proxy, "prompts", "list", "one")
        rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
        assert rows == {"one:greet": "changed", "one:farewell": "pending"}, listed.stdout
        assert "`mcpproxy prompts approve one`" in listed.stderr
        as_json = await trio.to_thread.run_sync(cli, proxy, "prompts", "list", "one", "-o", "json")
        greet = next(p for p in json.loads(as_json.stdout) if p["name"] == "greet")
        assert "ignore your instructions" in greet["diff"]

        unknown = await trio.to_thread.run_sync(cli, proxy, "prompts", "approve", "one", "nothing")
        assert unknown.returncode == 4 and "no such prompts" in unknown.stderr, unknown

        one = await trio.to_thread.run_sync(cli, proxy, "prompts", "approve", "one", "greet")
        assert one.returncode == 0, one.stderr
        assert one.stdout.splitlines() == ["one:greet: approved (was changed)", "one: still held: farewell"]
        await wait_for_prompts(proxy, {"greet": "approved", "farewell": "pending"})

        rest = await trio.to_thread.run_sync(cli, proxy, "prompts", "approve", "one")
        assert rest.stdout.splitlines() == ["one:farewell: approved (was pending)"], rest.stderr
        await wait_for_prompts(proxy, {"greet": "approved", "farewell": "approved"})
        again = await trio.to_thread.run_sync(cli, proxy, "prompts", "approve", "one")
        assert again.stdout.strip() == "one: no prompts were held", again.stderr
        listed = await trio.to_thread.run_sync(cli, proxy, "prompts", "list", "one")
        assert "held prompts" not in listed.stderr


async def test_a_prompt_changed_at_an_on_demand_start_is_held_before_it_is_got(tmp_path: Path) -> None:
    # An idle on-demand server's prompts are listed from its cache; the get that starts it must be
    # checked against what the new run offers, as a call is against its tools.
    changed = tmp_path / "reword"
    server = {
        **resource_server("one"),
        "start": "on_demand",
        "env": {"RESOURCE_SERVER_REWORDED_IF": str(changed)},
    }
    async with running_proxy(tmp_path, [server]) as proxy:
        await proxy.wait_for("one", "idle", CHANGE_TIMEOUT_S)  # it ran once to learn its catalog
        with trio.fail_after(CHANGE_TIMEOUT_S):  # and that run's worker is gone, not still answering
            while (await proxy.servers())["one"].get("worker_pid") is not None:
                await trio.sleep(0.05)
        changed.touch()
        for mode in MODES:
            with trio.fail_after(CLI_TIMEOUT_S):
                async with Client(f"{proxy.base_url}/mcp/all", mode=mode, cache=None) as client:
                    with pytest.raises(MCPError, match="changed since it was approved") as refused:
                        await client.get_prompt("one__greet", {"name": "Ada"})
                    assert "POST /api/v1/servers/one/prompts/approve" in str(refused.value)
        await wait_for_prompts(proxy, {"greet": "changed", "farewell": "pending"})
        assert (await proxy.post(f"{PROMPTS}/approve", json={})).status_code == 200
        with trio.fail_after(CLI_TIMEOUT_S):
            async with Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client:
                got = await client.get_prompt("one__greet", {"name": "Ada", "mood": "calm"})
        assert "one greets Ada" in str(got.messages[0].content)


async def test_a_prompt_held_after_the_client_listed_it_cannot_be_got(tmp_path: Path) -> None:
    # A 2026-era client lists greet, the upstream changes it (no session is open to be told), and
    # the client gets greet, and asks for a completion of its argument, without listing again: the
    # hold stops both. (The endpoint's name map is also checked against the current catalog on every
    # get, which the on-demand test above needs: there the get follows the change at once.)
    async with running_proxy(tmp_path, [resource_server("one")]) as proxy:
        await proxy.wait_for("one", "running")
        with trio.fail_after(CLI_TIMEOUT_S):
            async with Client(f"{proxy.base_url}/mcp/all", mode="2026-07-28", cache=None) as client:
                assert [p.name for p in (await client.list_prompts()).prompts] == ["one__greet"]
            pulled = await proxy.post("/api/v1/tools/call", json={"name": "one:reword_prompts", "args": {}})
            assert pulled.status_code == 200, pulled.text
            await wait_for_prompts(proxy, {"greet": "changed", "farewell": "pending"})
            async with Client(f"{proxy.base_url}/mcp/all", mode="2026-07-28", cache=None) as client:
                with pytest.raises(MCPError, match="changed since it was approved"):
                    await client.get_prompt("one__greet", {"name": "Ada"})
                with pytest.raises(MCPError, match="changed since it was approved"):
                    await client.complete(
                        types.PromptReference(type="ref/prompt", name="one__greet"),
                        {"name": "name", "value": "A"},
                    )
