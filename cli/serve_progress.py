"""`mcpproxy serve` tells, once per server, when it is ready or why it failed.

It follows the gateway's own `/events` stream (the full server list on every
change) until each server that should start has run or failed once, or the
deadline passes. Reporting is best effort: it never stops the proxy.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Final

import httpx2
import trio

from services.config import ProxyConfig

logger = logging.getLogger(__name__)

REPORT_DEADLINE_S: Final = 120.0
CONNECT_TIMEOUT_S: Final = 10.0


def count_of(number: int, noun: str) -> str:
    """`1 tool`, `2 tools`, `0 tools`."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def describe(server: dict[str, Any]) -> str | None:
    """One line about a server that has settled (running or failed); None while it is on its way."""
    name, state = server["name"], server.get("state")
    if state == "running":
        return f"  ✓ {name}: running ({count_of(server.get('tool_count', 0), 'tool')})"
    if state == "needs_login":
        return f"  ! {name}: waiting for you to sign in: mcpproxy auth login {name}"
    if state in ("backoff", "fatal") or (state == "exited" and server.get("last_error")):
        retry = "retrying" if state == "backoff" else state
        return f"  ✗ {name}: {retry}: {server.get('last_error') or 'failed'}  (see `mcpproxy doctor`)"
    return None


def _waiting_for(config: ProxyConfig) -> tuple[set[str], list[str]]:
    expected = {s.name for s in config.mcpServers if s.enabled and not s.quarantined}
    notes = [
        f"  · {s.name}: quarantined (review it, then `mcpproxy upstream approve {s.name}`)"
        for s in config.mcpServers
        if s.quarantined
    ] + [f"  · {s.name}: disabled" for s in config.mcpServers if not s.enabled and not s.quarantined]
    return expected, notes


async def report_servers(base_url: str, api_key: str, config: ProxyConfig) -> None:
    pending, notes = _waiting_for(config)
    for note in notes:
        print(note, flush=True)
    if not pending:
        return
    headers = {"X-API-Key": api_key} if api_key else {}
    timeout = httpx2.Timeout(CONNECT_TIMEOUT_S, read=None)
    try:
        with trio.move_on_after(REPORT_DEADLINE_S) as deadline:
            async with (
                httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=timeout) as client,
                client.stream("GET", "/events") as stream,
            ):
                if stream.status_code != 200:
                    return
                event = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "servers.changed":
                        for server in json.loads(line[5:])["servers"]:
                            if server["name"] in pending and (text := describe(server)):
                                pending.discard(server["name"])
                                print(text, flush=True)
                        if not pending:
                            return
    except (httpx2.HTTPError, ValueError, KeyError) as exc:
        logger.debug("server progress report stopped: %s", exc)
        return
    if deadline.cancelled_caught:
        names = ", ".join(sorted(pending))
        print(f"  … still starting after {REPORT_DEADLINE_S:.0f}s: {names}", file=sys.stderr, flush=True)
