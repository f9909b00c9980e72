"""When an MCP endpoint tells its clients that one of its lists changed (its tools, its prompts, its
resources): `notifications/*/list_changed` to 2025-era sessions, a change event on 2026-era listen
streams.

The registry's listeners mark a change; the list is compared `NOTIFY_DEBOUNCE_S` later, once a burst
of changes (a server starting, a config applied) has settled, with the list last announced. That
comparison alone loses a change a client saw in between: a client that lists while a change waits
holds what it was shown then, which may be neither the list last announced nor the settled one. A
prompt held and released again within the window settles where it began; a server whose prompts
arrive just before a client lists them settles after the client saw them. So a list served while a
change waits is announced at the next settle whatever the comparison says: at worst one re-fetch
that finds nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from gateway.registry import Registry

NOTIFY_DEBOUNCE_S: Final = 0.05


class ListChanges:
    """The change announcements of one list of one endpoint."""

    def __init__(self, registry: Registry | None, signature: Callable[[], object]) -> None:
        """`signature`: what the list is now, as the endpoint's fullest view sees it, comparable with `==`.
        Every change of `registry` (when given) is a change the list may depend on."""
        self._signature = signature
        self._announced = signature()
        self._changed = trio.Event()
        self._served_while_changed = False
        if registry is not None:
            registry.listeners.append(self.changed)

    def changed(self, server: str = "") -> None:
        """A registry listener: something the list may depend on changed."""
        self._changed.set()

    def served(self) -> None:
        """The list was just given to a client."""
        if self._changed.is_set():
            self._served_while_changed = True

    async def next_change(self) -> None:
        """Return once the list, settled, may differ from what a client holds."""
        while True:
            await self._changed.wait()
            await trio.sleep(NOTIFY_DEBOUNCE_S)
            self._changed = trio.Event()
            now = self._signature()
            stale = self._served_while_changed or now != self._announced
            self._announced, self._served_while_changed = now, False
            if stale:
                return
