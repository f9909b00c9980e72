"""Admission: how many tool calls run at once, per server and across all servers.

A server with `max_concurrent_calls` has a gate; so does the whole proxy when the
global `max_concurrent_calls` is set. A call takes a slot at its server's gate,
then at the global one. When a gate is full the call waits in that gate's FIFO
queue (at most `max_queued_calls` waiting), for at most `queue_timeout` in all;
when the queue is full, or the wait runs out, the call is shed: the caller gets
a retryable tool error (REST: 429 with `Retry-After`) and the activity log a
`rejected` record. A freed slot goes to the first waiter, so order is kept.

The wait comes before the call reaches `gateway/upstreams.py`, whose
`call_tool_timeout` starts only then: queueing never eats into a call's time.
A server without limits costs one dict lookup per call (`gates`).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Final, Literal

import mcp.types as types
import trio

from bus.messages import CallLimits

RETRY_AFTER_S: Final = 1
"""What a shed call is told to wait before trying again (REST `Retry-After`, the error's `_meta`)."""
Shed = Literal["queue_full", "queue_timeout"]


class Gate:
    """Slots for calls in flight and a bounded FIFO queue of calls waiting for one."""

    def __init__(self, scope: str, limit: float, max_queued: int) -> None:
        self.scope = scope
        """A server's name, or "" for the global gate."""
        self.limit = limit
        self.max_queued = max_queued
        self.running = 0
        self.waiting: collections.deque[trio.Event] = collections.deque()

    async def enter(self, deadline: float) -> Shed | None:
        """Take a slot (None), waiting in line until `deadline` at most; else why the call is shed."""
        if self.running < self.limit and not self.waiting:
            self.running += 1
            return None
        if len(self.waiting) >= self.max_queued:
            return "queue_full"
        granted = trio.Event()
        self.waiting.append(granted)
        try:
            with trio.move_on_at(deadline):
                await granted.wait()
        except BaseException:
            if granted.is_set():  # handed a slot just as the caller went away: pass it on
                self.leave()
            else:
                self.waiting.remove(granted)
            raise
        if granted.is_set():
            return None
        self.waiting.remove(granted)
        return "queue_timeout"

    def leave(self) -> None:
        """Give the slot back: to the first waiter (who then holds it), else to the pool."""
        if self.waiting and self.running <= self.limit:
            self.waiting.popleft().set()
        else:
            self.running -= 1

    def resize(self, limit: float, max_queued: int) -> None:
        """New settings: a raised limit lets waiters in at once; a lowered one drains as calls end."""
        self.limit, self.max_queued = limit, max_queued
        while self.waiting and self.running < self.limit:
            self.running += 1
            self.waiting.popleft().set()


@dataclass(frozen=True)
class Ticket:
    """The gates a server's calls pass, and how long they may wait at them."""

    gates: tuple[Gate, ...]
    queue_timeout_s: float


class Admission:
    """Every gate, built from the supervisor's `CallLimits` (and rebuilt when they change)."""

    def __init__(self) -> None:
        self.limits = CallLimits()
        self._all: Gate | None = None
        self._servers: dict[str, Gate] = {}
        self._tickets: dict[str, Ticket] = {}
        self._default: Ticket | None = None

    def adopt(self, limits: CallLimits) -> None:
        self.limits = limits
        if limits.max_concurrent_calls is None:
            self._open(self._all)
            self._all = None
        elif self._all is None:
            self._all = Gate("", limits.max_concurrent_calls, limits.max_queued_calls)
        else:
            self._all.resize(limits.max_concurrent_calls, limits.max_queued_calls)
        servers: dict[str, Gate] = {}
        for name, own in limits.servers.items():
            if own.max_concurrent_calls is None:
                continue
            queued = limits.max_queued_calls if own.max_queued_calls is None else own.max_queued_calls
            gate = self._servers.pop(name, None)
            if gate is None:
                gate = Gate(name, own.max_concurrent_calls, queued)
            else:
                gate.resize(own.max_concurrent_calls, queued)
            servers[name] = gate
        for gone in self._servers.values():
            self._open(gone)
        self._servers = servers
        tickets: dict[str, Ticket] = {}
        for name, own in limits.servers.items():
            gates = tuple(g for g in (servers.get(name), self._all) if g is not None)
            timeout = limits.queue_timeout_s if own.queue_timeout_s is None else own.queue_timeout_s
            if gates:
                tickets[name] = Ticket(gates, timeout)
        self._tickets = tickets
        self._default = Ticket((self._all,), limits.queue_timeout_s) if self._all is not None else None

    @staticmethod
    def _open(gate: Gate | None) -> None:
        """A gate whose limit was removed: everyone waiting goes in; calls in it leave as they end."""
        if gate is not None:
            gate.resize(math.inf, gate.max_queued)

    def ticket(self, server: str) -> Ticket | None:
        """The gates `server`'s calls pass; None (most often) when nothing limits them."""
        return self._tickets.get(server, self._default)

    async def enter(self, ticket: Ticket) -> tuple[Gate, Shed] | None:
        """Pass every gate of `ticket` (None), or the gate that shed the call and why."""
        deadline = trio.current_time() + ticket.queue_timeout_s
        passed: list[Gate] = []
        try:
            for gate in ticket.gates:
                shed = await gate.enter(deadline)
                if shed is not None:
                    for held in passed:
                        held.leave()
                    return gate, shed
                passed.append(gate)
        except BaseException:
            for held in passed:
                held.leave()
            raise
        return None

    @staticmethod
    def leave(ticket: Ticket) -> None:
        for gate in reversed(ticket.gates):
            gate.leave()

    def gates(self) -> list[Gate]:
        """Every gate, the global one first (for metrics: calls running and waiting)."""
        return [g for g in (self._all, *self._servers.values()) if g is not None]


def shed_result(shown_name: str, server: str, gate: Gate, shed: Shed) -> types.CallToolResult:
    """The retryable tool error a shed call gets: `_meta["mcpproxy/error"]` says `overloaded`,
    `retryable` and `retry_after_s`."""
    where = f"server {server!r}" if gate.scope else "the proxy"
    setting = "max_concurrent_calls" if not gate.scope else f"{server}'s max_concurrent_calls"
    if shed == "queue_full":
        why = (
            f"{where} is at its limit of {gate.limit:g} calls at once ({setting}) and "
            f"{len(gate.waiting)} more are waiting, the most its queue holds"
        )
    else:
        why = f"{where} is at its limit of {gate.limit:g} calls at once ({setting}) and the wait ran out"
    message = f"{shown_name}: not run: {why}. Retry in {RETRY_AFTER_S}s or later."
    meta = {
        "mcpproxy/error": {
            "kind": "overloaded",
            "server": server,
            "retryable": True,
            "retry_after_s": RETRY_AFTER_S,
        }
    }
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True, _meta=meta
    )


def retry_after(result: types.CallToolResult | types.InputRequiredResult) -> str | None:
    """The message of a result that says its call was shed (`shed_result`), else None."""
    if not isinstance(result, types.CallToolResult):
        return None
    meta = result.meta or {}
    error = meta.get("mcpproxy/error")
    if not (isinstance(error, dict) and error.get("kind") == "overloaded"):
        return None
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, types.TextContent) else "overloaded"
