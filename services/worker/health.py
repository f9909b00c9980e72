"""Whether an upstream is alive: a ping every `health_check_interval`, its outcome reported when it
changes (the worker's heartbeats to the supervisor are the worker's own health, in its actor)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import trio
from mcp.shared.exceptions import MCPError

from services.worker.upstream import Upstream, describe_error

PING_TIMEOUT_S: Final = 5.0


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
