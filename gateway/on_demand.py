"""A call to an on-demand server that is not running starts it and waits (`start: on_demand`).

The gateway lists an idle on-demand server's tools from the supervisor's cache (gateway/registry.py
`serves`), so a call can name one before the server runs. When such a call (or a forwarded request)
finds no running generation, `Starter.start` sends the supervisor `start` and waits, within the
server's `init_timeout` and a margin, until a generation runs and has published its own tools; then
the tool is checked again, since pinning may hold a tool whose definition changed
(supervisor/on_demand.py is the other half). The same wait covers a generation being recycled
(`max_lifetime`) or drained for idleness: new calls go to the next one. The check costs a call to a
running server nothing: it happens only where such a call would have failed as "not running".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from bus.errors import PeerGoneError, ProxyError
from bus.messages import CommandResult, ServerStatus
from gateway import guard
from gateway.registry import Registry

logger = logging.getLogger(__name__)

START_MARGIN_S: Final = 15.0
"""Beyond `init_timeout`: the worker's own start (a fork of the zygote, or a fresh interpreter on a
busy machine) and its hello, which the supervisor allows HELLO_TIMEOUT_S (15 s)."""
STARTING_UP: Final = frozenset({"idle", "starting", "stopping", "running"})
"""Where a server a call waits for may be on its way to running (a recycle also passes `stopped`)."""


class StartRefusedError(ProxyError):
    """The server started on demand, but the tool is not callable in its new generation (pinning holds
    its changed definition, or it is gone)."""

    def __init__(self, refusal: guard.Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def startable(status: ServerStatus) -> bool:
    """A call waits for this server to run instead of failing: it is idle on demand, being started, or
    its generation is being drained or recycled."""
    if not status.enabled or status.quarantined:
        return False
    return status.draining or (status.on_demand and status.state in ("idle", "starting", "stopping"))


def not_running(server: str, status: ServerStatus) -> PeerGoneError:
    return PeerGoneError(
        f"server {server!r} is not running (state: {status.state})"
        + (f"; last error: {status.last_error}" if status.last_error else "")
    )


class Starter:
    """Starts on-demand servers for the calls that need them; one wait per call, any number at once."""

    def __init__(
        self,
        registry: Registry,
        live: Callable[[str], bytes | None],
        start: Callable[[str], Awaitable[CommandResult]],
    ) -> None:
        self.registry = registry
        self._live = live
        self._start = start
        self._changes: dict[str, trio.Event] = {}
        registry.listeners.append(self._changed)

    def _changed(self, server: str) -> None:
        event = self._changes.pop(server, None)
        if event is not None:
            event.set()

    async def start(
        self, server: str, status: ServerStatus, tool: str | None = None, *, prompt: str | None = None
    ) -> bytes:
        """The identity of the server's running worker, once it runs and its tools are its own;
        PeerGoneError when it is not startable, gave up or took too long; StartRefusedError when `tool`
        is not callable in the new generation, or when prompt pinning holds `prompt` in it."""
        if not startable(status):
            raise not_running(server, status)
        budget_s = status.init_timeout_s + START_MARGIN_S
        identity: bytes | None = None
        with trio.move_on_after(budget_s):
            if status.state == "idle":
                logger.info("server %s: starting on demand", server)
            answer = await self._start(server)
            if not answer.ok:
                raise PeerGoneError(f"server {server!r} could not be started: {answer.error}")
            while identity is None:
                identity = self._ready(server)
                if identity is None:
                    await self._changes.setdefault(server, trio.Event()).wait()
            # A prompt is checked against the new generation's prompts, as a tool against its tools.
            while prompt is not None and not self.registry.catalog_current(server):
                await self._changes.setdefault(server, trio.Event()).wait()
        if identity is None or (prompt is not None and not self.registry.catalog_current(server)):
            raise PeerGoneError(
                f"server {server!r} did not start within {budget_s:g}s (its init_timeout "
                f"{status.init_timeout_s:g}s and {START_MARGIN_S:g}s to start its worker); "
                "see `mcpproxy upstream logs` for what it did"
            )
        if tool is not None:
            checked = guard.check(self.registry, server, tool, tool, list)
            if isinstance(checked, guard.Refusal):
                raise StartRefusedError(checked)
        held = self.registry.catalog_of(server).held_prompts.get(prompt) if prompt is not None else None
        if held is not None:
            assert prompt is not None
            raise StartRefusedError(guard.held_prompt(server, prompt, held))
        return identity

    def _ready(self, server: str) -> bytes | None:
        """The running worker's identity once its generation published its tools; raises when the
        server will not run (removed, disabled, failed)."""
        status = self.registry.servers.get(server)
        if status is None:
            raise PeerGoneError(f"server {server!r} was removed while it was starting")
        identity = self._live(server)
        if identity is not None and status.state == "running" and self.registry.tools_current(server):
            return identity
        waiting = status.state in STARTING_UP or (status.state == "stopped" and status.draining)
        if not waiting or not status.enabled or status.quarantined:
            raise PeerGoneError(
                f"server {server!r} did not start on demand (state: {status.state})"
                + (f": {status.last_error}" if status.last_error else "")
            )
        return None
