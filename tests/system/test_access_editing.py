"""A person edits access while the proxy runs (issue 21): profiles, tier overrides and MCP auth through
REST and the CLI. Each change is written to the config atomically and holds from the next request on;
bad input is refused with its status and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from tests.proxyctl import Proxy
from tests.system.test_access import (
    DEADLINE_S,
    add_client,
    bearer,
    direct_names,
    mcp_client,
    refused_status,
    search,
    text_of,
    two_profiles,
)
from tests.system.test_cli import cli, ok
from tests.system.test_management_api import event_stream, wait_event

pytestmark = pytest.mark.system


def on_disk(proxy: Proxy) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(proxy.config_path.read_text())
    return config


async def send(proxy: Proxy, method: str, path: str, body: Any = None) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=proxy.base_url, headers=proxy.headers, timeout=DEADLINE_S) as http:
        return await http.request(method, path, json=body)


async def test_profiles_made_changed_and_removed_through_the_cli_hold_from_the_next_request(
    tmp_path: Any,
) -> None:
    async with two_profiles(tmp_path) as proxy:
        added = ok(await cli(proxy, "profiles", "set", "ops", "--servers", "beta", "--max-tier", "write"))
        assert "profile ops added" in added.stdout and "/mcp/p/ops" in added.stdout
        credential = bearer(await add_client(proxy, "deployer", "ops"))
        async with mcp_client(proxy, "/mcp/all", credential) as client:
            names = await direct_names(client)
            assert "beta__echo" in names and "beta__delete_everything" not in names  # over `write`
            assert not any(n.startswith("alpha__") for n in names)

            ok(await cli(proxy, "profiles", "set", "ops", "--deny", "beta:echo"))
            names = await direct_names(client)  # the same session: its next request
            assert "beta__echo" not in names and "beta__add" in names
            refused = await client.call_tool("beta__echo", {"message": "x"})
            assert refused.is_error and "profile 'ops'" in text_of(refused)
        stored = next(p for p in on_disk(proxy)["profiles"] if p["name"] == "ops")
        assert stored == {
            "name": "ops",
            "servers": ["beta"],
            "max_tier": "write",
            "tools": {"deny": ["beta:echo"]},
        }
        listed = ok(await cli(proxy, "profiles", "list")).stdout
        assert "ops" in listed and "deny beta:echo" in listed

        bound = await cli(proxy, "profiles", "remove", "ops")
        assert bound.returncode != 0 and "used by client(s) deployer" in bound.stderr
        assert any(p["name"] == "ops" for p in on_disk(proxy)["profiles"])
        ok(await cli(proxy, "clients", "revoke", "deployer"))
        ok(await cli(proxy, "profiles", "remove", "ops"))
        assert not any(p["name"] == "ops" for p in on_disk(proxy)["profiles"])
        assert await refused_status(proxy, {}, "/mcp/p/ops/all") == 404


async def test_bad_access_edits_are_refused_with_their_status_and_change_nothing(tmp_path: Any) -> None:
    async with two_profiles(tmp_path) as proxy:
        before = proxy.config_path.read_text()
        cases = [
            ("PUT", "/api/v1/profiles/reader", {"max_tier": "admin"}, 400, "max_tier"),
            ("PUT", "/api/v1/profiles/Bad Name", {}, 400, "lower case"),
            ("PUT", "/api/v1/profiles/reader", {"name": "other"}, 400, "cannot be renamed"),
            ("PUT", "/api/v1/profiles/reader", {"tools": {"deny": ["no-colon"]}}, 400, "server:tool"),
            ("PUT", "/api/v1/profiles/reader", [], 400, "profile object"),
            ("DELETE", "/api/v1/profiles/nobody", None, 404, "unknown profile"),
            ("PUT", "/api/v1/tool-tiers/alpha:echo", {"tier": "godlike"}, 400, "tier"),
            ("PUT", "/api/v1/tool-tiers/no-colon", {"tier": "read"}, 400, "server:tool"),
            ("DELETE", "/api/v1/tool-tiers/alpha:echo", None, 404, "no tier override"),
            ("PATCH", "/api/v1/access", {"anonymous_profile": "nobody"}, 400, "no profile named 'nobody'"),
            ("PATCH", "/api/v1/access", {"require_mcp_auth": "yes"}, 400, "require_mcp_auth"),
            ("PATCH", "/api/v1/access", {"unknown": 1}, 400, "expected"),
        ]
        for method, path, body, status, said in cases:
            response = await send(proxy, method, path, body)
            assert response.status_code == status, (method, path, response.text)
            assert said in response.json()["error"], (method, path, response.text)
        assert proxy.config_path.read_text() == before
        async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=DEADLINE_S) as http:
            anonymous = await http.put("/api/v1/profiles/mine", json={})  # REST needs the API key
            assert anonymous.status_code == 401


async def test_a_tier_override_from_the_cli_changes_what_calls_a_tool_and_who_may(tmp_path: Any) -> None:
    async with two_profiles(tmp_path) as proxy:
        reader = bearer(await add_client(proxy, "chat-app", "reader"))
        async with mcp_client(proxy, "/mcp", reader) as client:
            hits = {h["name"]: h for h in await search(client, "echo a message back")}
            assert hits["alpha:echo"]["call_with"] == "call_tool_read"

            ok(await cli(proxy, "tools", "tier", "alpha:echo", "write"))
            assert on_disk(proxy)["tool_tiers"]["alpha:echo"] == "write"
            hits = {h["name"]: h for h in await search(client, "echo a message back")}
            assert "alpha:echo" not in hits  # over the reader's max_tier now
            refused = await client.call_tool(
                "call_tool_read", {"name": "alpha:echo", "args": {"message": "x"}}
            )
            assert refused.is_error

            ok(await cli(proxy, "tools", "tier", "alpha:echo", "--clear"))
            assert "alpha:echo" not in on_disk(proxy).get("tool_tiers", {})
            done = await client.call_tool("call_tool_read", {"name": "alpha:echo", "args": {"message": "x"}})
            assert not done.is_error, text_of(done)
        tools = {
            t["name"]: t for t in (await proxy.get("/api/v1/servers/alpha/tools")).json()["data"]["tools"]
        }
        assert (tools["echo"]["tier"], tools["echo"]["tier_source"]) == ("read", "annotations")
        ok(await cli(proxy, "tools", "tier", "alpha:*", "destructive"))
        tools = {
            t["name"]: t for t in (await proxy.get("/api/v1/servers/alpha/tools")).json()["data"]["tools"]
        }
        assert (tools["echo"]["tier"], tools["echo"]["tier_source"]) == ("destructive", "config")


async def test_access_set_requires_a_credential_or_narrows_the_anonymous_caller(tmp_path: Any) -> None:
    async with two_profiles(tmp_path) as proxy:
        assert await refused_status(proxy, {}) == 200
        ok(await cli(proxy, "access", "set", "--anonymous-profile", "reader"))
        async with mcp_client(proxy, "/mcp/all") as client:
            names = await direct_names(client)
            assert "alpha__echo" in names and not any(n.startswith("beta__") for n in names)
        shown = ok(await cli(proxy, "access", "set", "--require-mcp-auth", "true")).stdout
        assert "require_mcp_auth: true" in shown
        assert await refused_status(proxy, {}) == 401
        assert await refused_status(proxy, proxy.headers) == 200
        removal = await cli(proxy, "profiles", "remove", "reader")
        assert removal.returncode != 0 and "anonymous_profile" in removal.stderr
        ok(await cli(proxy, "access", "set", "--require-mcp-auth", "default", "--anonymous-profile", "none"))
        config = on_disk(proxy)
        assert "require_mcp_auth" not in config and "anonymous_profile" not in config
        assert await refused_status(proxy, {}) == 200


async def test_a_client_credential_on_events_sees_its_profiles_servers_and_own_calls_until_revoked(
    tmp_path: Any,
) -> None:
    async with two_profiles(tmp_path) as proxy:
        reader = bearer(await add_client(proxy, "chat-app", "reader"))
        other = bearer(await add_client(proxy, "coder", "writer"))
        async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=DEADLINE_S) as http:
            assert (await http.get("/events")).status_code == 401
        async with event_stream(proxy) as everything, event_stream(proxy, reader) as mine:
            first = mine[0]
            assert first[0] == "servers.changed"
            assert {s["name"] for s in first[1]["servers"]} == {"alpha", "docs_a"}
            async with mcp_client(proxy, "/mcp/all", other) as client:
                await client.call_tool("beta__echo", {"message": "theirs"})
            async with mcp_client(proxy, "/mcp/all", reader) as client:
                await client.call_tool("alpha__echo", {"message": "mine"})
            call = await wait_event(mine, "activity.tool_call.completed")
            assert (call["server"], call["client"], call["profile"]) == ("alpha", "chat-app", "reader")
            ok(await cli(proxy, "upstream", "restart", "beta"))
            ok(await cli(proxy, "upstream", "restart", "alpha"))
            await wait_event(mine, "server.state_changed")
            await proxy.wait_for("alpha", "running")
            await proxy.wait_for("beta", "running")
            ok(await cli(proxy, "tools", "tier", "alpha:add", "destructive"))  # a config change
            await wait_event(everything, "config.saved")
            ok(await cli(proxy, "clients", "revoke", "chat-app"))
            closed = await wait_event(mine, "closed")
            assert "revoked" in closed["reason"]
        assert all(data.get("client") == "chat-app" for event, data in mine if event.startswith("activity."))
        assert all(
            (data.get("name") or data.get("server")) == "alpha"
            for event, data in mine
            if event in ("server.state_changed", "tools.changed")
        )
        assert all(
            {s["name"] for s in data["servers"]} <= {"alpha", "docs_a"}
            for event, data in mine
            if event == "servers.changed"
        )
        assert not any(event.startswith(("config.", "secrets.")) for event, _ in mine)
        assert {data.get("client") for event, data in everything if event.startswith("activity.")} >= {
            "chat-app",
            "coder",
        }
