"""`/events`: Server-Sent Events for the Web UI and `mcpproxy activity watch`-style clients.

Events: `servers.changed` (the full redacted server list, coalesced so a burst
sends one), `server.state_changed`, `tools.changed`, `activity.tool_call.completed`,
`config.saved`, `config.reloaded`, `config.error`, `secrets.changed`; `ping`
every 30 s. Each subscriber has a bounded queue: a slow one loses events (and is
told how many with a `dropped` event), it never slows the proxy.

The API key sees everything. A client credential sees what its profile may see:
its profile's servers, its own calls, and nothing of the config or the secrets;
when the credential is revoked, rotated or expires, its stream ends with a
`closed` event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import trio
from starlette.requests import Request
from starlette.responses import StreamingResponse

from gateway.access import Identity, identity_of
from gateway.registry import Registry
from services.access import expired
from services.activity import CallRecord

logger = logging.getLogger(__name__)

QUEUE_SIZE: Final = 256
PING_INTERVAL_S: Final = 30.0
COALESCE_S: Final = 0.25
RETRY_MS: Final = 3000


ACCESS_CHANGED: Final = "access.changed"
"""Internal: wakes a client's stream to check its credential; never sent."""
SERVER_EVENTS: Final = frozenset({"server.state_changed", "tools.changed"})
"""Events about one server (its name in `name` or `server`): a client sees those of its profile's."""


class _Subscriber:
    def __init__(self, identity: Identity, token_sha256: str | None) -> None:
        self.send, self.receive = trio.open_memory_channel[tuple[str, str]](QUEUE_SIZE)
        self.dropped = 0
        self.identity = identity
        self.token_sha256 = token_sha256
        """A client credential's hash (None for the API key): checked before each event is sent."""


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
            if subscriber.identity.admin:
                item = (event, payload)
            elif (shown := self._shown(subscriber.identity, event, data)) is not None:
                item = (event, json.dumps(shown))
            else:
                continue
            try:
                subscriber.send.send_nowait(item)
            except trio.WouldBlock:
                subscriber.dropped += 1

    def access_changed(self) -> None:
        """New profiles or grants: each client's stream checks its credential now (and ends if it is
        no longer granted), and everyone gets the server list as their profile now shows it."""
        for subscriber in list(self.subscribers):
            if subscriber.token_sha256 is not None:
                with contextlib.suppress(trio.WouldBlock):
                    subscriber.send.send_nowait((ACCESS_CHANGED, ""))
        self._dirty.set()

    def _shown(self, identity: Identity, event: str, data: Any) -> Any | None:
        """What a client credential may see of an event (None: nothing)."""
        view = self.registry.view(identity)
        if event == "servers.changed":
            return {"servers": [s for s in data["servers"] if view.has_server(s["name"])]}
        if event in SERVER_EVENTS:
            return data if view.has_server(data.get("name") or data.get("server") or "") else None
        if event == "activity.tool_call.completed":
            return data if data.get("client") == identity.client else None
        return None  # the config, the secrets: the API key's business

    def _still_allowed(self, subscriber: _Subscriber) -> bool:
        """The credential a client subscribed with is still granted (not revoked, rotated or expired)."""
        if subscriber.token_sha256 is None:
            return True
        now = time.time()
        return any(
            grant.token_sha256 == subscriber.token_sha256 and not expired(grant, now)
            for grant in self.registry.access.clients
        )

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
        identity = identity_of(request.scope)
        subscriber = _Subscriber(identity, request.scope["state"].get("token_sha256"))
        self.subscribers.add(subscriber)
        first = {"servers": self.server_views()}
        if not identity.admin:
            first = self._shown(identity, "servers.changed", first) or first

        async def body() -> AsyncIterator[str]:
            try:
                yield f"retry: {RETRY_MS}\n\n"
                yield _frame("servers.changed", json.dumps(first))
                while True:
                    with trio.move_on_after(PING_INTERVAL_S) as scope:
                        event, payload = await subscriber.receive.receive()
                    if not self._still_allowed(subscriber):
                        yield _frame(
                            "closed", json.dumps({"reason": "the credential was revoked or expired"})
                        )
                        return
                    if scope.cancelled_caught:
                        yield _frame("ping", "{}")
                        continue
                    if event == ACCESS_CHANGED:
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
        "request_id": record.request_id, "client": record.client, "profile": record.profile,
    }  # fmt: skip


def _frame(event: str, payload: str) -> str:
    return f"event: {event}\ndata: {payload}\n\n"
