"""Traces (issue 23 item 5) in pieces: off, nothing is loaded or made per call; on, trace context
goes in and out as W3C `traceparent`. The whole path is tests/system/test_traces.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from bus.messages import CallTool, UpstreamSpec
from gateway.trace_context import client_traceparent
from services.tracing import Traces, parent_context, traceparent_of
from services.worker.raw_calls import request_line
from services.worker.traces import serve_traced, upstream_meta

REPO = Path(__file__).resolve().parent.parent.parent
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OFF = """
import sys, tempfile
from pathlib import Path
from gateway import trace_context
from gateway.app import GatewaySettings, build_app
with tempfile.TemporaryDirectory() as data:
    settings = GatewaySettings("127.0.0.1", 0, "key", Path(data), "ipc:///nowhere/c", "ipc:///nowhere/k")
    build_app(settings)
sdk = ("opentelemetry.sdk", "opentelemetry.exporter")  # (the MCP SDK itself loads the bare API)
print(trace_context.enabled, any(name.startswith(sdk) for name in sys.modules))
"""


def test_a_gateway_without_otlp_endpoint_loads_no_opentelemetry_and_turns_nothing_on() -> None:
    # A fresh interpreter: this test process may hold the SDK already.
    result = subprocess.run(
        [sys.executable, "-c", OFF], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["False", "False"]


async def test_a_worker_without_otlp_endpoint_calls_its_upstream_as_before() -> None:
    class Worker:
        async def call_body(self, call: CallTool) -> bytes:
            return b"{}"

    worker = Worker()
    body = worker.call_body

    async def serve() -> str | None:
        assert worker.call_body == body  # not wrapped
        return None

    assert await serve_traced(worker, UpstreamSpec(name="s", protocol="stdio"), serve) is None
    assert upstream_meta(CallTool(request_id=1, tool="t")) is None
    assert b"_meta" not in request_line("mcpproxy-1", "t", b"{}")


def test_a_clients_trace_context_comes_from_meta_before_its_header() -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    assert client_traceparent({"traceparent": TRACEPARENT}, {"traceparent": other}) == TRACEPARENT
    assert client_traceparent({}, {"traceparent": other}) == other
    assert client_traceparent(None, None) is None
    assert client_traceparent({"traceparent": 3}, {}) is None


async def test_a_span_made_under_a_traceparent_is_its_child_and_names_itself_onward() -> None:
    # Nothing listens at this endpoint: the export fails, within the flush bound.
    traces = Traces("http://127.0.0.1:9", "test")
    parent = parent_context(TRACEPARENT)
    with traces.tracer.start_as_current_span("s", context=parent) as span:
        onward = traceparent_of(span)
    assert onward is not None
    version, trace_id, span_id, _ = onward.split("-")
    assert (version, trace_id) == ("00", "0af7651916cd43dd8448eb211c80319c")
    assert span_id == format(span.get_span_context().span_id, "016x") != "b7ad6b7169203331"
    assert parent_context("garbage") is None
    with trio.fail_after(10):
        await traces.aclose()
    line = request_line("mcpproxy-1", "t", b"{}", onward)
    assert line.endswith(b'"arguments":{},"_meta":{"traceparent":"%s"}}}\n' % onward.encode())
