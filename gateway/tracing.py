"""The gateway's call spans (`otlp_endpoint` set): loaded only then, since it loads the OpenTelemetry SDK.

Every tool call, from every surface, is one SERVER span `tools/call <server>:<tool>` around
`Caller.call` or `Caller.start_task` (so it covers the checks, the concurrency queue, the worker's
answer and the activity record), the child of the client's `traceparent` when it sent one
(gateway/trace_context.py). The span's own `traceparent` goes to the worker on `CallTool`, whose
span is its child. Its status attribute is the activity log's (`ok`, `error`, `blocked`, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from gateway import trace_context
from gateway.call_context import CallContext
from services.tracing import Traces, parent_context, traceparent_of

SERVICE: Final = "mcpproxy-gateway"
NOT_FAILED: Final = frozenset({"ok", "input_required", "task_created"})
"""Activity statuses of a call that went as asked; any other makes its span an error."""


class CallSpans:
    """A SERVER span per call, set as `Caller.spans` (gateway/calling.py)."""

    def __init__(self, traces: Traces) -> None:
        self.traces = traces

    @contextmanager
    def span(self, server: str, tool: str, context: CallContext) -> Iterator[None]:
        attributes = {
            "mcp.method.name": "tools/call",
            "mcpproxy.server": server,
            "mcpproxy.tool": tool,
            "mcpproxy.surface": context.surface,
        }
        with self.traces.tracer.start_as_current_span(
            f"tools/call {server}:{tool}",
            context=parent_context(context.traceparent),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            token = trace_context.OUTBOUND.set(traceparent_of(span))
            try:
                yield
            finally:
                trace_context.OUTBOUND.reset(token)

    def outcome(self, status: str) -> None:
        span = get_current_span()
        if span.is_recording():
            span.set_attribute("mcpproxy.status", status)
            if status not in NOT_FAILED:
                span.set_status(Status(StatusCode.ERROR, status))


def call_spans(endpoint: str) -> CallSpans:
    """Spans of calls exported to the OTLP/HTTP receiver at `endpoint`; turns traces on."""
    spans = CallSpans(Traces(endpoint, SERVICE))
    trace_context.enable()
    return spans
