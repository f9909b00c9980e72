"""Which requests the fast lane answers itself, and the JSON-RPC it writes (pure; no sockets)."""

from __future__ import annotations

import json
from typing import Any, Final

import mcp.types as types
import pytest
from mcp_types import JSONRPCResponse, methods as spec_methods

from gateway.fastpath_wire import (
    PlainCall,
    cancelled_request_id,
    declares_param_headers,
    parse_modern_call,
    parse_plain_call,
    result_body,
)


def call(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "echo__echo", "arguments": {"message": "hi"}},
    }
    message.update(changes)
    return message


def test_a_plain_tools_call_is_taken() -> None:
    assert parse_plain_call(call()) == PlainCall(7, "echo__echo", {"message": "hi"})
    assert parse_plain_call(call(id="abc")) == PlainCall("abc", "echo__echo", {"message": "hi"})
    assert parse_plain_call(call(params={"name": "t"})) == PlainCall(7, "t", {})
    assert parse_plain_call(call(params={"name": "t", "arguments": None, "_meta": {}})) == PlainCall(
        7, "t", {}
    )


@pytest.mark.parametrize(
    "message",
    [
        [call()],  # a batch
        call(method="tools/list"),
        call(method="initialize"),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        call(id=True),  # bool is not an id
        call(id=None),
        call(id=1.5),
        call(jsonrpc="1.0"),
        call(extra=1),
        call(params=None),
        call(params={"name": 3}),
        call(params={"name": "t", "arguments": [1]}),
        call(params={"name": "t", "_meta": {"progressToken": "p"}}),  # progress needs the SDK's stream
        call(params={"name": "t", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        call(params={"name": "t", "task": {}}),
        "tools/call",
        None,
    ],
)
def test_anything_else_is_left_to_the_sdk(message: Any) -> None:
    assert parse_plain_call(message) is None


def test_a_cancellation_names_its_request() -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
    assert cancelled_request_id(note) == 7
    assert cancelled_request_id({**note, "params": {"requestId": "x"}}) == "x"
    assert cancelled_request_id({**note, "params": {"requestId": True}}) is None
    assert cancelled_request_id(call()) is None


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
def test_the_answer_is_the_json_rpc_response_the_sdk_writes(version: str) -> None:
    result = types.CallToolResult(
        content=[types.TextContent(type="text", text="3")], structured_content={"sum": 3}, is_error=False
    )
    body = json.loads(result_body(7, result, version))
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    expected = JSONRPCResponse(
        jsonrpc="2.0", id=7, result=spec_methods.serialize_server_result("tools/call", version, dumped)
    ).model_dump(by_alias=True, mode="json", exclude_unset=True)
    assert body == expected


def modern(request_id: int = 7, **meta: Any) -> dict[str, Any]:
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        **meta,
    }
    params = {"name": "echo__add", "arguments": {"a": 1}, "_meta": envelope}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


MODERN_HEADERS: Final = {
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": "echo__add",
}


def test_a_plain_2026_call_is_taken() -> None:
    taken = parse_modern_call(modern(), MODERN_HEADERS)
    assert taken is not None and taken.call == PlainCall(7, "echo__add", {"a": 1})
    assert taken.route.protocol_version == "2026-07-28"


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_call_with_trace_context_in_meta_stays_on_the_lane_and_carries_it() -> None:
    traced = {"traceparent": TRACEPARENT, "tracestate": "k=v"}
    plain = parse_plain_call(call(params={"name": "t", "_meta": traced}))
    assert plain == PlainCall(7, "t", {}, TRACEPARENT)
    taken = parse_modern_call(modern(**traced), MODERN_HEADERS)
    assert taken is not None and taken.call == PlainCall(7, "echo__add", {"a": 1}, TRACEPARENT)


@pytest.mark.parametrize(
    ("message", "headers"),
    [
        (modern(**{"io.modelcontextprotocol/logLevel": "info"}), MODERN_HEADERS),  # logs on its stream
        (modern(progressToken=1), MODERN_HEADERS),
        (modern(**{"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}), MODERN_HEADERS),
        (modern(**{"io.modelcontextprotocol/clientCapabilities": {"roots": {}}}), MODERN_HEADERS),
        (modern(), {**MODERN_HEADERS, "mcp-name": "other"}),  # the SDK answers the mismatch
        (modern(), {**MODERN_HEADERS, "mcp-protocol-version": "2025-11-25"}),
        ({**modern(), "params": {**modern()["params"], "requestState": "s"}}, MODERN_HEADERS),
        ({**modern(), "params": {**modern()["params"], "task": {}}}, MODERN_HEADERS),
        ({**modern(), "params": {"name": "echo__add", "arguments": {}}}, MODERN_HEADERS),  # no envelope
    ],
)
def test_anything_else_of_2026_is_left_to_the_sdk(message: Any, headers: dict[str, str]) -> None:
    assert parse_modern_call(message, headers) is None


def test_a_schema_that_mirrors_arguments_into_headers_is_noticed() -> None:
    mirrored = {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}
    assert declares_param_headers(mirrored)
    assert not declares_param_headers({"type": "object", "properties": {"region": {"type": "string"}}})
    assert not declares_param_headers(None)
