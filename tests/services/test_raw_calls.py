"""The raw lane of a stdio upstream: bytes in, bytes out, beside the SDK session on the same pipes."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
import trio
from mcp.shared.exceptions import MCPError

from bus.errors import UpstreamError
from bus.messages import ToolInfo, UpstreamSpec
from services.upstream_log import RotatingLog
from services.worker.raw_calls import RawCalls, fits_a_line, plain_tools, request_line
from services.worker.upstream import Upstream, open_upstream
from tests.proxyctl import SERVERS

SDK_RESPONSE = b'{"jsonrpc":"2.0","id":3,"result":{"content":[],"isError":false}}'


def test_the_request_line_carries_the_arguments_unchanged() -> None:
    line = request_line("mcpproxy-7", "do \u00e9", b'{"b": 1, "a": "x\\ny"}')
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    message = json.loads(line)
    assert message == {
        "jsonrpc": "2.0",
        "id": "mcpproxy-7",
        "method": "tools/call",
        "params": {"name": "do \u00e9", "arguments": {"b": 1, "a": "x\ny"}},
    }


def test_what_may_go_raw() -> None:
    assert fits_a_line(b'{"a": "x\\ny"}')
    assert not fits_a_line(b'{"a":\n1}') and not fits_a_line(b'{"a":\r1}') and not fits_a_line(b"")
    tools = [ToolInfo(name="plain"), ToolInfo(name="shaped", output_schema={"type": "object"})]
    assert plain_tools(tools) == {"plain"}


async def test_only_answers_to_our_ids_are_taken_and_late_ones_are_dropped() -> None:
    raw = RawCalls()
    assert not raw.take(SDK_RESPONSE)
    assert not raw.take(b"not json at all")
    # The upstream's own request, whatever id it picked, is the session's.
    assert not raw.take(b'{"jsonrpc":"2.0","id":"mcpproxy-1","method":"roots/list"}')
    # A tool result that merely mentions our prefix is the session's too.
    assert not raw.take(
        b'{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"\\"mcpproxy-1"}]}}'
    )
    # An answer for a call nobody waits for any more (given up) is swallowed, never shown to the session.
    assert raw.take(b'{"jsonrpc":"2.0","id":"mcpproxy-99","result":{"content":[]}}')


async def answered(raw: RawCalls, answer: bytes) -> Any:
    """Run one raw call whose answer is `answer` with its id filled in; return the result or the exception."""
    outbox, sent = anyio.create_memory_object_stream[Any](4)
    outcome: list[Any] = []

    async def call() -> None:
        try:
            outcome.append(await raw.call(outbox, "t", b"{}"))
        except Exception as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        request = json.loads(await sent.receive())
        assert raw.take(answer.replace(b"ID", json.dumps(request["id"]).encode()))
    return outcome[0]


async def test_a_json_rpc_error_raises_what_the_session_would() -> None:
    error = await answered(
        RawCalls(), b'{"jsonrpc":"2.0","id":ID,"error":{"code":-32602,"message":"bad args"}}'
    )
    assert isinstance(error, MCPError) and str(error) == "bad args" and error.code == -32602


async def test_a_result_is_relayed_unvalidated_and_a_missing_one_is_refused() -> None:
    # The gateway validates every result once (gateway/calling.py), so the raw lane relays bytes as they came.
    relayed = await answered(RawCalls(), b'{"jsonrpc":"2.0","id":ID,"result":{"content":"not a list"}}')
    assert relayed == b'{"content":"not a list"}'
    empty = await answered(RawCalls(), b'{"jsonrpc":"2.0","id":ID}')
    assert isinstance(empty, UpstreamError)


@asynccontextmanager
async def echo_upstream(tmp_path: Path) -> AsyncIterator[tuple[Upstream, Path]]:
    log_path = tmp_path / "echo.log"
    spec = UpstreamSpec(
        name="echo",
        protocol="stdio",
        command=sys.executable,
        args=[str(SERVERS / "echo_server.py")],
        log_path=str(log_path),
    )

    async def ignore(message: Any) -> None:
        pass

    log = RotatingLog(log_path, 1024 * 1024)
    try:
        with trio.fail_after(30):
            async with open_upstream(spec, log, lambda child: None, ignore) as upstream:
                await upstream.session.list_tools()
                yield upstream, log_path
    finally:
        log.close()


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("echo", {"message": "héllo ✓"}),
        ("add", {"a": 2, "b": 3.5}),
        ("add", {"a": "x"}),
        ("fail", {"message": "it broke"}),
        ("nope", {}),
    ],
)
async def test_a_raw_call_answers_what_the_session_answers(
    tmp_path: Path, tool: str, arguments: dict[str, Any]
) -> None:
    async with echo_upstream(tmp_path) as (upstream, _log):
        assert upstream.stdio is not None
        with trio.fail_after(10):
            body = await upstream.stdio.raw.call(
                upstream.stdio.write_stream, tool, json.dumps(arguments, ensure_ascii=False).encode()
            )
            reference = await upstream.session.call_tool(tool, arguments)
            # The session keeps working alongside, on the same pipes.
            again = await upstream.session.call_tool("echo", {"message": "still here"})
        assert types.CallToolResult.model_validate_json(body).model_dump() == reference.model_dump()
        assert again.content[0].text == "still here"  # type: ignore[union-attr]


async def test_raw_calls_do_not_wait_for_each_other(tmp_path: Path) -> None:
    async with echo_upstream(tmp_path) as (upstream, _log):
        stdio = upstream.stdio
        assert stdio is not None
        slept: list[bytes] = []

        async def sleeper() -> None:
            slept.append(await stdio.raw.call(stdio.write_stream, "sleep", b'{"seconds": 60}'))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sleeper)
                while stdio.raw.in_flight == 0:
                    await trio.sleep(0.01)
                answers = [
                    await stdio.raw.call(stdio.write_stream, "add", b'{"a": %d, "b": 1}' % i)
                    for i in range(5)
                ]
                assert not slept, "the sleep is still in flight while the others came and went"
                nursery.cancel_scope.cancel()
        assert [json.loads(a)["structuredContent"]["sum"] for a in answers] == [1, 2, 3, 4, 5]


async def test_a_cancelled_raw_call_is_cancelled_upstream(tmp_path: Path) -> None:
    async with echo_upstream(tmp_path) as (upstream, log_path):
        stdio = upstream.stdio
        assert stdio is not None
        with trio.move_on_after(1.0):
            await stdio.raw.call(stdio.write_stream, "sleep", b'{"seconds": 60}')
        assert stdio.raw.in_flight == 0
        with trio.fail_after(10):
            while "sleep cancelled" not in log_path.read_text():
                await trio.sleep(0.05)
            assert b"after" in await stdio.raw.call(stdio.write_stream, "echo", b'{"message": "after"}')


async def test_a_raw_call_fails_at_once_when_the_upstream_dies(tmp_path: Path) -> None:
    async with echo_upstream(tmp_path) as (upstream, _log):
        stdio = upstream.stdio
        assert stdio is not None

        async def kill_soon() -> None:
            while stdio.raw.in_flight == 0:
                await trio.sleep(0.01)
            os.kill(stdio.child.pid, signal.SIGKILL)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(kill_soon)
                with pytest.raises(UpstreamError):
                    await stdio.raw.call(stdio.write_stream, "sleep", b'{"seconds": 60}')
            with pytest.raises(UpstreamError):  # and so does any later one
                await stdio.raw.call(stdio.write_stream, "echo", b"{}")


CANCEL_NOBODY = b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"mcpproxy-0"}}\n'
"""A line any upstream takes and ignores: the cancellation of a request it never had."""


async def test_a_raw_line_goes_straight_to_an_idle_pipe_and_never_overtakes_a_queued_one(
    tmp_path: Path,
) -> None:
    async with echo_upstream(tmp_path) as (upstream, _log):
        stdio = upstream.stdio
        assert stdio is not None
        with trio.fail_after(10):
            while not stdio.write_receive.statistics().tasks_waiting_receive:  # the stdin pump is waiting
                await trio.sleep(0.01)
            assert stdio.write_now(CANCEL_NOBODY) == b""  # written at once, by this task
            stdio.write_stream.send_nowait(CANCEL_NOBODY)  # the session queued something
            assert stdio.write_now(CANCEL_NOBODY) == CANCEL_NOBODY  # so this one must wait its turn
            body = await stdio.raw.call(stdio.raw_lines, "echo", b'{"message": "in order"}')
            assert b"in order" in body
            answers = [
                await stdio.raw.call(stdio.raw_lines, "add", b'{"a": %d, "b": 1}' % i) for i in range(3)
            ]
        assert [json.loads(a)["structuredContent"]["sum"] for a in answers] == [1, 2, 3]
