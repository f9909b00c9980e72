"""The worker's call spans, when its spec has an `otlp_endpoint` (else nothing here runs per call).

Each `CallTool` is one CLIENT span `tools/call <tool>` (service `mcpproxy-worker`, resource attribute
`mcpproxy.server`), the child of the gateway's span named by `CallTool.traceparent`. The call then
goes on with the worker span's own `traceparent`, which both lanes put in the upstream request's
`_meta` (services/worker/raw_calls.py, services/worker/asks.py), so an upstream that traces too
continues the same trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec
from mcp_types import RequestParamsMeta

from bus.messages import CallTool, UpstreamSpec

if TYPE_CHECKING:
    from services.tracing import Traces

SERVICE: Final = "mcpproxy-worker"

CallBody = Callable[[CallTool], Awaitable[bytes]]


async def serve_traced(
    worker: Any, spec: UpstreamSpec, serve: Callable[[], Awaitable[str | None]]
) -> str | None:
    """`serve()`, with `worker.call_body` traced while it runs if the spec says where spans go; the
    last spans are exported (within services/tracing.py's FLUSH_S) when it ends."""
    if spec.otlp_endpoint is None:
        return await serve()
    from services.tracing import Traces  # the OpenTelemetry SDK loads only when traces are on

    traces = Traces(spec.otlp_endpoint, SERVICE, {"mcpproxy.server": spec.name})
    worker.call_body = traced(traces, spec.name, worker.call_body)
    try:
        return await serve()
    finally:
        await traces.aclose()


def traced(traces: Traces, server: str, body: CallBody) -> CallBody:
    from opentelemetry.trace import SpanKind

    from services.tracing import parent_context, traceparent_of

    async def call_body(call: CallTool) -> bytes:
        with traces.tracer.start_as_current_span(
            f"tools/call {call.tool}",
            context=parent_context(call.traceparent),
            kind=SpanKind.CLIENT,
            attributes={
                "mcp.method.name": "tools/call",
                "mcpproxy.server": server,
                "mcpproxy.tool": call.tool,
            },
        ) as span:
            return await body(msgspec.structs.replace(call, traceparent=traceparent_of(span)))

    return call_body


def upstream_meta(call: CallTool) -> RequestParamsMeta | None:
    """The `_meta` the SDK lane gives the upstream's `tools/call`: the worker span's trace context."""
    if call.traceparent is None:
        return None
    return cast(RequestParamsMeta, {"traceparent": call.traceparent})
