"""The catalog of an MCP endpoint, from a registry fed as the supervisor feeds it (no worker needed)."""

from __future__ import annotations

from typing import Any, Final

import mcp.types as types
import msgspec
import pytest
from mcp.shared.exceptions import MCPError

from bus.messages import Catalog, ServerStatus
from gateway.catalog import PRUNE_EVERY, CatalogFront
from gateway.registry import Registry
from gateway.upstreams import Upstreams

RESOURCES_CAP: Final[dict[str, Any]] = {"resources": {}}


def status(name: str, **fields: object) -> ServerStatus:
    base = ServerStatus(name=name, protocol="stdio", enabled=True, quarantined=False, state="running")
    return msgspec.structs.replace(base, **fields)


def front(catalogs: dict[str, Catalog], **statuses: dict[str, object]) -> CatalogFront:
    registry = Registry()
    registry.replace_all([status(name, **statuses.get(name, {})) for name in catalogs], {}, catalogs)
    return CatalogFront(registry, Upstreams(registry, "ipc:///nowhere/c", "ipc:///nowhere/w"), "mcp_all")


async def test_prompts_of_many_servers_page_through_without_loss_or_repeat() -> None:
    catalogs = {
        server: Catalog(prompts=[{"name": f"p{i:03}"} for i in range(60)]) for server in ("a", "b", "c")
    }
    catalog = front(catalogs)
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        result = await catalog.list_prompts(None, params)
        names += [p.name for p in result.prompts]
        pages += 1
        cursor = result.next_cursor
        if cursor is None:
            break
    assert pages == 2
    assert names == sorted(f"{s}__p{i:03}" for s in ("a", "b", "c") for i in range(60))
    with pytest.raises(MCPError):
        await catalog.list_prompts(None, types.PaginatedRequestParams(cursor="bogus"))


async def test_a_quarantined_or_disabled_server_lists_nothing() -> None:
    catalogs = {
        name: Catalog(prompts=[{"name": "p"}], resources=[{"uri": "file:///x", "name": "x"}])
        for name in ("open", "held", "off")
    }
    catalog = front(catalogs, held={"quarantined": True}, off={"enabled": False})
    assert [p.name for p in (await catalog.list_prompts(None, None)).prompts] == ["open__p"]
    assert [r.uri for r in (await catalog.list_resources(None, None)).resources] == [
        "mcpproxy://open/file:///x"
    ]
    assert catalog.owners("file:///x") == ["open"]


def test_an_unprefixed_uri_goes_to_who_lists_it_then_to_matching_templates_then_to_all() -> None:
    catalogs = {
        "lists": Catalog(resources=[{"uri": "file:///a", "name": "a"}], capabilities=RESOURCES_CAP),
        "templates": Catalog(
            templates=[{"uriTemplate": "file:///{+path}", "name": "t"}], capabilities=RESOURCES_CAP
        ),
        "other": Catalog(capabilities=RESOURCES_CAP),
        "tools_only": Catalog(),
    }
    catalog = front(catalogs)
    assert catalog.owners("file:///a") == ["lists"]
    assert catalog.owners("file:///b/c") == ["templates"]
    assert catalog.owners("ui://x") == ["lists", "other", "templates"]


def test_sessions_the_endpoint_has_dropped_are_forgotten_under_churn() -> None:
    catalog = front({})
    live: set[str] = set()
    catalog.alive = live.__contains__
    for i in range(PRUNE_EVERY * 3):
        session_id = f"s{i}"
        live.add(session_id)
        catalog.remember(session_id, object())
        if i >= 2:
            live.discard(f"s{i - 2}")  # each session ends two sessions later
    assert len(catalog.sessions) <= PRUNE_EVERY + 2
