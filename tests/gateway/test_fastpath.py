"""Which requests the fast lane answers itself, and the JSON-RPC it writes (pure; no sockets)."""

from __future__ import annotations

import json
from typing import Any

import mcp.types as types
import pytest
from mcp_types import JSONRPCResponse
from mcp_types import methods as spec_methods

from gateway.fastpath import PlainCall, cancelled_request_id, parse_plain_call, result_body


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
