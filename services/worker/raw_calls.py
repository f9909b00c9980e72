"""`tools/call` to a stdio upstream as bytes, beside the SDK's ClientSession on the same pipes.

The gateway hands a worker a call's arguments as JSON bytes and wants the
result as JSON bytes. Through the SDK's ClientSession that is: parse the
arguments, build pydantic models, serialize, write; read, parse, validate,
re-serialize — plus the session's streams and tasks — ~0.3 ms of CPU and
~0.25 ms of latency per call that a bytes-in, bytes-out request does not pay.

A raw call writes one JSON-RPC line with an id of its own (`mcpproxy-N`; the
SDK numbers its requests) into the same write stream the session uses, and
the transport hands every stdout line to `take` before the session sees it:
answers to our ids never reach the session. Everything else — initialize,
notifications, the upstream's own requests, progress, calls that need the
SDK (output schemas, progress) — stays the session's. A raw call that is
given up (cancelled, timed out) sends `notifications/cancelled`, as the SDK
does; when stdout ends, every raw call still waiting fails at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import anyio
import msgspec
import trio
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bus.errors import UpstreamError
from bus.messages import CallTool, ToolInfo

ID_PREFIX: Final = "mcpproxy-"
_MARK: Final = b'"' + ID_PREFIX.encode()
CANCEL_SEND_S: Final = 1.0


class Outbox(Protocol):
    """Where a raw call's ready-made line goes: the transport's write stream (which also carries the
    SDK's SessionMessages), or a stdio upstream's `StdinLines` in front of it."""

    def send_nowait(self, line: bytes) -> None:
        """Send now, or raise anyio.WouldBlock."""
        ...

    async def send(self, line: bytes) -> None: ...


class _Error(msgspec.Struct):
    code: int
    message: str
    data: Any = None


class _Reply(msgspec.Struct):
    id: str | int | None = None
    method: str | None = None
    result: msgspec.Raw = msgspec.Raw()
    """Empty when there was none (msgspec cannot decode `Raw | None`)."""
    error: _Error | None = None


_decode_reply: Final = msgspec.json.Decoder(_Reply).decode


@dataclass
class _Waiter:
    done: trio.Event = field(default_factory=trio.Event)
    reply: _Reply | None = None
    failure: str | None = None


def request_line(request_id: str, tool: str, arguments: bytes, traceparent: str | None = None) -> bytes:
    """The JSON-RPC `tools/call` line; `arguments` is a JSON object, as bytes, put in unchanged; a
    `traceparent` (traces on: services/worker/traces.py) goes in `_meta`."""
    meta = b',"_meta":{"traceparent":%s}' % json.dumps(traceparent).encode() if traceparent else b""
    return b'{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":%s,"arguments":%s%s}}\n' % (
        json.dumps(request_id).encode(),
        json.dumps(tool).encode(),
        arguments,
        meta,
    )


def fits_a_line(arguments: bytes) -> bool:
    """A JSON object with no raw line break (json.dumps makes none); anything else goes through the SDK."""
    return arguments.startswith(b"{") and b"\n" not in arguments and b"\r" not in arguments


def plain_tools(tools: list[ToolInfo]) -> frozenset[str]:
    """Tools whose results the session would not check against an output schema."""
    return frozenset(tool.name for tool in tools if tool.output_schema is None)


def raw_lane(session: ClientSession, tools: list[ToolInfo]) -> frozenset[str]:
    """The tools a stdio upstream is called through the raw lane for. It writes 2025-era requests: a
    2026-era session (every request carries its era in `_meta`) takes none."""
    if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return frozenset()
    return plain_tools(tools)


def takes_raw(call: CallTool, raw_tools: frozenset[str]) -> bool:
    """A call the raw lane answers as the session would: no progress or logs wanted, no output schema
    to check, no 2026-era retry."""
    return (
        not call.want_progress
        and not call.want_logs
        and call.request_state is None
        and call.input_responses is None
        and call.tool in raw_tools
        and fits_a_line(call.arguments)
    )


class RawCalls:
    """The raw calls in flight on one upstream connection."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[str, _Waiter] = {}
        self._closed: str | None = None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def take(self, line: bytes) -> bool:
        """True when `line` answers one of our calls (delivered, or dropped if that call gave up)."""
        if _MARK not in line:
            return False
        try:
            reply = _decode_reply(line)
        except msgspec.DecodeError:
            return False
        if reply.method is not None or not isinstance(reply.id, str) or not reply.id.startswith(ID_PREFIX):
            return False
        waiter = self._waiting.pop(reply.id, None)
        if waiter is not None:
            waiter.reply = reply
            waiter.done.set()
        return True

    def close(self, reason: str) -> None:
        """The upstream's output ended: fail every call still waiting, and any later one."""
        self._closed = reason
        for waiter in self._waiting.values():
            waiter.failure = reason
            waiter.done.set()
        self._waiting.clear()

    async def call(
        self, outbox: Outbox, tool: str, arguments: bytes, traceparent: str | None = None
    ) -> bytes:
        """Call `tool`; return the upstream's CallToolResult JSON as the upstream wrote it (unvalidated).

        A JSON-RPC error raises MCPError, exactly as the SDK's session would.
        """
        if self._closed is not None:
            raise UpstreamError(self._closed)
        request_id = f"{ID_PREFIX}{next(self._ids)}"
        waiter = _Waiter()
        self._waiting[request_id] = waiter
        try:
            line = request_line(request_id, tool, arguments, traceparent)
            try:
                outbox.send_nowait(line)  # the wait below is this task's pass through the scheduler
            except anyio.WouldBlock:
                await outbox.send(line)
            await waiter.done.wait()
        except trio.Cancelled:
            if self._waiting.pop(request_id, None) is not None:
                await _send_cancelled(outbox, request_id)
            raise
        finally:
            self._waiting.pop(request_id, None)
        if waiter.failure is not None:
            raise UpstreamError(waiter.failure)
        reply = waiter.reply
        assert reply is not None
        if reply.error is not None:
            raise MCPError(reply.error.code, reply.error.message, reply.error.data)
        if not reply.result:
            raise UpstreamError(f"the upstream answered tools/call {tool!r} with neither result nor error")
        # Validated once, where it is used: the gateway (gateway/calling.py) parses the result anyway.
        return bytes(reply.result)


async def _send_cancelled(outbox: Outbox, request_id: str) -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(CANCEL_SEND_S),
        contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError),
    ):
        await outbox.send(json.dumps(note).encode() + b"\n")
