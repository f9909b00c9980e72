"""What the fast lane reads off the wire and writes back (gateway/fastpath.py): which JSON-RPC
requests are plain calls it may answer, in either era, and the responses the SDK would write."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import mcp.types as types
import pydantic_core
from mcp.shared.inbound import InboundModernRoute, classify_inbound_request
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
    ErrorData,
    methods as spec_methods,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from gateway.asks import offered
from gateway.trace_context import TRACE_META_KEYS, TRACEPARENT

logger = logging.getLogger(__name__)

_REQUEST_KEYS: Final = frozenset({"jsonrpc", "id", "method", "params"})
_CALL_PARAM_KEYS: Final = frozenset({"name", "arguments", "_meta"})
_MODERN_META_KEYS: Final = frozenset(
    {PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY}
)
"""The `_meta` of a plain 2026-era call: its era, client and capabilities (no log level, no progress)."""
PARAM_HEADER_PREFIX: Final = b"mcp-param-"


@dataclass(frozen=True)
class PlainCall:
    """A `tools/call` request this lane answers exactly as the SDK would."""

    request_id: str | int
    name: str
    arguments: dict[str, Any]
    traceparent: str | None = None
    """The client's W3C trace context from the call's `_meta` (gateway/trace_context.py)."""


def parse_plain_call(message: Any) -> PlainCall | None:
    """The call in one decoded JSON-RPC message, or None when the SDK must handle it.

    Plain means: a single request object with only the JSON-RPC keys, a string
    or integer id, a string tool name, object (or absent) arguments, and no
    `_meta` beyond what the call ignores (W3C trace context) — a progress token needs the SDK's
    per-request event stream, and a 2026-era envelope its own entry point.
    """
    shaped = _call_shape(message)
    if shaped is None:
        return None
    call, meta = shaped
    return call if meta is None or (isinstance(meta, dict) and not meta.keys() - TRACE_META_KEYS) else None


def _call_shape(message: Any) -> tuple[PlainCall, Any] | None:
    """A single well-formed `tools/call` request with only the keys a plain call has: the call and its
    params' `_meta` (as sent), else None."""
    if (
        not isinstance(message, dict)
        or message.get("method") != "tools/call"
        or message.keys() - _REQUEST_KEYS
    ):
        return None
    request_id = message.get("id")
    params = message.get("params")
    if (
        message.get("jsonrpc") != "2.0"
        or not isinstance(request_id, str | int)
        or isinstance(request_id, bool)
        or not isinstance(params, dict)
        or params.keys() - _CALL_PARAM_KEYS
    ):
        return None
    name, arguments = params.get("name"), params.get("arguments")
    if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
        return None
    meta = params.get("_meta")
    traceparent = meta.get(TRACEPARENT) if isinstance(meta, dict) else None
    if not isinstance(traceparent, str):
        traceparent = None
    return PlainCall(request_id, name, arguments or {}, traceparent), meta


@dataclass(frozen=True)
class ModernCall:
    """A 2026-07-28 `tools/call` this lane answers as the SDK would."""

    call: PlainCall
    route: InboundModernRoute


def parse_modern_call(message: Any, headers: dict[str, str]) -> ModernCall | None:
    """The 2026-era call in one decoded request, or None when the SDK must handle it (see the module doc).

    `headers`: the request's, lowercase names. The SDK's validation ladder runs here: a request it
    would refuse is left to it, so the refusal is the SDK's own.
    """
    shaped = _call_shape(message)
    if shaped is None:
        return None
    call, meta = shaped
    if not isinstance(meta, dict) or meta.keys() - _MODERN_META_KEYS - TRACE_META_KEYS:
        return None
    route = classify_inbound_request(message, headers=headers)
    if not isinstance(route, InboundModernRoute):
        return None
    try:
        capabilities = types.ClientCapabilities.model_validate(route.client_capabilities or {})
    except ValidationError:
        return None
    if offered(capabilities) or capabilities.extensions:  # (extensions: e.g. tasks, gateway/ext_tasks.py)
        return None
    return ModernCall(call, route)


def declares_param_headers(schema: Any) -> bool:
    """Whether an input schema mirrors an argument into an `Mcp-Param-*` header (`x-mcp-header`)."""
    if isinstance(schema, dict):
        return "x-mcp-header" in schema or any(declares_param_headers(value) for value in schema.values())
    if isinstance(schema, list):
        return any(declares_param_headers(value) for value in schema)
    return False


def invalid_request_id(message: Any) -> str | None:
    """Why a decoded JSON-RPC request's `id` is not one MCP allows (a string or an integer), else None.

    Only a message with a `method` and an `id` is a request; a notification has no `id`, and a response
    (no `method`) may carry a null one.
    """
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return None
    request_id = message["id"]
    if isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return None
    if request_id is None:
        shown = "null"
    elif isinstance(request_id, bool):
        shown = "a boolean"
    elif isinstance(request_id, float):
        shown = f"the number {request_id!r}"
    else:
        shown = "an array" if isinstance(request_id, list) else "an object"
    return f"Invalid Request: a request's id must be a string or an integer, not {shown}"


def invalid_request_body(reason: str) -> bytes:
    error = {"code": INVALID_REQUEST, "message": reason}
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": None, "error": error})


def cancelled_request_id(message: Any) -> str | int | None:
    """The request a `notifications/cancelled` message names, else None."""
    if not isinstance(message, dict) or message.get("method") != "notifications/cancelled":
        return None
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    if isinstance(request_id, str | int) and not isinstance(request_id, bool):
        return request_id
    return None


def result_body(
    request_id: str | int,
    result: types.CallToolResult | types.InputRequiredResult,
    protocol_version: str,
    server_info: dict[str, Any] | None = None,
) -> bytes:
    """The JSON-RPC response the SDK's runner would write for `result` (same dump, same per-version
    sieve; a 2026-era result gets the `serverInfo` stamp in its `_meta`)."""
    dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    try:
        dumped = spec_methods.serialize_server_result("tools/call", protocol_version, dumped)
    except ValidationError:
        logger.exception("tools/call returned an invalid result")
        return error_body(
            request_id, ErrorData(code=INTERNAL_ERROR, message="Handler returned an invalid result")
        )
    if protocol_version in MODERN_PROTOCOL_VERSIONS and server_info is not None:
        meta = dumped.get("_meta")
        if meta is None:
            dumped["_meta"] = {SERVER_INFO_META_KEY: server_info}
        elif isinstance(meta, dict) and meta.get(SERVER_INFO_META_KEY) is None:
            dumped["_meta"] = {**meta, SERVER_INFO_META_KEY: server_info}
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "result": dumped})


def error_body(request_id: str | int, error: ErrorData) -> bytes:
    dumped = error.model_dump(by_alias=True, mode="json", exclude_unset=True)
    return pydantic_core.to_json({"jsonrpc": "2.0", "id": request_id, "error": dumped})
