"""Who may do what (issue 21): tool tiers, profiles, client credentials, auth on /mcp.

Each test drives a real `mcpproxy serve` with real MCP clients of both eras (the SDK's `Client` in
`legacy` and `2026-07-28` mode), credentials sent as `Authorization: Bearer` or `X-API-Key`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import mcp.types as types
import pytest
import trio
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.proxyctl import Proxy, echo_server, running_proxy

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
DEADLINE_S: Final = 60.0


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@asynccontextmanager
async def mcp_client(
    proxy: Proxy, path: str = "/mcp", headers: dict[str, str] | None = None, mode: str = "legacy"
) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(timeout=DEADLINE_S, headers=headers) as http:
        transport = streamable_http_client(f"{proxy.base_url}{path}", http_client=http)
        with trio.fail_after(DEADLINE_S):
            async with Client(transport, mode=mode, cache=None) as client:
                yield client


async def add_client(proxy: Proxy, name: str, profile: str, **extra: Any) -> str:
    response = await proxy.post("/api/v1/clients", json={"name": name, "profile": profile, **extra})
    assert response.status_code == 201, response.text
    credential: str = response.json()["data"]["credential"]
    return credential


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def direct_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def search(client: Client, query: str) -> list[dict[str, Any]]:
    result = await client.call_tool("retrieve_tools", {"query": query, "limit": 50})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    hits: list[dict[str, Any]] = result.structured_content["tools"]
    return hits


def unannotated(tmp_path: Path, name: str) -> dict[str, Any]:
    """An echo server that also serves `scribble`, a tool without annotations."""
    spec = tmp_path / f"{name}-tools.json"
    spec.write_text(json.dumps({"extra_tools": ["scribble"]}))
    return echo_server(name, env={"ECHO_SERVER_TOOLS_FILE": str(spec)})


async def test_an_unannotated_tool_is_destructive_unless_tool_tiers_says_otherwise(tmp_path: Path) -> None:
    servers = [unannotated(tmp_path, "plain"), unannotated(tmp_path, "tuned")]
    tiers = {"tuned:scribble": "read", "plain:whoami": "write"}
    async with running_proxy(tmp_path, servers, tool_tiers=tiers) as proxy:
        await proxy.wait_for("plain", "running")
        await proxy.wait_for("tuned", "running")
        rest = {
            t["name"]: t for t in (await proxy.get("/api/v1/servers/plain/tools")).json()["data"]["tools"]
        }
        assert (rest["scribble"]["tier"], rest["scribble"]["tier_source"]) == ("destructive", "mcp_default")
        assert (rest["echo"]["tier"], rest["echo"]["tier_source"]) == ("read", "annotations")
        assert (rest["whoami"]["tier"], rest["whoami"]["tier_source"]) == ("write", "config")
        for mode in MODES:
            async with mcp_client(proxy, mode=mode) as client:
                hits = {h["name"]: h for h in await search(client, "scribble")}
                assert hits["plain:scribble"]["call_with"] == "call_tool_destructive"
                assert (hits["tuned:scribble"]["tier"], hits["tuned:scribble"]["tier_source"]) == (
                    "read",
                    "config",
                )
                described = await client.call_tool("describe_tool", {"tool_ids": ["plain:scribble"]})
                assert described.structured_content is not None
                assert described.structured_content["tools"][0]["tier_source"] == "mcp_default"

                refused = await client.call_tool("call_tool_read", {"name": "plain:scribble"})
                assert refused.is_error and "call_tool_destructive" in text_of(refused)
                assert "MCP default" in text_of(refused)
                assert (refused.meta or {})["mcpproxy/error"]["kind"] == "destructive_variant"
                refused = await client.call_tool("call_tool_read", {"name": "plain:whoami"})
                assert refused.is_error and "call_tool_write" in text_of(refused)
                done = await client.call_tool("call_tool_destructive", {"name": "plain:scribble"})
                assert not done.is_error and text_of(done) == "scribble called"
                done = await client.call_tool("call_tool_read", {"name": "tuned:scribble"})
                assert not done.is_error, text_of(done)


RESOURCE_SERVER: Final = str(Path(__file__).parents[1] / "servers" / "resource_server.py")


def resource_server(name: str) -> dict[str, Any]:
    return {**echo_server(name), "args": [RESOURCE_SERVER, "--name", name]}


PROFILES: Final = [
    {"name": "reader", "servers": ["alpha", "docs_a"], "max_tier": "read"},
    {"name": "writer", "servers": ["beta", "docs_b"], "management": True},
]
SERVERS: Final = ("alpha", "beta", "docs_a", "docs_b")


@asynccontextmanager
async def two_profiles(tmp_path: Path) -> AsyncIterator[Proxy]:
    servers = [
        echo_server("alpha"),
        echo_server("beta"),
        resource_server("docs_a"),
        resource_server("docs_b"),
    ]
    async with running_proxy(
        tmp_path, servers, profiles=PROFILES, tool_tiers={"alpha:add": "write"}
    ) as proxy:
        for name in SERVERS:
            await proxy.wait_for(name, "running")
        yield proxy


async def test_two_credentials_bound_to_different_profiles_see_different_tools_prompts_and_resources(
    tmp_path: Path,
) -> None:
    async with two_profiles(tmp_path) as proxy:
        reader = bearer(await add_client(proxy, "chat-app", "reader"))
        writer = {"X-API-Key": await add_client(proxy, "coder", "writer")}
        for mode in MODES:
            async with mcp_client(proxy, "/mcp/all", reader, mode) as client:
                names = await direct_names(client)
                assert "alpha__echo" in names
                assert all(n.startswith(("alpha__", "docs_a__")) for n in names if "__" in n), (
                    names
                )  # read_cache is the proxy's own
                assert "alpha__delete_everything" not in names and "alpha__add" not in names  # over `read`
                prompts = {p.name for p in (await client.list_prompts()).prompts}
                assert prompts == {"docs_a__greet"}
                resources = {r.uri for r in (await client.list_resources()).resources}
                assert resources and all(u.startswith("mcpproxy://docs_a/") for u in resources)
                with pytest.raises(Exception, match="no running server serves"):
                    await client.read_resource("mcpproxy://docs_b/file:///README.md")
                refused = await client.call_tool("beta__echo", {"message": "x"})
                assert refused.is_error and "profile 'reader'" in text_of(refused)
                assert "alpha" not in text_of(refused) and "did you mean" not in text_of(refused)
            async with mcp_client(proxy, "/mcp/all", writer, mode) as client:
                names = await direct_names(client)
                assert {"beta__echo", "beta__delete_everything"} <= names
                assert all(n.startswith(("beta__", "docs_b__")) for n in names if "__" in n), (
                    names
                )  # read_cache is the proxy's own
                prompts = {p.name for p in (await client.list_prompts()).prompts}
                assert prompts == {"docs_b__greet"}
            async with mcp_client(proxy, "/mcp", reader, mode) as client:
                found = {h["name"].split(":")[0] for h in await search(client, "echo a message back")}
                assert "alpha" in found and found <= {"alpha", "docs_a"}
                refused = await client.call_tool(
                    "call_tool_read", {"name": "beta:echo", "args": {"message": "x"}}
                )
                assert refused.is_error and "unknown tool 'beta:echo' in profile 'reader'" in text_of(refused)
            async with mcp_client(proxy, "/mcp", writer, mode) as client:
                found = {h["name"].split(":")[0] for h in await search(client, "echo a message back")}
                assert "beta" in found and found <= {"beta", "docs_b"}
            # The profile's own endpoint serves the same view without a credential (on loopback).
            async with mcp_client(proxy, "/mcp/p/reader/all", None, mode) as client:
                names = await direct_names(client)
                assert "alpha__echo" in names and all(
                    n.startswith(("alpha__", "docs_a__")) for n in names if "__" in n
                )
        async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=DEADLINE_S) as http:
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            crossed = await http.post("/mcp/p/writer", json=initialize, headers=reader)
            assert crossed.status_code == 403 and "/mcp/p/reader" in crossed.text
            unknown = await http.post("/mcp/p/nobody", json=initialize)
            assert unknown.status_code == 404


async def test_a_read_capped_profile_cannot_call_a_write_or_destructive_tool_through_any_entry_point(
    tmp_path: Path,
) -> None:
    async with two_profiles(tmp_path) as proxy:
        reader = bearer(await add_client(proxy, "chat-app", "reader"))
        for mode in MODES:
            async with mcp_client(proxy, "/mcp", reader, mode) as client:
                menu = await direct_names(client)
                assert "call_tool_read" in menu
                assert not {"call_tool_write", "call_tool_destructive", "quarantine_security"} & menu
                for variant in ("call_tool_read", "call_tool_write", "call_tool_destructive"):
                    for tool in ("alpha:add", "alpha:delete_everything"):
                        refused = await client.call_tool(variant, {"name": tool, "args": {"a": 1, "b": 2}})
                        assert refused.is_error and "in profile 'reader'" in text_of(refused), (variant, tool)
                allowed = await client.call_tool(
                    "call_tool_read", {"name": "alpha:echo", "args": {"message": "hi"}}
                )
                assert text_of(allowed) == "hi"
            async with mcp_client(proxy, "/mcp/all", reader, mode) as client:
                for tool in ("alpha__add", "alpha__delete_everything"):
                    refused = await client.call_tool(tool, {"a": 1, "b": 2})
                    assert refused.is_error and "in profile 'reader'" in text_of(refused)
        rest_call = {"name": "alpha:delete_everything", "args": {}, "variant": "call_tool_destructive"}
        refused_rest = await proxy.post("/api/v1/tools/call", json=rest_call, headers=reader)
        assert refused_rest.status_code == 401
        listing = await proxy.get("/api/v1/servers", headers=reader)
        assert listing.status_code == 401


async def refused_status(proxy: Proxy, headers: dict[str, str], path: str = "/mcp/all") -> int:
    """The HTTP status of a first MCP request with these headers (200 when it is let in)."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=DEADLINE_S) as http:
        response = await http.post(path, json=initialize, headers={**accept, **headers})
    return response.status_code


def expired_clients_file(data_dir: Path, credential: str) -> None:
    """A clients file the proxy finds at start, holding one grant that expired an hour ago."""
    data_dir.mkdir(parents=True, exist_ok=True)
    grant = {
        "name": "old-job",
        "profile": "reader",
        "token_sha256": hashlib.sha256(credential.encode()).hexdigest(),
        "created_at": time.time() - 7200,
        "expires_at": time.time() - 3600,
    }
    (data_dir / "clients.json").write_text(json.dumps({"clients": [grant]}))


async def test_a_revoked_rotated_or_expired_credential_is_refused_on_the_next_request(tmp_path: Path) -> None:
    stale = "mcpp_" + "s" * 43
    expired_clients_file(tmp_path / "data", stale)
    async with two_profiles(tmp_path) as proxy:
        assert await refused_status(proxy, bearer(stale)) == 401
        credential = await add_client(proxy, "job", "reader", expires="30d")
        listed = (await proxy.get("/api/v1/clients")).json()["data"]["clients"]
        assert {c["name"] for c in listed} == {"job", "old-job"}
        assert next(c for c in listed if c["name"] == "job")["expires_at"] is not None
        async with mcp_client(proxy, "/mcp/all", bearer(credential)) as client:
            assert "alpha__echo" in await direct_names(client)
            rotated = await proxy.post("/api/v1/clients/job/rotate", json={})
            assert rotated.status_code == 200, rotated.text
            with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK's wrapping of the 401 varies by era
                await client.list_tools()
        fresh = rotated.json()["data"]["credential"]
        assert fresh != credential
        assert await refused_status(proxy, bearer(credential)) == 401
        assert await refused_status(proxy, {"X-API-Key": fresh}) == 200
        revoked = await (
            httpx2.AsyncClient(base_url=proxy.base_url, headers=proxy.headers, timeout=DEADLINE_S)
        ).delete("/api/v1/clients/job")
        assert revoked.status_code == 200, revoked.text
        assert await refused_status(proxy, {"X-API-Key": fresh}) == 401


async def test_the_anonymous_loopback_caller_cannot_add_patch_or_restart_a_server(tmp_path: Path) -> None:
    async with two_profiles(tmp_path) as proxy:
        writer = bearer(await add_client(proxy, "ops", "writer"))
        reader = bearer(await add_client(proxy, "chat", "reader"))
        for headers in ({}, reader):
            async with mcp_client(proxy, "/mcp", headers) as client:
                assert "quarantine_security" not in await direct_names(client)
                listed = await client.call_tool("upstream_servers", {"operation": "list"})
                assert listed.structured_content is not None
                names = {server["name"] for server in listed.structured_content["servers"]}
                assert names == ({"alpha", "docs_a"} if headers else set(SERVERS))
                for operation in ("add", "patch", "restart", "disable"):
                    arguments = {
                        "operation": operation,
                        "name": "alpha",
                        "command": "true",
                        "init_timeout": 5,
                    }
                    refused = await client.call_tool("upstream_servers", arguments)
                    assert refused.is_error and "management right" in text_of(refused), operation
                refused = await client.call_tool("quarantine_security", {"operation": "list_quarantined"})
                assert refused.is_error and "management right" in text_of(refused)
        before = (await proxy.servers())["alpha"]["worker_pid"]
        async with mcp_client(proxy, "/mcp", writer) as client:
            assert "quarantine_security" in await direct_names(client)
            restarted = await client.call_tool("upstream_servers", {"operation": "restart", "name": "alpha"})
            assert not restarted.is_error, text_of(restarted)
        with trio.fail_after(DEADLINE_S):
            while (await proxy.wait_for("alpha", "running"))["worker_pid"] == before:
                await trio.sleep(0.1)


async def test_require_mcp_auth_refuses_callers_without_a_credential_and_anonymous_profile_narrows_them(
    tmp_path: Path,
) -> None:
    servers = [echo_server("alpha"), echo_server("beta")]
    for name in ("strict", "narrow"):
        (tmp_path / name).mkdir()
    async with running_proxy(tmp_path / "strict", servers, profiles=PROFILES, require_mcp_auth=True) as proxy:
        await proxy.wait_for("alpha", "running")
        assert await refused_status(proxy, {}) == 401
        assert await refused_status(proxy, {}, "/mcp/p/reader") == 401
        assert await refused_status(proxy, proxy.headers) == 200
    async with running_proxy(
        tmp_path / "narrow", servers, profiles=PROFILES, anonymous_profile="reader"
    ) as proxy:
        await proxy.wait_for("alpha", "running")
        await proxy.wait_for("beta", "running")
        async with mcp_client(proxy, "/mcp/all") as client:
            names = await direct_names(client)
            assert "alpha__echo" in names and not any(n.startswith("beta__") for n in names)
        async with mcp_client(proxy, "/mcp/all", proxy.headers) as client:  # the API key: everything
            assert {"alpha__delete_everything", "beta__echo"} <= await direct_names(client)


async def test_a_credential_is_shown_once_and_found_in_no_file_log_or_later_response(tmp_path: Path) -> None:
    async with two_profiles(tmp_path) as proxy:
        credential = await add_client(proxy, "chat-app", "reader")
        rotated = (await proxy.post("/api/v1/clients/chat-app/rotate", json={})).json()["data"]["credential"]
        async with mcp_client(proxy, "/mcp", bearer(rotated)) as client:
            done = await client.call_tool("call_tool_read", {"name": "alpha:echo", "args": {"message": "hi"}})
            assert text_of(done) == "hi"
        answers = [
            (await proxy.get(path)).text
            for path in ("/api/v1/clients", "/api/v1/profiles", "/api/v1/activity", "/api/v1/config")
        ]
        clients_file = proxy.data_dir / "clients.json"
        assert clients_file.stat().st_mode & 0o777 == 0o600
        for value in (credential, rotated):
            assert all(value not in answer for answer in answers)
            for path in tmp_path.rglob("*"):
                if path.is_file():
                    assert value.encode() not in path.read_bytes(), path


async def test_the_clients_commands_issue_list_rotate_and_revoke_and_tools_list_shows_tiers(
    tmp_path: Path,
) -> None:
    from tests.system.test_cli import cli, ok

    async with two_profiles(tmp_path) as proxy:
        added = ok(await cli(proxy, "clients", "add", "chat-app", "--profile", "reader", "--expires", "30d"))
        credential = added.stdout.strip()
        assert credential.startswith("mcpp_") and "shown once" in added.stderr
        assert await refused_status(proxy, bearer(credential)) == 200
        listed = ok(await cli(proxy, "clients", "list")).stdout
        assert "chat-app" in listed and "reader" in listed and credential not in listed
        rotated = ok(await cli(proxy, "clients", "rotate", "chat-app", "-o", "json"))
        fresh = json.loads(rotated.stdout)["credential"]
        assert await refused_status(proxy, bearer(credential)) == 401
        ok(await cli(proxy, "clients", "revoke", "chat-app"))
        assert await refused_status(proxy, bearer(fresh)) == 401
        unknown = await cli(proxy, "clients", "add", "x", "--profile", "nope")
        assert unknown.returncode != 0 and "unknown profile 'nope'" in unknown.stderr
        tools = {
            t["name"]: t
            for t in json.loads(ok(await cli(proxy, "tools", "list", "alpha", "-o", "json")).stdout)
        }
        assert (tools["add"]["tier"], tools["add"]["tier_source"], tools["add"]["call_with"]) == (
            "write",
            "config",
            "call_tool_write",
        )
        assert (tools["echo"]["tier"], tools["echo"]["tier_source"]) == ("read", "annotations")
        table = ok(await cli(proxy, "tools", "list", "alpha")).stdout
        assert "TIER (SOURCE)" in table


async def test_every_activity_record_carries_the_client_and_profile_and_can_be_filtered_by_them(
    tmp_path: Path,
) -> None:
    async with two_profiles(tmp_path) as proxy:
        reader = bearer(await add_client(proxy, "chat-app", "reader"))
        async with mcp_client(proxy, "/mcp", reader) as client:
            await client.call_tool("call_tool_read", {"name": "alpha:echo", "args": {"message": "mine"}})
        async with mcp_client(proxy, "/mcp/all", proxy.headers) as client:
            await client.call_tool("beta__echo", {"message": "admin's"})
        with trio.fail_after(DEADLINE_S):
            while True:
                records = (await proxy.get("/api/v1/activity", params={"tool": "echo"})).json()["data"][
                    "records"
                ]
                if len(records) == 2:
                    break
                await trio.sleep(0.1)
        by_server = {r["server"]: r for r in records}
        assert (by_server["alpha"]["client"], by_server["alpha"]["profile"]) == ("chat-app", "reader")
        assert (by_server["beta"]["client"], by_server["beta"]["profile"]) == (None, None)
        mine = (await proxy.get("/api/v1/activity", params={"client": "chat-app"})).json()["data"]["records"]
        assert [r["server"] for r in mine] == ["alpha"]
        by_profile = (await proxy.get("/api/v1/activity", params={"profile": "reader"})).json()["data"]
        assert by_profile["total"] == 1


async def test_explain_names_the_check_a_call_then_fails_and_the_calls_agree(tmp_path: Path) -> None:
    from tests.system.test_cli import cli, ok

    async with two_profiles(tmp_path) as proxy:
        reader = bearer(await add_client(proxy, "chat-app", "reader"))

        async def explained(tool: str, client: str | None = "chat-app") -> dict[str, Any]:
            params = {"tool": tool, **({"client": client} if client else {})}
            response = await proxy.get("/api/v1/access/explain", params=params)
            assert response.status_code == 200, response.text
            data: dict[str, Any] = response.json()["data"]
            return data

        cases = {"alpha:echo": None, "alpha:add": "tier", "beta:echo": "server", "alpha:nope": "approval"}
        async with mcp_client(proxy, "/mcp/all", reader) as client:
            for tool, failed in cases.items():
                data = await explained(tool)
                assert data["failed"] == failed and data["allowed"] == (failed is None), data
                checks = [c["check"] for c in data["checks"]]
                assert checks[:2] == ["credential", "profile"]
                result = await client.call_tool(tool.replace(":", "__"), {"message": "hi", "a": 1, "b": 2})
                assert result.is_error == (failed is not None), (tool, text_of(result))
        tier = next(c for c in (await explained("alpha:add"))["checks"] if c["check"] == "tier")
        assert "write (config)" in tier["detail"] and "max_tier" in tier["fix"]
        assert (await explained("alpha:echo", "ghost"))["failed"] == "credential"
        anonymous = await explained("beta:delete_everything", None)
        assert anonymous["allowed"] and "call_tool_destructive" in anonymous["checks"][-1]["detail"]
        shown = ok(await cli(proxy, "access", "explain", "alpha:add", "--client", "chat-app")).stdout
        assert "FAIL  tier" in shown and "may not call alpha:add" in shown


async def test_a_profile_edited_in_the_config_file_narrows_its_clients_view(tmp_path: Path) -> None:
    async with two_profiles(tmp_path) as proxy:
        reader = bearer(await add_client(proxy, "chat-app", "reader"))
        async with mcp_client(proxy, "/mcp/all", reader) as client:
            assert "alpha__echo" in await direct_names(client)
            config = json.loads(proxy.config_path.read_text())
            config["profiles"][0]["tools"] = {"deny": ["alpha:*"]}
            proxy.config_path.write_text(json.dumps(config))
            with trio.fail_after(DEADLINE_S):
                while any(name.startswith("alpha__") for name in await direct_names(client)):
                    await trio.sleep(0.1)
            refused = await client.call_tool("alpha__echo", {"message": "x"})
            assert refused.is_error and "in profile 'reader'" in text_of(refused)
