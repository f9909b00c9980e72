"""The gateway's call spans (`otlp_endpoint` set): loaded only then, since it loads the OpenTelemetry SDK.

Every tool call, from every surface, is one SERVER span `tools/call <server>:<tool>` around
`Caller.call` or `Caller.start_task` (so it covers the checks, the concurrency queue, the worker's
answer and the activity record), the child of the client's `traceparent` when it sent one
(gateway/trace_context.py). The span's own `traceparent` goes to the worker on `CallTool`, whose
span is its child. Its status attribute is the activity log's (`ok`, `error`, `blocked`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import mcp.types as types
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from gateway import trace_context
from gateway.asks import ToolAnswer
from gateway.calling import CallContext, Caller
from services.activity import ActivityLog
from services.tracing import Traces, parent_context, traceparent_of

SERVICE: Final = "mcpproxy-gateway"
NOT_FAILED: Final = frozenset({"ok", "input_required", "task_created"})
"""Activity statuses of a call that went as asked; any other makes its span an error."""


class TracedCaller(Caller):
    """`Caller` with a span per call."""

    traces: Traces

    async def call(
        self,
        server: str,
        tool_name: str,
        arguments: dict[str, Any],
        context: CallContext,
        *,
        shown_name: str,
        known: Iterable[str] | Callable[[], Iterable[str]],
        variant: str | None = None,
    ) -> ToolAnswer:
        with self._span(server, tool_name, context):
            return await super().call(
                server, tool_name, arguments, context, shown_name=shown_name, known=known, variant=variant
            )

    async def start_task(
        self,
        server: str,
        tool_name: str,
        arguments: dict[str, Any],
        context: CallContext,
        task: bytes,
        *,
        shown_name: str,
        known: Iterable[str] | Callable[[], Iterable[str]],
        variant: str | None = None,
    ) -> types.CreateTaskResult | types.CallToolResult:
        with self._span(server, tool_name, context):
            return await super().start_task(
                server,
                tool_name,
                arguments,
                context,
                task,
                shown_name=shown_name,
                known=known,
                variant=variant,
            )

    @contextmanager
    def _span(self, server: str, tool: str, context: CallContext) -> Iterator[None]:
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

    def _record(
        self, server: str, tool: str, context: CallContext, status: str, *args: Any, **kwargs: Any
    ) -> None:
        # The call's last record is its outcome (an upstream's question is recorded before it).
        span = get_current_span()
        if span.is_recording():
            span.set_attribute("mcpproxy.status", status)
            if status not in NOT_FAILED:
                span.set_status(Status(StatusCode.ERROR, status))
        super()._record(server, tool, context, status, *args, **kwargs)


def traced_caller(endpoint: str, registry: Any, upstreams: Any, activity: ActivityLog | None) -> TracedCaller:
    """A `Caller` whose calls are traced to the OTLP/HTTP receiver at `endpoint`; turns traces on."""
    caller = TracedCaller(registry, upstreams, activity)
    caller.traces = Traces(endpoint, SERVICE)
    trace_context.enable()
    return caller
