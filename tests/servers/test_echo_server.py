"""The echo test server, driven by the MCP SDK's own stdio client: what the proxy will see upstream."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import mcp.types as types
import trio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ECHO_SERVER: Final = Path(__file__).resolve().parent / "echo_server.py"
# Spawn + SDK import + initialize takes well under a second; the margin is for loaded CI hosts.
STEP_TIMEOUT_S: Final = 20.0


EchoSession = tuple[ClientSession, trio.MemoryReceiveChannel[str]]


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


@asynccontextmanager
async def open_echo_session(*args: str) -> AsyncIterator[EchoSession]:
    """An initialized session with a fresh echo server, and a channel of its stderr lines.

    stderr goes to a pipe we drain (the SDK wants a real descriptor for `errlog`).
    """
    params = StdioServerParameters(command=sys.executable, args=[str(ECHO_SERVER), *args])
    read_fd, write_fd = os.pipe()
    lines_in, lines_out = trio.open_memory_channel[str](100)

    async def drain_stderr() -> None:
        async with trio.lowlevel.FdStream(read_fd) as stream, lines_in:
            buffer = b""
            async for chunk in stream:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    lines_in.send_nowait(line.decode())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain_stderr)
        with os.fdopen(write_fd, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                with trio.fail_after(STEP_TIMEOUT_S):
                    await session.initialize()
                yield session, lines_out


async def test_echo_server_says_ready_on_stderr_and_reports_its_name() -> None:
    async with open_echo_session("--name", "echo-under-test") as (session, stderr_lines):
        assert session.server_info is not None
        assert session.server_info.name == "echo-under-test"
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await stderr_lines.receive() == "echo_server ready"


async def test_echo_server_lists_six_tools_with_schemas_and_annotations() -> None:
    async with open_echo_session() as (session, _):
        with trio.fail_after(STEP_TIMEOUT_S):
            listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"echo", "add", "sleep", "fail", "whoami", "delete_everything"}
    assert all(tool.description for tool in tools.values())
    assert all(tool.input_schema["type"] == "object" for tool in tools.values())
    assert tools["echo"].input_schema["required"] == ["message"]
    assert tools["add"].input_schema["properties"]["a"]["type"] == "number"
    assert tools["echo"].annotations is not None
    assert tools["echo"].annotations.read_only_hint is True
    destructive = tools["delete_everything"].annotations
    assert destructive is not None
    assert destructive.destructive_hint is True
    assert destructive.read_only_hint is False


async def test_echo_returns_the_message_and_add_returns_the_sum_as_text_and_structured_content() -> None:
    async with open_echo_session() as (session, _):
        with trio.fail_after(STEP_TIMEOUT_S):
            await session.list_tools()
            echoed = await session.call_tool("echo", {"message": "hi"})
            added = await session.call_tool("add", {"a": 2, "b": 3})
            halves = await session.call_tool("add", {"a": 0.5, "b": 0.25})
    assert not echoed.is_error
    assert text_of(echoed) == "hi"
    assert not added.is_error
    assert text_of(added) == "5"
    assert added.structured_content == {"sum": 5}
    assert text_of(halves) == "0.75"
    assert halves.structured_content == {"sum": 0.75}


async def test_fail_and_bad_arguments_are_tool_errors_not_protocol_errors() -> None:
    async with open_echo_session() as (session, _):
        with trio.fail_after(STEP_TIMEOUT_S):
            failed = await session.call_tool("fail", {"message": "boom"})
            bad = await session.call_tool("add", {"a": 1, "b": "two"})
    assert failed.is_error
    assert text_of(failed) == "boom"
    assert bad.is_error
    assert "'b'" in text_of(bad)
