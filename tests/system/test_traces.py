"""OpenTelemetry traces (issue 23 item 5): a real proxy with `otlp_endpoint` exports to an OTLP/HTTP
receiver of the test's own, which decodes the real protobuf (`ExportTraceServiceRequest`).

Each call is followed from the client to the upstream: the gateway's span, the worker's span (its
child, same trace) and the `traceparent` the upstream found in its request's `_meta` (the echo
server's `meta` tool answers with it), in both MCP eras, on both endpoints, through the worker's raw
lane (a 2025-era upstream) and its SDK lane (a 2026-era one); a client's own `traceparent` (in the
call's `_meta`, or as an HTTP header) makes the gateway's span its child.
"""

from __future__ import annotations

import functools
import gzip
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from mcp.client import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.proxyctl import echo_server, free_port, running_proxy

pytestmark = pytest.mark.system

DEADLINE_S: Final = 60.0
META_ENV: Final = {"ECHO_SERVER_META": "1"}


@dataclass(frozen=True)
class Span:
    service: str
    resource: dict[str, str]
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, str]


@dataclass
class Receiver:
    """What an OTLP/HTTP collector received, span by span."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Span(
                            service=resource.get("service.name", ""),
                            resource=resource,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        self.changed.set()
        self.changed = trio.Event()

    async def span(self, service: str, trace_id: str, span_id: str | None = None) -> Span:
        """The span of `service` in `trace_id` (with `span_id`, that one), once it has arrived."""
        while True:
            for span in self.spans:
                if span.service == service and span.trace_id == trace_id and span_id in (None, span.span_id):
                    return span
            await self.changed.wait()


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()

    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        assert request.headers.get("content-type") == "application/x-protobuf"
        receiver.take(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type="application/x-protobuf")

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
        urls = await nursery.start(functools.partial(serve, app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        receiver.url = urls[0]
        try:
            yield receiver
        finally:
            stop.set()


def new_traceparent() -> tuple[str, str, str]:
    """A client's own W3C traceparent: (header value, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def upstream_traceparent(result: Any) -> tuple[str, str]:
    """(trace id, span id) of the `traceparent` the upstream received in `_meta`."""
    assert not result.is_error, result
    meta = json.loads(result.content[0].text)
    version, trace_id, span_id, flags = meta["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    return trace_id, span_id


async def check_trace(
    receiver: Receiver, result: Any, server: str, surface: str, client: tuple[str, str] | None
) -> None:
    """The upstream's traceparent names the worker's span, whose parent is the gateway's span (of the
    client's span, when it sent one); all in one trace."""
    trace_id, upstream_parent = upstream_traceparent(result)
    worker = await receiver.span("mcpproxy-worker", trace_id, upstream_parent)
    assert worker.resource["mcpproxy.server"] == server
    assert worker.name == "tools/call meta"
    gateway = await receiver.span("mcpproxy-gateway", trace_id, worker.parent_id)
    assert gateway.name == f"tools/call {server}:meta"
    assert gateway.attributes["mcpproxy.server"] == server
    assert gateway.attributes["mcpproxy.tool"] == "meta"
    assert gateway.attributes["mcpproxy.surface"] == surface
    assert gateway.attributes["mcpproxy.status"] == "ok"
    if client is None:
        assert gateway.parent_id == ""
    else:
        assert (trace_id, gateway.parent_id) == client


async def test_a_call_is_one_trace_from_the_client_through_gateway_and_worker_to_the_upstream(
    tmp_path: Path,
) -> None:
    servers = [
        echo_server("echo", env=META_ENV),  # a 2025-era upstream: the worker's raw lane
        echo_server("echo26", env=META_ENV, protocol_version="2026-07-28"),  # the worker's SDK lane
    ]
    with trio.fail_after(DEADLINE_S * 3):
        async with otlp_receiver() as receiver:
            # A short batch delay so spans arrive while the proxy runs (the default is 5 s).
            env = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
            async with running_proxy(tmp_path, servers, env=env, otlp_endpoint=receiver.url) as proxy:
                await proxy.wait_for("echo", "running")
                await proxy.wait_for("echo26", "running")
                for mode in ("legacy", "2026-07-28"):
                    for path, surface in (("/mcp", "mcp"), ("/mcp/all", "mcp_all")):
                        async with Client(f"{proxy.base_url}{path}", mode=mode, cache=None) as client:  # type: ignore[arg-type]
                            for server in ("echo", "echo26"):
                                for own in (False, True):
                                    value, trace_id, span_id = new_traceparent()
                                    meta: Any = {"traceparent": value} if own else None
                                    if path == "/mcp":
                                        result = await client.call_tool(
                                            "call_tool_read",
                                            {"name": f"{server}:meta", "args": {}},
                                            meta=meta,
                                        )
                                    else:
                                        result = await client.call_tool(f"{server}__meta", {}, meta=meta)
                                    with trio.fail_after(DEADLINE_S):
                                        expected = (trace_id, span_id) if own else None
                                        await check_trace(receiver, result, server, surface, expected)
                # A 2025-era client that sends its trace context as an HTTP header instead.
                value, trace_id, span_id = new_traceparent()
                async with proxy.mcp("/mcp/all", headers={"traceparent": value}) as session:
                    result = await session.call_tool("echo__meta", {})
                with trio.fail_after(DEADLINE_S):
                    await check_trace(receiver, result, "echo", "mcp_all", (trace_id, span_id))


async def test_a_collector_that_is_down_costs_neither_calls_nor_the_staged_stop(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
    async with running_proxy(
        tmp_path, [echo_server("echo", env=META_ENV)], env=env, otlp_endpoint=nowhere
    ) as proxy:
        await proxy.wait_for("echo", "running")
        with trio.fail_after(DEADLINE_S):
            async with Client(f"{proxy.base_url}/mcp/all", mode="2026-07-28", cache=None) as client:
                for _ in range(3):
                    upstream_traceparent(await client.call_tool("echo__meta", {}))
        # Both the gateway and the worker give their unsent spans a bounded flush, then stop politely
        # (proxyctl's stop deadline, STOP_TIMEOUT_S, would SIGKILL them and fail this).
        assert proxy.stop() == 0
