"""Prompts, resources, templates, completions and logging of every upstream, through the real proxy,
for clients of both protocol eras: what a client sees directly, it sees through the proxy, namespaced.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import pytest
import trio
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.proxyctl import EVERYTHING_JS, PYTHON, SERVERS, Proxy, everything_server, running_proxy

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
PATHS: Final = ("/mcp/all", "/mcp")
RESOURCE_SERVER: Final = str(SERVERS / "resource_server.py")


def resource_server(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": PYTHON, "args": [RESOURCE_SERVER, "--name", name], **extra}


@asynccontextmanager
async def through(proxy: Proxy, path: str, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    with trio.fail_after(30):
        async with Client(f"{proxy.base_url}{path}", mode=mode, cache=None, **kwargs) as client:
            yield client


@asynccontextmanager
async def directly() -> AsyncIterator[Client]:
    params = StdioServerParameters(command="node", args=[str(EVERYTHING_JS), "stdio"])
    with trio.fail_after(30):
        async with Client(params, mode="legacy", cache=None) as client:
            yield client


def texts(result: types.ReadResourceResult | types.GetPromptResult) -> list[str]:
    dumped = result.model_dump(mode="json", exclude_none=True)
    items = dumped.get("contents") or [message["content"] for message in dumped["messages"]]
    return [item.get("text") or item.get("blob") or str(item.get("resource")) for item in items]


async def test_every_prompt_resource_and_template_is_served_namespaced_in_both_eras(tmp_path: Path) -> None:
    async with directly() as direct:
        prompts = (await direct.list_prompts()).prompts
        resources = (await direct.list_resources()).resources
        templates = (await direct.list_resource_templates()).resource_templates
        args_prompt = await direct.get_prompt("args-prompt", {"city": "Paris", "state": "TX"})
        document = await direct.read_resource(resources[0].uri)
        departments = await direct.complete(
            types.PromptReference(name="completable-prompt"), {"name": "department", "value": "E"}
        )
    assert len(prompts) == 4 and len(resources) == 7 and len(templates) == 2

    async with running_proxy(tmp_path, [everything_server("alpha"), everything_server("beta")]) as proxy:
        await proxy.wait_for("alpha", "running")
        await proxy.wait_for("beta", "running")
        for path in PATHS:
            for mode in MODES:
                async with through(proxy, path, mode) as client:
                    # A pinned 2026-era client synthesizes its DiscoverResult: ask the proxy for its own.
                    caps = (
                        client.server_capabilities
                        if mode == "legacy"
                        else types.DiscoverResult.model_validate(
                            await client.session.send_discover("2026-07-28")
                        ).capabilities
                    )
                    assert caps.prompts and caps.resources and caps.completions, (path, mode, caps)
                    listed = (await client.list_prompts()).prompts
                    assert sorted(p.name for p in listed) == sorted(
                        f"{server}__{p.name}" for server in ("alpha", "beta") for p in prompts
                    )
                    got = await client.get_prompt("beta__args-prompt", {"city": "Paris", "state": "TX"})
                    assert texts(got) == texts(args_prompt)
                    uris = [r.uri for r in (await client.list_resources()).resources]
                    assert sorted(uris) == sorted(
                        f"mcpproxy://{server}/{r.uri}" for server in ("alpha", "beta") for r in resources
                    )
                    read = await client.read_resource(f"mcpproxy://alpha/{resources[0].uri}")
                    assert texts(read) == texts(document)
                    assert read.contents[0].uri == f"mcpproxy://alpha/{resources[0].uri}"
                    shown = (await client.list_resource_templates()).resource_templates
                    assert sorted(t.uri_template for t in shown) == sorted(
                        f"mcpproxy://{server}/{t.uri_template}"
                        for server in ("alpha", "beta")
                        for t in templates
                    )
                    # A client expands our template as it would the upstream's; an unprefixed URI is routed.
                    expanded = shown[0].uri_template.replace("{resourceId}", "3")
                    assert (await client.read_resource(expanded)).contents
                    assert (await client.read_resource("demo://resource/dynamic/text/3")).contents
                    completed = await client.complete(
                        types.PromptReference(name="alpha__completable-prompt"),
                        {"name": "department", "value": "E"},
                    )
                    assert completed.completion.values == departments.completion.values
                    with pytest.raises(MCPError):
                        await client.get_prompt("gamma__args-prompt", {})


async def test_two_servers_with_one_uri_each_answer_for_their_own(tmp_path: Path) -> None:
    servers = [resource_server("one"), resource_server("two")]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("one", "running")
        await proxy.wait_for("two", "running")
        for mode in MODES:
            async with through(proxy, "/mcp/all", mode) as client:
                for server in ("one", "two"):
                    read = await client.read_resource(f"mcpproxy://{server}/file:///README.md")
                    assert texts(read) == [f"# README of {server}"]
                    # The resource link in a tool result stays readable (it goes to a server that has it).
                    result = await client.call_tool(f"{server}__link", {})
                    link = result.content[0]
                    assert isinstance(link, types.ResourceLink)
                    assert texts(await client.read_resource(link.uri))[0].startswith("# README of ")
                    # An MCP App's ui:// resource is readable as the tool's _meta names it.
                    tool = next(t for t in (await client.list_tools()).tools if t.name == f"{server}__link")
                    assert tool.meta is not None
                    assert (await client.read_resource(tool.meta["ui"]["resourceUri"])).contents


async def test_an_upstream_crash_mid_read_fails_only_that_read(tmp_path: Path) -> None:
    servers = [resource_server("fragile"), resource_server("steady")]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("fragile", "running")
        await proxy.wait_for("steady", "running")
        async with through(proxy, "/mcp/all", "legacy") as client:
            with pytest.raises(MCPError, match="fragile"):
                await client.read_resource("mcpproxy://fragile/test://crash")
            read = await client.read_resource("mcpproxy://steady/file:///README.md")
            assert texts(read) == ["# README of steady"]
            got = await client.get_prompt("steady__greet", {"name": "Ada"})
            assert texts(got) == ["steady greets Ada"]
        await proxy.wait_for("fragile", "running", restarts=1)
        async with through(proxy, "/mcp/all", "2026-07-28") as client:
            read = await client.read_resource("mcpproxy://fragile/file:///README.md")
            assert texts(read) == ["# README of fragile"]


async def test_a_quarantined_server_prompts_and_resources_are_invisible(tmp_path: Path) -> None:
    servers = [resource_server("open"), resource_server("held", quarantined=True)]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("open", "running")
        prompts_changed, resources_changed = trio.Event(), trio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.PromptListChangedNotification):
                prompts_changed.set()
            if isinstance(message, types.ResourceListChangedNotification):
                resources_changed.set()

        async with through(proxy, "/mcp/all", "legacy", message_handler=on_message) as client:
            assert [p.name for p in (await client.list_prompts()).prompts] == ["open__greet"]
            response = await proxy.post("/api/v1/servers/open/quarantine")
            assert response.status_code == 200, response.text
            with trio.fail_after(30):
                await prompts_changed.wait()
                await resources_changed.wait()
        await proxy.wait_for("open", "stopped")
        for path in PATHS:
            for mode in MODES:
                async with through(proxy, path, mode) as client:
                    assert (await client.list_prompts()).prompts == []
                    assert (await client.list_resources()).resources == []
                    for uri in ("mcpproxy://held/file:///README.md", "file:///README.md"):
                        with pytest.raises(MCPError):
                            await client.read_resource(uri)
                    with pytest.raises(MCPError):
                        await client.get_prompt("open__greet", {"name": "x"})


async def test_upstream_log_messages_reach_the_client_tagged_with_the_server(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        send, receive = trio.open_memory_channel[types.LoggingMessageNotificationParams](10)

        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            send.send_nowait(params)

        async with through(proxy, "/mcp/all", "legacy", logging_callback=on_log) as client:
            await client.set_logging_level("debug")
            await client.call_tool("everything__toggle-simulated-logging", {})
            with trio.fail_after(30):  # (it also logs its roots being fetched, as `everything-server`)
                while (message := await receive.receive()).logger != "everything":
                    assert (message.logger or "").startswith("everything:"), message
            await client.call_tool("everything__toggle-simulated-logging", {})


@pytest.mark.parametrize("path", PATHS)
async def test_resource_subscriptions_are_relayed(tmp_path: Path, path: str) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        updated = trio.Event()
        uri = "mcpproxy://everything/demo://resource/static/document/features.md"

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == uri:
                updated.set()

        async with through(proxy, path, "legacy", message_handler=on_message) as client:
            await client.subscribe_resource(uri)
            await client.call_tool(
                "everything__toggle-subscriber-updates" if path == "/mcp/all" else "call_tool_write",
                {} if path == "/mcp/all" else {"name": "everything:toggle-subscriber-updates", "args": {}},
            )
            with trio.fail_after(30):
                await updated.wait()
            await client.unsubscribe_resource(uri)


async def test_rest_shows_prompts_and_resources_and_the_activity_log_records_gets_and_reads(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, [resource_server("one")]) as proxy:
        await proxy.wait_for("one", "running")
        prompts = (await proxy.get("/api/v1/servers/one/prompts")).json()["data"]["prompts"]
        assert [(p["name"], p["mcp_name"]) for p in prompts] == [("greet", "one__greet")]
        listed = (await proxy.get("/api/v1/servers/one/resources")).json()["data"]
        assert "mcpproxy://one/file:///README.md" in [r["mcp_uri"] for r in listed["resources"]]
        async with through(proxy, "/mcp/all", "legacy") as client:
            await client.get_prompt("one__greet", {"name": "Ada"})
            await client.read_resource("mcpproxy://one/file:///README.md")
        with trio.fail_after(20):
            while True:
                data = (await proxy.get("/api/v1/activity", params={"server": "one"})).json()["data"]
                if data["total"] >= 2:
                    break
                await trio.sleep(0.05)
        assert {(r["tool"], r["status"]) for r in data["records"]} == {
            ("prompts/get greet", "ok"),
            ("resources/read mcpproxy://one/file:///README.md", "ok"),
        }


async def test_prompts_and_resources_show_injected_secrets_masked_unless_the_server_allows_it(
    tmp_path: Path,
) -> None:
    literal = "pw-" + secrets.token_hex(12)
    env = {"DB_PASSWORD": literal}
    servers = [resource_server("guarded", env=env), resource_server("open", env=env, allow_secret_echo=True)]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("guarded", "running")
        await proxy.wait_for("open", "running")
        async with through(proxy, "/mcp/all", "legacy") as client:
            for server in ("guarded", "open"):
                shown = texts(await client.read_resource(f"mcpproxy://{server}/file:///README.md"))
                shown += texts(await client.get_prompt(f"{server}__greet", {"name": "Ada"}))
                for text in shown:
                    assert (literal in text) is (server == "open"), text
                    assert ("••••" in text) is (server == "guarded"), text


def cli(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(PYTHON).parent / "mcpproxy"), *args, "--config", str(proxy.config_path)]
    return subprocess.run([*command, "--url", proxy.base_url], capture_output=True, text=True, timeout=60)


async def test_the_cli_lists_gets_and_reads_what_mcp_clients_see(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [resource_server("one")]) as proxy:
        await proxy.wait_for("one", "running")
        listed = await trio.to_thread.run_sync(cli, proxy, "prompts", "list", "-o", "json")
        assert [p["mcp_name"] for p in json.loads(listed.stdout)] == ["one__greet"], listed.stderr
        got = await trio.to_thread.run_sync(
            cli, proxy, "prompts", "get", "one:greet", "--args", '{"name": "Ada"}'
        )
        assert got.stdout.strip() == "user: one greets Ada", got.stderr
        missing = await trio.to_thread.run_sync(cli, proxy, "prompts", "get", "one:nope")
        assert missing.returncode == 4 and "greet" in missing.stderr
        resources = await trio.to_thread.run_sync(cli, proxy, "resources", "list", "one")
        assert "mcpproxy://one/file:///README.md" in resources.stdout, resources.stderr
        read = await trio.to_thread.run_sync(
            cli, proxy, "resources", "read", "mcpproxy://one/file:///README.md"
        )
        assert read.stdout.strip() == "# README of one", read.stderr
        unprefixed = await trio.to_thread.run_sync(cli, proxy, "resources", "read", "ui://widget/card.html")
        assert unprefixed.stdout.strip() == "<p>card of one</p>", unprefixed.stderr
