"""OpenTelemetry traces of tool calls (`otlp_endpoint`), for the gateway and the workers alike.

Imported only by a process whose config sets `otlp_endpoint`, so a proxy without traces never loads
the OpenTelemetry SDK. Spans leave through a `BatchSpanProcessor` (the SDK's own export thread) to
`{otlp_endpoint}/v1/traces` as OTLP/HTTP protobuf. Trace context crosses process boundaries as a W3C
`traceparent` string: in a client's `_meta` or header, on the bus (`CallTool.traceparent`) and in
the upstream's `tools/call` `_meta`.
"""

from __future__ import annotations

import logging
from typing import Final

import trio
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

EXPORT_TIMEOUT_S: Final = 2.0
"""One export request, retries included: a collector that is down costs a batch, never a hang."""
FLUSH_S: Final = 3.0
"""What a stopping process gives its last spans (one export and a little); the staged stop's budget
(docs/architecture.md) is in tens of seconds, so this never decides it."""
TRACES_PATH: Final = "/v1/traces"
TRACEPARENT: Final = "traceparent"

_PROPAGATOR: Final = TraceContextTextMapPropagator()


def parent_context(traceparent: str | None) -> Context | None:
    """The context a W3C `traceparent` names (None: none given, or one that does not parse)."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({TRACEPARENT: traceparent})
    return context or None


def traceparent_of(span: Span) -> str | None:
    """The W3C `traceparent` that makes `span` the parent of whatever receives it."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier.get(TRACEPARENT)


class Traces:
    """One process's tracer, exporting to an OTLP/HTTP receiver; `aclose` flushes within FLUSH_S."""

    def __init__(self, endpoint: str, service: str, attributes: dict[str, str] | None = None) -> None:
        resource = Resource.create({SERVICE_NAME: service, **(attributes or {})})
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + TRACES_PATH, timeout=EXPORT_TIMEOUT_S)
        self._processor = BatchSpanProcessor(exporter)
        self.provider.add_span_processor(self._processor)
        self.tracer: Tracer = self.provider.get_tracer("mcpproxy")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Until cancelled; then the last spans are exported (`aclose`)."""
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Export what is left, within FLUSH_S even while cancelled (a bounded cleanup)."""
        with trio.CancelScope(shield=True), trio.move_on_after(FLUSH_S) as waited:
            # The SDK's shutdown joins its export thread: blocking, so it runs in a thread of its own.
            await trio.to_thread.run_sync(self.provider.shutdown, abandon_on_cancel=True)
        if waited.cancelled_caught:
            logger.warning("traces: the last spans were not exported within %gs", FLUSH_S)
