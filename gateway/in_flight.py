"""A call in flight from the gateway to a worker (gateway/upstreams.py): what it carries beside the
request, and how its log messages reach its client in order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import trio

from bus.messages import CallFailed, ForwardResult, ToolResult
from gateway.asks import Asking

LOG_BACKLOG: Final = 100
"""Log messages of one call waiting for its client; more are dropped (with a warning)."""
LOG_FLUSH_S: Final = 1.0
"""How long a call's answer waits for its log messages to reach its client first."""

Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass
class Pending:
    """One request to a worker, in the gateway's in-flight table until its answer (or its end)."""

    identity: bytes
    on_progress: Progress | None = None
    asking: Asking | None = None
    on_log: Callable[[bytes], Awaitable[None]] | None = None
    done: trio.Event = field(default_factory=trio.Event)
    reply: ToolResult | ForwardResult | CallFailed | None = None
    gone: str | None = None
    questions: set[trio.CancelScope] = field(default_factory=set)
    """The upstream's questions being put to the caller; they end with the call."""
    logs: trio.MemorySendChannel[bytes] | None = None
    logs_sent: trio.Event | None = None


@dataclass(frozen=True)
class CallOptions:
    """How a call reaches its upstream beyond the tool and its arguments."""

    timeout_s: float | None = None
    progress: Progress | None = None
    asking: Asking | None = None
    """Puts the upstream's questions (elicitation, sampling, roots) to the caller."""
    on_log: Callable[[bytes], Awaitable[None]] | None = None
    """Gets the upstream's log messages sent while this was its one call in flight (JSON params)."""
    input_required: bool = False
    input_responses: bytes | None = None
    request_state: str | None = None
    task: bytes | None = None
    """A task-augmented call (the caller's `task` params, JSON): the answer is a `CreateTaskResult`."""


NO_OPTIONS: Final = CallOptions()


async def deliver_logs(
    on_log: Callable[[bytes], Awaitable[None]], logs: trio.MemoryReceiveChannel[bytes], sent: trio.Event
) -> None:
    try:
        async with logs:
            async for params in logs:
                await on_log(params)
    finally:
        sent.set()
