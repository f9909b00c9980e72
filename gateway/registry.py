"""The gateway's view of the servers: fed only by the supervisor's subscription stream."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from bus.messages import AccessPolicy, Catalog, ServerStatus, ToolInfo
from gateway.access import Identity, View
from services.access import TierInfo, tier_of

logger = logging.getLogger(__name__)

Listener = Callable[[str], None]
"""Called with a server name whenever its state, tools or catalog change."""

EMPTY: Final = Catalog()
SERVED_WHILE_STARTING: Final = frozenset({"idle", "starting", "stopping"})


def serves(status: ServerStatus) -> bool:
    """Its tools, prompts and resources are listed: it runs, its generation is being replaced (a
    recycle), or it is an on-demand server, listed from the supervisor's cache while it is idle and
    while a call starts it (gateway/on_demand.py)."""
    return (
        status.state == "running"
        or status.draining
        or (status.on_demand and status.state in SERVED_WHILE_STARTING)
    )


class Registry:
    """Server statuses, and the tools and catalogs (prompts, resources, templates) of running servers."""

    def __init__(self) -> None:
        self.servers: dict[str, ServerStatus] = {}
        self._tools: dict[str, list[ToolInfo]] = {}
        self._tool_generation: dict[str, int] = {}
        self._callable: dict[str, dict[str, ToolInfo]] = {}
        """Per server, its approved tools by name while it runs: built on first use after a change."""
        self._catalogs: dict[str, Catalog] = {}
        self._catalog_generation: dict[str, int] = {}
        self.listeners: list[Listener] = []
        self.synced = False
        self.access = AccessPolicy()
        """Tier overrides, profiles and client grants, from the supervisor (gateway/access.py)."""

    def replace_all(
        self,
        servers: list[ServerStatus],
        tools: dict[str, list[ToolInfo]],
        catalogs: dict[str, Catalog] | None = None,
    ) -> None:
        names = set(self.servers) | {s.name for s in servers}
        self.servers = {s.name: s for s in servers}
        self._tools = dict(tools)
        self._catalogs = dict(catalogs or {})
        self._tool_generation = {s.name: s.generation for s in servers if s.name in tools}
        self._catalog_generation = {s.name: s.generation for s in servers if s.name in self._catalogs}
        self._callable.clear()
        self.synced = True
        for name in names:
            self._notify(name)

    def update(self, status: ServerStatus) -> None:
        old = self.servers.get(status.name)
        self.servers[status.name] = status
        self._callable.pop(status.name, None)
        if not serves(status):
            self._tools.pop(status.name, None)
            self._catalogs.pop(status.name, None)
        if old is None or old != status:
            self._notify(status.name)

    def set_tools(self, server: str, generation: int, tools: list[ToolInfo]) -> None:
        self._tools[server] = tools
        self._tool_generation[server] = generation
        self._callable.pop(server, None)
        self._notify(server)

    def set_catalog(self, server: str, generation: int, catalog: Catalog) -> None:
        self._catalogs[server] = catalog
        self._catalog_generation[server] = generation
        self._notify(server)

    def catalog_current(self, server: str) -> bool:
        """The prompts and resources held are those of the server's current generation."""
        status = self.servers.get(server)
        return status is not None and self._catalog_generation.get(server) == status.generation

    def visible(self, server: str) -> bool:
        """Agents may see and use this server's prompts and resources: it runs, enabled, unquarantined."""
        status = self.servers.get(server)
        return status is not None and serves(status) and status.enabled and not status.quarantined

    def catalog_of(self, server: str) -> Catalog:
        """The prompts, resources and templates agents may see (empty unless `visible`)."""
        return self._catalogs.get(server, EMPTY) if self.visible(server) else EMPTY

    def remove(self, name: str) -> None:
        self.servers.pop(name, None)
        self._tools.pop(name, None)
        self._catalogs.pop(name, None)
        self._callable.pop(name, None)
        self._notify(name)

    def tools_of(self, server: str) -> list[ToolInfo]:
        """Approved tools of a server that is running now: the only ones agents may see or call."""
        return [t for t in self.all_tools_of(server) if t.approval == "approved"]

    def all_tools_of(self, server: str) -> list[ToolInfo]:
        """Every tool of a running server, whatever its approval state (for humans reviewing)."""
        status = self.servers.get(server)
        if status is None or not serves(status):
            return []
        return self._tools.get(server, [])

    def tools_current(self, server: str) -> bool:
        """The tools held are those of the server's current generation (not a cache of an earlier one)."""
        status = self.servers.get(server)
        return status is not None and self._tool_generation.get(server) == status.generation

    def find_tool(self, server: str, tool: str) -> ToolInfo | None:
        """An approved tool of a running server, by name: on every call's path, so a lookup, not a scan."""
        index = self._callable.get(server)
        if index is None:
            index = self._callable[server] = {t.name: t for t in self.tools_of(server)}
        return index.get(tool)

    def held_tool(self, server: str, tool: str) -> ToolInfo | None:
        """A tool that exists but is held back (pending or changed)."""
        return next(
            (t for t in self.all_tools_of(server) if t.name == tool and t.approval != "approved"), None
        )

    def tier(self, server: str, tool: ToolInfo) -> TierInfo:
        """The tool's tier and where it came from (annotations, MCP defaults, `tool_tiers`)."""
        return tier_of(server, tool.name, tool.annotations, self.access.tool_tiers)

    def view(self, identity: Identity) -> View:
        return View(self.access, identity)

    def find_visible(self, identity: Identity, server: str, tool: str) -> ToolInfo | None:
        """`find_tool`, but None as well for a tool outside the caller's profile."""
        found = self.find_tool(server, tool)
        return found if found is not None and self.view(identity).has_tool(server, found) else None

    def _notify(self, name: str) -> None:
        for listener in list(self.listeners):
            listener(name)
