"""Lazy start, idle stop and recycling of one server (`start`, `idle_timeout`, `max_lifetime`).

An on-demand server waits in state `idle` with no worker. Its tools and catalog are published from
the tool cache (services/tool_cache.py), pinned against today's approvals, so agents list and search
them; the gateway's first call sends `start` (gateway/on_demand.py) and waits for it to run. A
server with no cache yet starts once on its own to learn what it offers, and goes idle as soon as
it has nothing in flight.

Stopping a generation politely goes through a drain: the runner publishes `draining` (the gateway
sends new calls to the next generation, calls in flight go on), then waits for a heartbeat that
shows nothing in flight at least `DRAIN_SETTLE_S` later. Idle stop drains after `idle_timeout` with
no calls and ends in `idle`; a call that reaches the worker (or a `start`) meanwhile cancels it.
`max_lifetime` drains a generation that old and starts the next. `Usage` decides, from heartbeats
and the clock alone; `StartKeeper` carries its decisions out for one runner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import trio

from bus.messages import Catalog, Heartbeat
from services.pinning import annotate
from services.start_config import StartPolicy
from supervisor.inbox import Command
from supervisor.states import WorkerState

if TYPE_CHECKING:
    from supervisor.runner import ServerRunner

logger = logging.getLogger(__name__)

DRAIN_SETTLE_S: Final = 1.0
"""A call the gateway sent just before it learned of a drain is on the wire for well under this
(one ipc:// hop); a heartbeat at least this long after the drain began that shows nothing in
flight, and nothing begun since, means nothing else is coming."""
DRAIN_MARGIN_S: Final = 5.0
"""A recycle waits for calls in flight up to their call_tool_timeout and this much more."""

Verdict = Literal["drain", "undrain", "idle", "recycle"]


@dataclass
class Usage:
    """When one running generation is stopped: pure, fed heartbeats and trio's clock."""

    started_at: float
    idle_after_s: float | None
    """None: never idle (an `always` server, or `idle_timeout: 0`); 0: as soon as nothing is in flight."""
    max_lifetime_s: float | None
    drain_limit_s: float
    """How long a recycle waits for calls in flight."""
    reason: Literal["idle", "recycle"] | None = None
    draining_since: float | None = None
    served_at_drain: int = 0

    def on_beat(self, busy: int, idle_s: float, served: int, now: float) -> Verdict | None:
        if self.draining_since is None:
            if busy == 0 and self.idle_after_s is not None and idle_s >= self.idle_after_s:
                return self._drain("idle", served, now)
            if self.max_lifetime_s is not None and now - self.started_at >= self.max_lifetime_s:
                return self._drain("recycle", served, now)
            return None
        settled = now - self.draining_since >= DRAIN_SETTLE_S
        if self.reason == "idle":
            if busy > 0 or served != self.served_at_drain:
                return self.undrain()
            return "idle" if settled else None
        if (settled and busy == 0) or now - self.draining_since >= self.drain_limit_s:
            return "recycle"
        return None

    def undrain(self) -> Verdict:
        """A call needs the server after all: back to serving (only an idle drain is undone)."""
        self.reason, self.draining_since = None, None
        return "undrain"

    def _drain(self, reason: Literal["idle", "recycle"], served: int, now: float) -> Verdict:
        self.reason, self.draining_since, self.served_at_drain = reason, now, served
        return "drain"


class StartKeeper:
    """One runner's start policy in action: parks it in `idle`, starts it on demand, drains it."""

    def __init__(self, runner: ServerRunner) -> None:
        self.runner = runner
        self.demanded = False
        """A call (or a person: restart, login) wants this on-demand server running."""
        self.learning = False
        """This start only learns what the server offers: it goes idle once nothing is in flight."""
        self.draining = False
        self.usage: Usage | None = None
        self.usage_generation = 0

    def policy(self) -> StartPolicy:
        return self.runner.ctx.start_policy(self.runner.config)

    def parked(self) -> bool:
        """Wanted, but not running until a call needs it."""
        return self.policy().on_demand and not self.demanded

    def begin(self) -> None:
        """A new generation runs: whatever drained the last one is over."""
        self.draining = False
        self.usage = None

    async def demand(self) -> str:
        """A `start` command: run the server; a drain for idleness is undone (the command's outcome)."""
        self.demanded = True
        if self.draining and self.usage is not None and self.usage.reason == "idle":
            self.usage.undrain()
            await self._set_draining(False)
        return "continue"

    async def park(self) -> None:
        """Wait in `idle`, listed from the cache, until a call or a person starts the server, or it is
        no longer meant to run on demand. With nothing cached, start it once to learn its tools."""
        runner = self.runner
        cached = runner.ctx.tool_cache.load(runner.name) if runner.ctx.tool_cache else None
        if cached is None:
            logger.info("server %s: nothing cached yet; starting it once to learn its tools", runner.name)
            self.demanded = self.learning = True
            return
        approved = runner.ctx.pins.approved(runner.name) or {}
        runner.tools = annotate(cached.tools, approved)
        runner.catalog = runner._pinned(cached.catalog, trusted=False)
        runner.server_version = runner.server_version or cached.server_version
        runner.summary = runner.summary or cached.summary
        if runner.life.state is WorkerState.IDLE:
            await runner.ctx.publish(runner)  # now with its cached tools
        else:
            await runner._set(WorkerState.IDLE)
        await runner.ctx.publish_tools(runner)
        while runner.wanted and not runner.removed and self.parked():
            event = await runner.inbox.receive()
            if isinstance(event, Command):
                await runner._apply_command(event)
                await runner.ctx.publish(runner)  # e.g. a reload changed its config view
        if not (runner.wanted and self.parked()):
            runner.tools, runner.catalog = [], Catalog()
        if not runner.wanted and runner.life.state is WorkerState.IDLE:
            await runner._set(WorkerState.STOPPED)

    async def on_beat(self, beat: Heartbeat) -> Literal["idle", "recycle"] | None:
        """A running generation's heartbeat: drain, stop or go on."""
        runner = self.runner
        now = trio.current_time()
        if self.usage is None or self.usage_generation != runner.generation:
            policy = self.policy()
            self.usage = Usage(
                started_at=now,
                idle_after_s=0.0 if self.learning else policy.idle_timeout_s,
                max_lifetime_s=policy.max_lifetime_s,
                drain_limit_s=runner.config.call_tool_timeout_s() + DRAIN_MARGIN_S,
            )
            self.usage_generation = runner.generation
        match self.usage.on_beat(beat.busy, beat.idle_s, beat.served, now):
            case "drain":
                logger.info("server %s: draining (%s)", runner.name, self.usage.reason)
                await self._set_draining(True)
            case "undrain":
                logger.info("server %s: in use again", runner.name)
                await self._set_draining(False)
            case "idle":
                self.demanded = self.learning = False
                return "idle"
            case "recycle":
                logger.info("server %s: max_lifetime reached; recycling it", runner.name)
                return "recycle"
            case None:
                pass
        return None

    def after_stop(self, outcome: str) -> WorkerState:
        """The state a stopped generation ends in: `idle` after an idle stop, else `stopped`. A
        recycle stays `draining` until the next generation runs: calls meanwhile wait for it."""
        if outcome != "recycle":
            self.draining = False
        return WorkerState.IDLE if outcome == "idle" else WorkerState.STOPPED

    async def _set_draining(self, draining: bool) -> None:
        self.draining = draining
        await self.runner.ctx.publish(self.runner)
