"""Where a call's trace context comes from and where it goes, at no cost while traces are off.

`enabled` is the one check every call path makes; it is set once, at start, when the config has an
`otlp_endpoint` (gateway/tracing.py loads the OpenTelemetry SDK then, and not before). A client's
W3C `traceparent` is taken from its call's `_meta`, else from its HTTP `traceparent` header; the
gateway's own span reaches the worker through `OUTBOUND` (read where the bus message is built).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Final

TRACEPARENT: Final = "traceparent"
TRACE_META_KEYS: Final = frozenset({TRACEPARENT, "tracestate"})
"""W3C trace context keys a client may put in a call's `_meta` without leaving the fast lane."""

enabled = False
"""Traces are on (gateway/tracing.py sets it at start)."""

OUTBOUND: Final[ContextVar[str | None]] = ContextVar("mcpproxy_outbound_traceparent", default=None)
"""The `traceparent` of the gateway's span of the call running in this context, for its `CallTool`."""


def enable() -> None:
    global enabled
    enabled = True


def client_traceparent(meta: Any, headers: Any) -> str | None:
    """The caller's `traceparent`: its `_meta`'s (a dict), else its header's (`headers.get`)."""
    if isinstance(meta, dict) and isinstance(value := meta.get(TRACEPARENT), str):
        return value
    value = headers.get(TRACEPARENT) if headers is not None else None
    return value if isinstance(value, str) else None
