"""Liveness, both ways. Whether an upstream is alive: a ping every `health_check_interval`, its outcome
reported when it changes. Whether the worker is: a heartbeat to the supervisor every second. Whether
the supervisor is: the lifeline pipe it holds open, which closes when it dies."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import trio
from mcp.shared.exceptions import MCPError

from bus.messages import Heartbeat
from services.worker.upstream import Upstream, describe_error

logger = logging.getLogger(__name__)

PING_TIMEOUT_S: Final = 5.0
HEARTBEAT_INTERVAL_S: Final = 1.0


async def watch_health(
    upstream: Upstream,
    interval_s: float,
    scrub: Callable[[str], str],
    report: Callable[[bool, str | None], Awaitable[None]],
) -> None:
    """An upstream that is alive but silent (hung, stopped) is reported unhealthy, and back again; a
    remote one whose ping fails is gone (`upstream.fail`: the worker ends, the supervisor reconnects)."""
    healthy = True
    while True:
        await trio.sleep(interval_s)
        error: str | None = None
        with trio.move_on_after(min(PING_TIMEOUT_S, interval_s)) as scope:
            try:
                await upstream.session.send_ping()
            except MCPError:
                pass  # an answer, even an error (2026-era upstreams have no ping), means alive
            except Exception as exc:  # task boundary: any failure means unhealthy
                error = f"ping failed: {scrub(describe_error(exc))}"
                if upstream.stdio is None:
                    upstream.fail(f"remote went away: {scrub(describe_error(exc))}")
                    return
        if scope.cancelled_caught:
            error = f"upstream did not answer a ping within {PING_TIMEOUT_S:g}s"
        if (error is None) != healthy:
            healthy = error is None
            await report(healthy, error)


async def send_heartbeats(
    send: Callable[[Heartbeat], Awaitable[None]], beat: Callable[[], Heartbeat]
) -> None:
    """A heartbeat every HEARTBEAT_INTERVAL_S: the supervisor takes three missed ones for a frozen worker."""
    while True:
        await send(beat())
        await trio.sleep(HEARTBEAT_INTERVAL_S)


async def watch_lifeline(fd: int, server: str, stop: trio.Event) -> None:
    """Set `stop` when the supervisor's end of the lifeline closes (it died, however it died)."""
    stream = trio.lowlevel.FdStream(fd)
    while await stream.receive_some(64):
        pass
    logger.warning("server %s: supervisor is gone; stopping", server)
    stop.set()


async def cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
