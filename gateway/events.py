"""`/events`: Server-Sent Events for the Web UI and `mcpproxy activity watch`-style clients.

Events: `servers.changed` (the full redacted server list, coalesced so a burst
sends one), `server.state_changed`, `tools.changed`, `config.saved`,
`config.reloaded`, `config.error`, `secrets.changed`; `ping` every 30 s. Each
subscriber has a bounded queue: a slow one loses events (and is told how
many with a `dropped` event), it never slows the proxy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import trio
from starlette.requests import Request
from starlette.responses import StreamingResponse

from gateway.registry import Registry
from services.activity import CallRecord

logger = logging.getLogger(__name__)

QUEUE_SIZE: Final = 256
PING_INTERVAL_S: Final = 30.0
COALESCE_S: Final = 0.25
RETRY_MS: Final = 3000


class _Subscriber:
    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[tuple[str, str]](QUEUE_SIZE)
        self.dropped = 0


class EventHub:
    def __init__(self, registry: Registry, server_views: Callable[[], list[dict[str, Any]]]) -> None:
        self.registry = registry
        self.server_views = server_views
        self.subscribers: set[_Subscriber] = set()
        self._dirty = trio.Event()
        self._states: dict[str, str] = {}
        registry.listeners.append(self._on_registry_change)

    def publish(self, event: str, data: Any) -> None:
        if not self.subscribers:
            return  # every tool call publishes: without listeners, that costs nothing
        payload = json.dumps(data)
        for subscriber in list(self.subscribers):
            try:
                subscriber.send.send_nowait((event, payload))
            except trio.WouldBlock:
                subscriber.dropped += 1

    def _on_registry_change(self, name: str) -> None:
        status = self.registry.servers.get(name)
        state = status.state if status else "removed"
        if self._states.get(name) != state:
            previous = self._states.get(name)
            self._states[name] = state
            self.publish(
                "server.state_changed",
                {
                    "name": name,
                    "state": state,
                    "previous": previous,
                    "last_error": status.last_error if status else None,
                },
            )
        self._dirty.set()

    def tools_changed(self, server: str, count: int) -> None:
        self.publish("tools.changed", {"server": server, "tool_count": count})

    async def run_coalescer(self) -> None:
        """At most one `servers.changed` per COALESCE_S, carrying the whole (redacted) list."""
        while True:
            await self._dirty.wait()
            await trio.sleep(COALESCE_S)
            self._dirty = trio.Event()
            if self.subscribers:
                self.publish("servers.changed", {"servers": self.server_views()})

    async def stream(self, request: Request) -> StreamingResponse:
        subscriber = _Subscriber()
        self.subscribers.add(subscriber)

        async def body() -> AsyncIterator[str]:
            try:
                yield f"retry: {RETRY_MS}\n\n"
                yield _frame("servers.changed", json.dumps({"servers": self.server_views()}))
                while True:
                    with trio.move_on_after(PING_INTERVAL_S) as scope:
                        event, payload = await subscriber.receive.receive()
                    if scope.cancelled_caught:
                        yield _frame("ping", "{}")
                        continue
                    if subscriber.dropped:
                        yield _frame("dropped", json.dumps({"count": subscriber.dropped}))
                        subscriber.dropped = 0
                    yield _frame(event, payload)
            finally:
                self.subscribers.discard(subscriber)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def activity_event(record: CallRecord) -> dict[str, Any]:
    """What /events says of a completed call: no arguments or results (those stay in the log)."""
    return {
        "server": record.server, "tool": record.tool, "status": record.status, "surface": record.surface,
        "duration_ms": round(record.duration_ms, 3), "time": record.time, "session_id": record.session_id,
        "request_id": record.request_id,
    }  # fmt: skip


def _frame(event: str, payload: str) -> str:
    return f"event: {event}\ndata: {payload}\n\n"
