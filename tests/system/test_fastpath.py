"""The fast lane for `tools/call`: same answers as the SDK's path, same guards, same record.

A plain call on an initialized session comes back as `application/json`; the
same call with a progress token still takes the SDK's path (an event stream),
which gives a reference to compare against on the very same session.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest
import trio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import HEADER_MISMATCH

from tests.proxyctl import INITIALIZE_2025, Proxy, echo_server, running_proxy

pytestmark = pytest.mark.system

ACCEPT_BOTH: Final = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Seen:
    """What the proxy answered each tools/call with: (tool name, content type)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, response: httpx2.Response) -> None:
        body = json.loads(response.request.content or b"null")
        if isinstance(body, dict) and body.get("method") == "tools/call":
            self.calls.append((body["params"]["name"], response.headers.get("content-type", "")))


@asynccontextmanager
async def watched_session(proxy: Proxy, path: str) -> AsyncIterator[tuple[ClientSession, Seen]]:
    seen = Seen()
    async with (
        httpx2.AsyncClient(timeout=60.0, event_hooks={"response": [seen]}) as http,
        streamable_http_client(f"{proxy.base_url}{path}", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        with trio.fail_after(30):
            await session.initialize()
        yield session, seen


async def fast_lane_open(session: ClientSession, seen: Seen, tool: str, arguments: dict[str, Any]) -> None:
    """Call until a plain call comes back as JSON: the gateway learns of the handshake just after it."""
    with trio.fail_after(10):
        while True:
            await session.call_tool(tool, arguments)
            if seen.calls[-1][1].startswith("application/json"):
                return
            await trio.sleep(0.02)


async def no_progress(progress: float, total: float | None, message: str | None) -> None:
    pass


async def lane_counts(proxy: Proxy) -> dict[str, float]:
    """POSTs the gateway answered inside the HTTP/1.1 protocol, and those it gave to the app
    (gateway/mcp_lane.py), as `/metrics` counts them."""
    text = (await proxy.get("/metrics")).text
    found = re.findall(r'^mcpproxy_mcp_lane_requests_total\{outcome="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {outcome: float(count) for outcome, count in found}


async def lane_answered_since(proxy: Proxy, before: dict[str, float]) -> float:
    return (await lane_counts(proxy))["answered"] - before["answered"]


@pytest.mark.parametrize(
    ("path", "calls"),
    [
        (
            "/mcp/all",
            [
                ("echo__echo", {"message": "héllo ✓"}),
                ("echo__add", {"a": 2, "b": 3.5}),
                ("echo__add", {"a": "x", "b": 1}),
                ("echo__fail", {"message": "it broke"}),
                ("echo__nope", {}),
                ("echo__delete_everything", {}),
            ],
        ),
        (
            "/mcp",
            [
                ("call_tool_read", {"name": "echo:echo", "args": {"message": "hi"}}),
                ("call_tool_read", {"name": "echo:add", "args_json": '{"a": 1, "b": 2}'}),
                ("call_tool_read", {"name": "echo:nope", "args": {}}),
                ("call_tool_read", {"name": "echo:delete_everything"}),
                ("call_tool_destructive", {"name": "echo:delete_everything"}),
                ("call_tool_read", {"name": "not-a-name"}),
                ("retrieve_tools", {"query": "add two numbers", "limit": 2}),
                ("describe_tool", {"tool_ids": ["echo:add"]}),
                ("no_such_menu_item", {}),
            ],
        ),
    ],
)
async def test_plain_calls_come_back_as_json_with_the_sdk_paths_results(
    tmp_path: Path, path: str, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with watched_session(proxy, path) as (session, seen):
            await fast_lane_open(session, seen, *calls[0])
            before = await lane_counts(proxy)
            for tool, arguments in calls:
                seen.calls.clear()
                fast = await session.call_tool(tool, arguments)
                reference = await session.call_tool(tool, arguments, progress_callback=no_progress)
                assert [kind.split(";")[0] for _, kind in seen.calls] == [
                    "application/json",
                    "text/event-stream",
                ]
                assert fast.model_dump() == reference.model_dump(), tool
            # Each plain call was answered inside the HTTP/1.1 protocol; its reference went to the app.
            assert await lane_answered_since(proxy, before) == len(calls)


async def test_the_fast_lane_refuses_what_the_guards_refuse(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(), echo_server("held", quarantined=True)]) as proxy:
        await proxy.wait_for("echo", "running")
        await proxy.wait_for("held", "stopped", quarantined=True)
        async with watched_session(proxy, "/mcp") as (session, seen):
            await fast_lane_open(session, seen, "call_tool_read", {"name": "echo:echo", "args": {}})
            before = await lane_counts(proxy)
            held = await session.call_tool("call_tool_read", {"name": "held:echo", "args": {"message": "x"}})
            assert held.is_error and "quarantined" in held.content[0].text  # type: ignore[union-attr]
            destructive = await session.call_tool("call_tool_read", {"name": "echo:delete_everything"})
            assert destructive.is_error and "call_tool_destructive" in destructive.content[0].text  # type: ignore[union-attr]
            assert all(kind.startswith("application/json") for _, kind in seen.calls[-2:])
            assert await lane_answered_since(proxy, before) == 2  # refused inside the HTTP/1.1 protocol
        activity = (await proxy.get("/api/v1/activity", params={"status": "blocked"})).json()["data"]
        with trio.fail_after(20):
            while activity["total"] < 2:
                await trio.sleep(0.05)
                activity = (await proxy.get("/api/v1/activity", params={"status": "blocked"})).json()["data"]
        assert {(r["server"], r["tool"]) for r in activity["records"]} == {
            ("held", "echo"),
            ("echo", "delete_everything"),
        }


async def test_fast_lane_calls_are_on_the_activity_record(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with watched_session(proxy, "/mcp/all") as (session, seen):
            await fast_lane_open(session, seen, "echo__echo", {"message": "warm"})
            await session.call_tool("echo__add", {"a": 40, "b": 2})
            assert seen.calls[-1] == ("echo__add", "application/json")
        with trio.fail_after(20):
            while True:
                data = (await proxy.get("/api/v1/activity", params={"tool": "add"})).json()["data"]
                if data["total"]:
                    break
                await trio.sleep(0.05)
        record = data["records"][0]
        assert record["surface"] == "mcp_all" and record["status"] == "ok" and record["server"] == "echo"
        assert json.loads(record["arguments"]) == {"a": 40, "b": 2} and "42" in record["result"]
        assert record["client_name"] == "mcp" and record["session_id"] and record["request_id"]


async def test_a_cancelled_fast_lane_call_is_cancelled_upstream(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with watched_session(proxy, "/mcp/all") as (session, seen):
            await fast_lane_open(session, seen, "echo__echo", {"message": "warm"})
            with trio.move_on_after(1.5):
                await session.call_tool("echo__sleep", {"seconds": 60})
            with trio.fail_after(20):
                while True:
                    logs = await proxy.get("/api/v1/servers/echo/logs", params={"tail": 20})
                    if "sleep cancelled" in logs.json()["data"]["lines"]:
                        break
                    await trio.sleep(0.1)
            again = await session.call_tool("echo__echo", {"message": "after"})
            assert again.content[0].text == "after"  # type: ignore[union-attr]
            assert seen.calls[-1] == ("echo__echo", "application/json")


async def test_raw_requests_get_the_sdks_answers_for_what_the_fast_lane_does_not_take(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        url = f"{proxy.base_url}/mcp/all"
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo__echo"}}
        async with httpx2.AsyncClient(timeout=30.0) as http:
            opened = await http.post(
                url,
                headers=ACCEPT_BOTH,
                json=INITIALIZE_2025,
            )
            session_headers = {
                **ACCEPT_BOTH,
                "Mcp-Session-Id": opened.headers["mcp-session-id"],
                "Mcp-Protocol-Version": "2025-11-25",
            }
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(url, headers=session_headers, json=note)).status_code == 202
            with trio.fail_after(10):
                while True:
                    answer = await http.post(url, headers=session_headers, json=call)
                    if answer.headers["content-type"] == "application/json":
                        break
                    await trio.sleep(0.02)
            assert answer.json() == {
                "jsonrpc": "2.0",
                "id": 2,
                "result": {"content": [{"type": "text", "text": ""}], "isError": False},
            }
            assert answer.headers["mcp-session-id"] == session_headers["Mcp-Session-Id"]

            unknown = await http.post(url, headers={**session_headers, "Mcp-Session-Id": "f" * 32}, json=call)
            assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "Session not found"

            broken = await http.post(url, headers=session_headers, content=b'{"jsonrpc": "2.0", "id": 3,')
            assert broken.status_code == 400 and broken.json()["error"]["code"] == -32700

            json_only = await http.post(
                url, headers={**session_headers, "Accept": "application/json"}, json=call
            )
            assert json_only.status_code == 406

            ended = await http.delete(url, headers=session_headers)
            assert ended.status_code == 200
            gone = await http.post(url, headers=session_headers, json=call)
            assert gone.status_code == 404


MODERN_HEADERS: Final = {**ACCEPT_BOTH, "Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"}


def modern_call(request_id: int, tool: str, arguments: dict[str, Any], **extra_meta: Any) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
        **extra_meta,
    }
    params = {"name": tool, "arguments": arguments, "_meta": meta}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


@pytest.mark.parametrize(
    ("path", "calls"),
    [
        (
            "/mcp/all",
            [
                ("echo__echo", {"message": "héllo ✓"}),
                ("echo__add", {"a": "x", "b": 1}),
                ("echo__fail", {"message": "it broke"}),
                ("echo__nope", {}),
                ("echo__delete_everything", {}),
                ("held__echo", {"message": "quarantined"}),
            ],
        ),
        (
            "/mcp",
            [
                ("call_tool_read", {"name": "echo:add", "args": {"a": 1, "b": 2}}),
                ("call_tool_read", {"name": "echo:delete_everything"}),
                ("call_tool_read", {"name": "held:echo", "args": {"message": "x"}}),
                ("retrieve_tools", {"query": "add two numbers", "limit": 2}),
            ],
        ),
    ],
)
async def test_a_plain_2026_call_gets_the_sdk_paths_answer(
    tmp_path: Path, path: str, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    """A plain 2026-07-28 call (the fast lane) and the same call with one more `_meta` key (which the
    lane leaves to the SDK) get the same answer, guards included; a mismatched header is the SDK's 400."""
    async with running_proxy(tmp_path, [echo_server(), echo_server("held", quarantined=True)]) as proxy:
        await proxy.wait_for("echo", "running")
        async with httpx2.AsyncClient(timeout=30.0) as http:
            url = f"{proxy.base_url}{path}"
            before = await lane_counts(proxy)
            for number, (tool, arguments) in enumerate(calls):
                headers = {**MODERN_HEADERS, "Mcp-Name": tool}
                fast = await http.post(url, headers=headers, json=modern_call(number, tool, arguments))
                reference = await http.post(
                    url, headers=headers, json=modern_call(number, tool, arguments, **{"x-test/other": 1})
                )
                assert fast.status_code == reference.status_code == 200, (tool, fast.text)
                assert fast.headers["content-type"] == "application/json"
                assert "mcp-session-id" not in fast.headers
                assert fast.json() == reference.json(), tool
            assert await lane_answered_since(proxy, before) == len(calls)
            mismatched = await http.post(
                url, headers={**MODERN_HEADERS, "Mcp-Name": "other"}, json=modern_call(99, *calls[0])
            )
            assert mismatched.status_code == 400 and mismatched.json()["error"]["code"] == HEADER_MISMATCH
