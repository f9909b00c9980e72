"""`subscriptions/listen` for 2026-07-28 clients on one MCP endpoint.

At that protocol era a server sends no standing notifications: a client opens a `subscriptions/listen`
request whose response is a stream of the change events it asked for (tools, prompts or resources
list changed; a resource updated). The SDK's `ListenHandler` serves the stream from an in-process
`SubscriptionBus`; this module publishes the proxy's changes on it and, for the resource URIs a
stream asks for, holds an upstream `resources/subscribe` (shared with 2025-era subscribers) for as
long as the stream is open. The stream carries no log messages: the era has no standing channel for
an upstream's `notifications/message` (see README, "Prompts, resources and the rest of MCP").
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Final

import mcp.types as types
import trio
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

RELEASE_TIMEOUT_S: Final = 5.0
"""How long a closed stream's upstream unsubscribes may take (they run shielded, as cleanup)."""

Hold = Callable[[Any, str, str], Awaitable[bool]]
"""(request context, subscriber key, URI as the client wrote it) -> whether a server serves it."""
Release = Callable[[Any, str, str], Awaitable[None]]


class ListenStreams:
    """The listen streams of one endpoint and the bus that feeds them."""

    def __init__(self, hold: Hold, release: Release) -> None:
        self.bus = InMemorySubscriptionBus()
        self._handler = ListenHandler(self.bus)
        self._hold = hold
        self._release = release
        self._keys = itertools.count(1)

    async def serve(
        self, ctx: Any, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """The `subscriptions/listen` handler: one call is one stream, until the client goes away."""
        key = f"listen-{next(self._keys)}"
        held: list[str] = []
        try:
            for uri in dict.fromkeys(params.notifications.resource_subscriptions or ()):
                # A URI no server serves is still honored (it never fires), as the spec allows.
                if await self._hold(ctx, key, uri):
                    held.append(uri)
            return await self._handler(ctx, params)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT_S):
                for uri in held:
                    await self._release(ctx, key, uri)

    async def publish(self, event: ServerEvent) -> None:
        await self.bus.publish(event)

    async def tools_changed(self) -> None:
        await self.publish(ToolsListChanged())

    async def prompts_changed(self) -> None:
        await self.publish(PromptsListChanged())

    async def resources_changed(self) -> None:
        await self.publish(ResourcesListChanged())

    async def resource_updated(self, uri: str) -> None:
        await self.publish(ResourceUpdated(uri=uri))

    def close(self) -> None:
        """End every open stream gracefully (each sends its final result): the endpoint is stopping."""
        self._handler.close()
