"""What an MCP endpoint's catalog tells its clients unasked: upstream log messages, resource updates and
prompt and resource list changes, to 2025-era sessions directly and 2026-era listen streams
(`gateway/listen.py`). A mixin of CatalogFront (gateway/catalog.py), which owns the sessions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import trio

from bus.messages import UpstreamNotified
from gateway.list_changes import ListChanges
from gateway.listen import ListenStreams

logger = logging.getLogger(__name__)

SEND_TIMEOUT_S: Final = 1.0
"""A session that cannot take a notification within this long is skipped (and forgotten if closed)."""
Entries = list[tuple[tuple[str, str], dict[str, Any]]]


class CatalogNotices:
    """Relays upstream notices and announces list changes; CatalogFront gives it its state."""

    sessions: dict[str, Any]
    subscriptions: dict[tuple[str, str], dict[str, tuple[Any, str]]]
    listen: ListenStreams
    _notices_send: trio.MemorySendChannel[UpstreamNotified]
    _notices: trio.MemoryReceiveChannel[UpstreamNotified]
    prompt_changes: ListChanges
    resource_changes: ListChanges

    def _forget(self, session_id: str) -> None:
        raise NotImplementedError

    def relay_nowait(self, notice: UpstreamNotified) -> None:
        """An upstream's log message or resource update, for this endpoint's sessions (never blocks)."""
        try:
            self._notices_send.send_nowait(notice)
        except trio.WouldBlock:
            logger.warning("dropped a %s from %s: clients are not keeping up", notice.method, notice.server)

    async def run(self) -> None:
        """Relay upstream notices and announce list changes, until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                for changes, publish, session_method in (
                    (self.prompt_changes, self.listen.prompts_changed, "send_prompt_list_changed"),
                    (self.resource_changes, self.listen.resources_changed, "send_resource_list_changed"),
                ):
                    nursery.start_soon(self._announce, changes, publish, session_method)
                async for notice in self._notices:
                    await self._relay(notice)
        finally:
            self.listen.close()

    async def _send(self, session_id: str, session: Any, method: str, *args: Any, **kwargs: Any) -> None:
        try:
            with trio.move_on_after(SEND_TIMEOUT_S):
                await getattr(session, method)(*args, **kwargs)
        except Exception:  # a closed session: forget it
            self._forget(session_id)

    async def _relay(self, notice: UpstreamNotified) -> None:
        params = json.loads(notice.params)
        if notice.method == "notifications/message":
            source = params.get("logger")
            tag = f"{notice.server}:{source}" if source else notice.server
            for session_id, session in list(self.sessions.items()):
                await self._send(
                    session_id,
                    session,
                    "send_log_message",
                    level=params.get("level", "info"),
                    data=params.get("data"),
                    logger=tag,
                )
        elif notice.method == "notifications/resources/updated":
            subscribers = self.subscriptions.get((notice.server, params.get("uri", "")), {})
            for session_id, (session, shown) in list(subscribers.items()):
                if session is not None:
                    await self._send(session_id, session, "send_resource_updated", shown)
            for shown in {shown for session, shown in subscribers.values() if session is None}:
                await self.listen.resource_updated(shown)

    async def _announce(
        self, changes: ListChanges, publish: Callable[[], Awaitable[None]], session_method: str
    ) -> None:
        """Each settled change of one list: to the listen streams (`publish`), then to each 2025-era
        session (its `ServerSession` method `session_method`)."""
        while True:
            await changes.next_change()
            await publish()
            for session_id, session in list(self.sessions.items()):
                await self._send(session_id, session, session_method)


def entries_text(entries: Entries) -> str:
    """A list's entries as one comparable text (what `ListChanges` compares)."""
    return json.dumps([entry for _, entry in entries], sort_keys=True)
