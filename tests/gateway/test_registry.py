"""The gateway's registry answers `find_tool` from an index that every change invalidates."""

from __future__ import annotations

import msgspec

from bus.messages import Catalog, ServerStatus, ToolInfo
from gateway.registry import Registry


def status(state: str = "running", generation: int = 1) -> ServerStatus:
    return ServerStatus(
        name="s", protocol="stdio", enabled=True, quarantined=False, state=state, generation=generation
    )


def test_find_tool_follows_tools_states_and_approvals() -> None:
    registry = Registry()
    registry.replace_all([status()], {"s": [ToolInfo(name="a"), ToolInfo(name="b", approval="pending")]})
    assert registry.find_tool("s", "a") == ToolInfo(name="a")
    assert registry.find_tool("s", "b") is None  # held back until approved
    assert registry.find_tool("s", "c") is None and registry.find_tool("other", "a") is None

    registry.set_tools("s", 1, [ToolInfo(name="b"), ToolInfo(name="c", description="new")])
    assert registry.find_tool("s", "a") is None
    assert registry.find_tool("s", "b") == ToolInfo(name="b")
    assert registry.find_tool("s", "c") == ToolInfo(name="c", description="new")

    registry.update(status("exited"))
    assert registry.find_tool("s", "b") is None  # a server that does not run has no callable tools
    registry.update(status("running", 2))
    registry.set_tools("s", 2, [ToolInfo(name="b")])
    assert registry.find_tool("s", "b") == ToolInfo(name="b")

    registry.remove("s")
    assert registry.find_tool("s", "b") is None
    registry.replace_all([status()], {"s": [ToolInfo(name="z")]})
    assert registry.find_tool("s", "z") == ToolInfo(name="z") and registry.find_tool("s", "b") is None


def test_a_catalog_is_seen_only_while_its_server_runs_enabled_and_trusted() -> None:
    registry = Registry()
    catalog = Catalog(prompts=[{"name": "p"}])
    registry.replace_all([status()], {}, {"s": catalog})
    assert registry.catalog_of("s") == catalog
    registry.update(msgspec.structs.replace(status(), quarantined=True))
    assert registry.catalog_of("s") == Catalog()
    registry.update(status())
    registry.set_catalog("s", 1, catalog)
    registry.update(status("exited"))
    assert registry.catalog_of("s") == Catalog()
    registry.update(status("running", 2))
    assert registry.catalog_of("s") == Catalog()  # a new generation reports its own
