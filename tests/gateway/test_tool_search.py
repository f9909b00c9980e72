"""`retrieve_tools`' answer: compact or full hits, filters that say what they hid (gateway/tool_search.py)."""

from __future__ import annotations

import mcp.types as types

from bus.messages import ServerStatus, ToolInfo
from gateway.access import NOBODY
from gateway.argument_errors import SCHEMA_META_KEY, with_schema
from gateway.calling import error_result
from gateway.registry import Registry
from gateway.tool_search import Filters, SearchService
from services.search import ToolIndex

ADD = ToolInfo(
    name="add",
    description="Add two numbers. Returns their sum.",
    input_schema={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                  "required": ["a", "b"]},
    annotations={"readOnlyHint": True},
)  # fmt: skip
ERASE = ToolInfo(
    name="erase_numbers", description="Erase the numbers.", annotations={"destructiveHint": True}
)
NOTE = ToolInfo(
    name="note_numbers", description="Write numbers down.", annotations={"destructiveHint": False}
)


def service() -> SearchService:
    registry = Registry()
    search = SearchService(registry, ToolIndex())
    statuses = [
        ServerStatus(
            name=name, protocol="stdio", enabled=True, quarantined=False, state="running", generation=1
        )
        for name in ("calc", "pad")
    ]
    registry.replace_all(statuses, {"calc": [ADD, ERASE], "pad": [NOTE]})
    return search


def test_a_compact_hit_has_a_signature_and_the_first_sentence_but_no_schema() -> None:
    hit = service().search("add two numbers", 1, NOBODY, "compact")["tools"][0]
    assert hit == {
        "name": "calc:add",
        "description": "Add two numbers.",
        "signature": "a: number, b: number",
        "tier": "read",
        "tier_source": "annotations",
        "call_with": "call_tool_read",
    }
    full = service().search("add two numbers", 1, NOBODY, "full")["tools"][0]
    assert full["inputSchema"] == ADD.input_schema and full["server"] == "calc" and full["score"] > 0


def test_filters_say_how_many_of_the_best_matches_they_hid_and_which() -> None:
    answer = service().search("numbers", 3, NOBODY, "compact", Filters(read_only_only=True))
    assert [h["name"] for h in answer["tools"]] == ["calc:add"]
    assert answer["filtered"] == {"hidden": 2, "by": {"read_only_only": 2}}
    assert "2 of the 3 best matches" in answer["note"]

    answer = service().search("numbers", 3, NOBODY, "compact", Filters(servers=frozenset({"pad", "nope"})))
    assert [h["name"] for h in answer["tools"]] == ["pad:note_numbers"]
    assert answer["filtered"]["by"] == {"servers": 2} and answer["unknown_servers"] == ["nope"]

    answer = service().search("numbers", 3, NOBODY, "compact", Filters(exclude_destructive=True))
    assert {h["name"] for h in answer["tools"]} == {"calc:add", "pad:note_numbers"}
    assert answer["filtered"]["by"] == {"exclude_destructive": 1}
    assert "filtered" not in service().search("numbers", 3, NOBODY, "compact")


def test_an_error_about_the_arguments_carries_the_schema_and_others_do_not() -> None:
    failed = types.CallToolResult(content=[types.TextContent(type="text", text="no")], is_error=True)
    fixed = with_schema(failed, ADD, {"a": "x"}, "calc:add")
    assert isinstance(fixed, types.CallToolResult)
    assert fixed.meta is not None and fixed.meta[SCHEMA_META_KEY] == ADD.input_schema
    told = fixed.content[-1]
    assert isinstance(told, types.TextContent)
    assert "'b' is a required property" in told.text and "a: number, b: number" in told.text

    said = types.CallToolResult(
        content=[types.TextContent(type="text", text="MCP error -32602: Input validation error")],
        is_error=True,
    )
    assert with_schema(said, ADD, {"a": 1, "b": 2}, "calc:add") != said  # the upstream's word is enough
    assert with_schema(failed, ADD, {"a": 1, "b": 2}, "calc:add") is failed  # failed for another reason
    refused = error_result("calc:add is quarantined", "quarantined", "calc")
    assert with_schema(refused, ADD, {}, "calc:add") is refused
    ok = types.CallToolResult(content=[])
    assert with_schema(ok, ADD, {}, "calc:add") is ok
