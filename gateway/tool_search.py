"""`retrieve_tools`' answer: ranked hits in the caller's view, compact or full, narrowed by filters.

A compact hit is what choosing a tool takes (gateway/tool_views.py `compact_definition`), a
full one is the definition with its input schema. Filters (`servers`, `read_only_only`,
`exclude_destructive`) narrow by server and tier (services/access.py, with `tool_tiers`); when
they hide some of the best matches, the answer says how many and which filter did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from bus.access import Tier
from bus.messages import ToolInfo
from gateway.access import Identity
from gateway.registry import Registry
from gateway.tool_views import compact_definition, tool_definition

if TYPE_CHECKING:
    from services.search import ToolIndex

Detail = Literal["compact", "full"]
FilterName = Literal["servers", "read_only_only", "exclude_destructive"]
FILTER_NAMES: Final[tuple[FilterName, ...]] = ("servers", "read_only_only", "exclude_destructive")


@dataclass(frozen=True)
class Filters:
    """What `retrieve_tools` may leave out; the default leaves out nothing."""

    servers: frozenset[str] | None = None
    read_only_only: bool = False
    exclude_destructive: bool = False

    @property
    def active(self) -> bool:
        return self.servers is not None or self.read_only_only or self.exclude_destructive

    def hiding(self, server: str, tier: Tier) -> FilterName | None:
        """The first filter that leaves this tool out, or None."""
        if self.servers is not None and server not in self.servers:
            return "servers"
        if self.read_only_only and tier != "read":
            return "read_only_only"
        if self.exclude_destructive and tier == "destructive":
            return "exclude_destructive"
        return None


class SearchService:
    """Keeps a ToolIndex in step with the registry: a server's tools are re-indexed when they change.

    The index is built when the first tools arrive, not at startup: importing numpy and loading the
    embeddings takes ~0.5 s of CPU, and until some server runs there is nothing to search.
    """

    def __init__(self, registry: Registry, index: ToolIndex | None = None) -> None:
        self.registry = registry
        self._index = index
        self._indexed: dict[str, list[ToolInfo]] = {}
        registry.listeners.append(self._reindex)

    @property
    def index(self) -> ToolIndex:
        if self._index is None:
            from services.search import StaticEmbedder, ToolIndex

            self._index = ToolIndex(StaticEmbedder.load())
        return self._index

    def indexed(self) -> dict[str, int]:
        """How many tools of each server the index holds (`/metrics`)."""
        return {server: len(tools) for server, tools in self._indexed.items()}

    def _reindex(self, server: str) -> None:
        tools = self.registry.tools_of(server)
        if tools == self._indexed.get(server, []):
            return  # a state change that left the tools as they were
        if tools:
            self.index.replace_server(
                server, [(t.name, t.description, t.input_schema, t.title) for t in tools]
            )
            self._indexed[server] = tools
        else:
            self.index.remove_server(server)
            self._indexed.pop(server, None)

    def search(
        self,
        query: str,
        limit: int,
        identity: Identity,
        detail: Detail = "full",
        filters: Filters = Filters(),
    ) -> dict[str, Any]:
        """The best `limit` tools for `query` among those `identity`'s profile holds, as the answer
        of `retrieve_tools`: `tools`, and `filtered` and `note` when filters hid some of the best."""
        if not self._indexed:
            return {"tools": []}  # nothing indexed yet: no need to build the index to find nothing
        view = self.registry.view(identity)
        narrowed = view.profile is not None or filters.active
        # A profile's tools, or the filtered ones, are a subset: rank them all, keep their own best.
        wanted = sum(len(t) for t in self._indexed.values()) if narrowed else limit
        hits: list[dict[str, Any]] = []
        hidden: dict[FilterName, int] = {}
        ranked = 0
        for hit in self.index.search(query, wanted):
            tool = self.registry.find_tool(hit.server, hit.tool)
            if tool is None or not view.has_tool(hit.server, tool):
                continue
            ranked += 1
            tier = view.tier(hit.server, tool)
            reason = filters.hiding(hit.server, tier.tier)
            if reason is not None:
                if ranked <= limit:
                    hidden[reason] = hidden.get(reason, 0) + 1
                continue
            name = f"{hit.server}:{tool.name}"
            if detail == "compact":
                hits.append({**compact_definition(tool, name), **tier.shown()})
            else:
                entry = tool_definition(tool, name, full=False)
                hits.append({**entry, "server": hit.server, "score": hit.score, **tier.shown()})
            if len(hits) == limit:
                break
        answer: dict[str, Any] = {"tools": hits}
        unknown = sorted(s for s in filters.servers or () if not view.has_server(s) or s not in self._indexed)
        if hidden:
            count = sum(hidden.values())
            by = ", ".join(f"{name} ({hidden[name]})" for name in FILTER_NAMES if name in hidden)
            answer["filtered"] = {"hidden": count, "by": {n: hidden[n] for n in FILTER_NAMES if n in hidden}}
            answer["note"] = (
                f"{count} of the {min(limit, ranked)} best matches were left out by {by}; "
                "search again without that filter to see them."
            )
        if unknown:
            answer["unknown_servers"] = unknown
        return answer
