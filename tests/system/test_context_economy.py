"""Spending less of the agent's context (issue 22): compact search hits, filters, a tool named in the
query found first, schema-deferred direct mode, and errors that carry the schema.

Each test drives a real `mcpproxy serve` with real upstreams (our echo server and the npm
server-everything) through the SDK's `Client` in both protocol eras.
"""

from __future__ import annotations

import json
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

from tests.proxyctl import Proxy, echo_server, everything_server, running_proxy

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
DEADLINE_S: Final = 60.0
ANY_OBJECT: Final = {"type": "object", "additionalProperties": True}


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@asynccontextmanager
async def mcp_client(proxy: Proxy, path: str, mode: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(timeout=DEADLINE_S) as http:
        transport = streamable_http_client(f"{proxy.base_url}{path}", http_client=http)
        with trio.fail_after(DEADLINE_S):
            async with Client(transport, mode=mode, cache=None) as client:
                yield client


async def retrieve(client: Client, query: str, **options: Any) -> dict[str, Any]:
    result = await client.call_tool("retrieve_tools", {"query": query, **options})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def test_retrieve_tools_answers_compactly_by_default_and_fully_when_asked(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server(), echo_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.wait_for("echo", "running")
        for mode in MODES:
            async with mcp_client(proxy, "/mcp", mode) as client:
                menu = {tool.name: tool for tool in (await client.list_tools()).tools}
                properties = menu["retrieve_tools"].input_schema["properties"]
                assert {"detail", "read_only_only", "exclude_destructive", "servers"} <= set(properties)

                compact = await retrieve(client, "add two numbers", limit=5)
                hit = next(h for h in compact["tools"] if h["name"] == "echo:add")
                assert hit == {
                    "name": "echo:add",
                    "description": "Add two numbers and return their sum.",
                    "signature": "a: number, b: number",
                    "tier": "read",
                    "tier_source": "annotations",
                    "call_with": "call_tool_read",
                }
                full = await retrieve(client, "add two numbers", limit=5, detail="full")
                assert [h["name"] for h in full["tools"]] == [h["name"] for h in compact["tools"]]
                assert all("inputSchema" in h for h in full["tools"])
                assert len(json.dumps(compact)) * 2 < len(json.dumps(full))

                # A tool named in the query comes first, however it is spelled.
                for query in ("everything:get-sum", "EVERYTHING__GET_SUM", "get_sum", "use `get-sum` please"):
                    first = (await retrieve(client, query, limit=3))["tools"][0]
                    assert first["name"] == "everything:get-sum", query
                    assert first["signature"] == "a: number, b: number"

                described = await client.call_tool("describe_tool", {"tool_ids": ["echo:add"]})
                assert described.structured_content is not None
                assert described.structured_content["tools"][0]["inputSchema"]["required"] == ["a", "b"]

                wrong = await client.call_tool("retrieve_tools", {"query": "add", "detail": "everything"})
                assert wrong.is_error and "compact, full" in text_of(wrong)


async def test_filters_narrow_the_search_and_say_what_they_hid(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(), echo_server("other")]) as proxy:
        await proxy.wait_for("echo", "running")
        await proxy.wait_for("other", "running")
        for mode in MODES:
            async with mcp_client(proxy, "/mcp", mode) as client:
                everything = await retrieve(client, "delete everything", limit=2)
                assert everything["tools"][0]["name"].endswith(":delete_everything")
                assert "filtered" not in everything

                safe = await retrieve(client, "delete everything", limit=2, exclude_destructive=True)
                assert all(h["tier"] != "destructive" for h in safe["tools"]) and len(safe["tools"]) == 2
                assert safe["filtered"] == {"hidden": 2, "by": {"exclude_destructive": 2}}
                assert "exclude_destructive (2)" in safe["note"]

                reading = await retrieve(client, "delete everything", limit=50, read_only_only=True)
                assert reading["tools"] and all(h["call_with"] == "call_tool_read" for h in reading["tools"])
                assert reading["filtered"]["by"] == {"read_only_only": 2}

                one = await retrieve(client, "echo a message", limit=4, servers=["other", "ghost"])
                assert {h["name"].split(":")[0] for h in one["tools"]} == {"other"}
                assert one["filtered"]["by"]["servers"] >= 1 and one["unknown_servers"] == ["ghost"]

                bad = await client.call_tool("retrieve_tools", {"query": "echo", "servers": "echo"})
                assert bad.is_error and "list of server names" in text_of(bad)


async def test_a_call_with_wrong_arguments_gets_the_schema_in_its_error(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server(), echo_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.wait_for("echo", "running")
        for mode in MODES:
            async with mcp_client(proxy, "/mcp", mode) as client:
                # The upstream checks (server-everything answers "Input validation error") ...
                wrong = await client.call_tool(
                    "call_tool_read", {"name": "everything:echo", "args": {"msg": "hi"}}
                )
                assert wrong.is_error and "Input validation error" in text_of(wrong)
                assert "It takes: message: string" in text_of(wrong)
                assert (wrong.meta or {})["mcpproxy/inputSchema"]["required"] == ["message"]
                # ... or does not, and the proxy finds out against the schema it knows.
                wrong = await client.call_tool(
                    "call_tool_read", {"name": "echo:add", "args": {"a": "x", "b": 1}}
                )
                assert wrong.is_error and "a: 'x' is not of type 'number'" in text_of(wrong)
                # Right arguments, or an error of another kind, are left as they were.
                right = await client.call_tool(
                    "call_tool_read", {"name": "echo:add", "args": {"a": 1, "b": 2}}
                )
                assert not right.is_error and text_of(right) == "3"
                failed = await client.call_tool(
                    "call_tool_read", {"name": "echo:fail", "args": {"message": "boom"}}
                )
                assert (
                    failed.is_error
                    and text_of(failed) == "boom"
                    and not (failed.meta or {}).get("mcpproxy/inputSchema")
                )


async def test_deferred_direct_mode_lists_signatures_and_describes_tools_on_demand(tmp_path: Path) -> None:
    servers = [everything_server(), echo_server()]
    async with running_proxy(tmp_path, servers, direct_mode="deferred", tool_response_mode="full") as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.wait_for("echo", "running")
        for mode in MODES:
            async with mcp_client(proxy, "/mcp/all", mode) as client:
                tools = {tool.name: tool for tool in (await client.list_tools()).tools}
                add = tools["echo__add"]
                assert add.input_schema == ANY_OBJECT and add.output_schema is None
                assert add.description is not None and add.description.endswith(
                    "Arguments: a: number, b: number"
                )
                assert tools["echo__whoami"].description.endswith("Arguments: none")  # type: ignore[union-attr]
                assert all(t.input_schema == ANY_OBJECT for n, t in tools.items() if "__" in n)
                assert "describe_tool" in tools

                described = await client.call_tool(
                    "describe_tool", {"tool_ids": ["everything__get-sum", "echo:add", "x"]}
                )
                assert described.structured_content is not None
                found = {t["name"]: t for t in described.structured_content["tools"]}
                assert found["everything__get-sum"]["inputSchema"]["required"] == ["a", "b"]
                assert found["echo__add"]["inputSchema"]["properties"]["a"] == {
                    "type": "number",
                    "description": "First addend.",
                }
                assert described.structured_content["not_found"] == ["x"]

                done = await client.call_tool("everything__get-sum", {"a": 2, "b": 3})
                assert not done.is_error and "5" in text_of(done)
                wrong = await client.call_tool("everything__get-sum", {"a": "two"})
                assert wrong.is_error and "It takes: a: number, b: number" in text_of(wrong)
                assert (wrong.meta or {})["mcpproxy/inputSchema"]["required"] == ["a", "b"]

            async with mcp_client(proxy, "/mcp", mode) as client:  # tool_response_mode: full
                hits = (await retrieve(client, "add two numbers", limit=3))["tools"]
                assert all("inputSchema" in h for h in hits)
