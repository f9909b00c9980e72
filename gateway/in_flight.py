"""A call in flight from the gateway to a worker (gateway/upstreams.py): what it carries beside the
request, how its log messages reach its client in order, and how its upstream's questions are put to
that client."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import trio

from bus.errors import BusError
from bus.messages import AskAnswered, CallFailed, ForwardResult, ToolResult, UpstreamAsked, WorkerToGateway
from bus.transport import RouterChannel
from gateway.asks import Asking, AskRefusedError

logger = logging.getLogger(__name__)

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


def log_to_caller(nursery: trio.Nursery, pending: Pending, params: bytes) -> None:
    """A call's log message, to its caller: in order, by one task per call, which the call's
    answer waits for (`_exchange`), so a log line never arrives after the result it preceded."""
    assert pending.on_log is not None
    if pending.logs is None:
        send, receive = trio.open_memory_channel[bytes](LOG_BACKLOG)
        pending.logs, pending.logs_sent = send, trio.Event()
        nursery.start_soon(deliver_logs, pending.on_log, receive, pending.logs_sent)
    try:
        pending.logs.send_nowait(params)
    except (trio.WouldBlock, trio.ClosedResourceError):
        logger.warning("dropped a log message for a call: its client is not keeping up")


async def put_question(
    calls: RouterChannel[WorkerToGateway], peer: bytes, pending: Pending, question: UpstreamAsked
) -> None:
    """Ask the caller (from its own task: a slow client must not stall the calls loop), and send the
    worker the answer."""
    scope = trio.CancelScope()
    pending.questions.add(scope)
    answer: AskAnswered | None = None
    try:
        with scope:
            if pending.asking is None or question.method not in pending.asking.methods:
                raise AskRefusedError(-32600, "the calling client cannot be asked this")
            result = await pending.asking.ask(question.method, json.loads(question.params or b"{}"))
            answer = AskAnswered(ask_id=question.ask_id, result=json.dumps(result).encode())
    except AskRefusedError as exc:
        answer = AskAnswered(ask_id=question.ask_id, error=exc.message, code=exc.code)
    except Exception as exc:  # task boundary: the upstream gets an error, never a hang
        logger.warning("asking the client failed: %s", exc)
        answer = AskAnswered(ask_id=question.ask_id, error="the client could not be asked", code=-32603)
    finally:
        pending.questions.discard(scope)
    if answer is None:  # the call ended first: the worker has ended the question already
        return
    with contextlib.suppress(BusError):
        await calls.send(peer, answer)
