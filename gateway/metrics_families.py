"""The metric families `/metrics` shows (gateway/metrics.py), built at scrape time.

Imported on the first scrape only: it pulls in `prometheus_client`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from bus.messages import ServerState
from gateway.metrics import BUCKETS_S, group_rss_bytes, rss_bytes

if TYPE_CHECKING:
    from gateway.metrics import Metrics

ALL_SERVERS = "*"
"""The `scope` of the proxy-wide concurrency gate (a server name is never `*`)."""


def families(metrics: Metrics) -> Iterator[Metric]:
    yield from _servers(metrics)
    yield from _calls(metrics)
    yield from _gates(metrics)
    yield from _lane(metrics)


def _servers(metrics: Metrics) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        "mcpproxy_server_state",
        "1 for the state each server is in, 0 for the others",
        labels=["server", "state"],
    )
    restarts = CounterMetricFamily(
        "mcpproxy_server_restarts", "Times each server's worker was started again", labels=["server"]
    )
    tools = GaugeMetricFamily(
        "mcpproxy_tools_indexed", "Tools of each server in the search index", labels=["server"]
    )
    worker = GaugeMetricFamily(
        "mcpproxy_worker_rss_bytes", "Resident memory of each server's worker process", labels=["server"]
    )
    upstream = GaugeMetricFamily(
        "mcpproxy_upstream_rss_bytes",
        "Resident memory of each stdio upstream's process group",
        labels=["server"],
    )
    indexed = metrics.indexed()
    for name, status in sorted(metrics.registry.servers.items()):
        for each in ServerState:
            state.add_metric([name, each.value], 1.0 if status.state == each else 0.0)
        restarts.add_metric([name], status.restarts)
        tools.add_metric([name], indexed.get(name, 0))
        if status.worker_pid is not None and (size := rss_bytes(status.worker_pid)) is not None:
            worker.add_metric([name], size)
        if status.upstream_pid is not None and (size := group_rss_bytes(status.upstream_pid)) is not None:
            upstream.add_metric([name], size)
    yield from (state, restarts, tools, worker, upstream)


def _calls(metrics: Metrics) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "mcpproxy_tool_calls",
        "Tool calls by server and outcome (the activity log's status: ok, error, rejected, ...)",
        labels=["server", "status"],
    )
    for (server, status), count in sorted(metrics.stats.counts.items()):
        calls.add_metric([server, status], count)
    yield calls
    latency = HistogramMetricFamily(
        "mcpproxy_tool_call_duration_seconds",
        "Tool call latency at the gateway, queue wait included",
        labels=["server"],
    )
    for server, histogram in sorted(metrics.stats.latency.items()):
        cumulative, buckets = 0.0, []
        for bound, hits in zip((*BUCKETS_S, float("inf")), histogram[:-1], strict=True):
            cumulative += hits
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency.add_metric([server], buckets, sum_value=histogram[-1])
    yield latency


def _gates(metrics: Metrics) -> Iterator[Metric]:
    running = GaugeMetricFamily(
        "mcpproxy_calls_running",
        "Calls holding a slot of a concurrency limit (scope: a server, or * for the proxy-wide one)",
        labels=["scope"],
    )
    queued = GaugeMetricFamily(
        "mcpproxy_call_queue_depth", "Calls waiting for a slot of a concurrency limit", labels=["scope"]
    )
    for gate in metrics.admission.gates():
        scope = gate.scope or ALL_SERVERS
        running.add_metric([scope], gate.running)
        queued.add_metric([scope], len(gate.waiting))
    yield from (running, queued)


def _lane(metrics: Metrics) -> Iterator[Metric]:
    lane = CounterMetricFamily(
        "mcpproxy_mcp_lane_requests",
        "POSTs to an MCP path with their body whole: answered inside the HTTP/1.1 protocol (answered),"
        " or given to the app (declined: handshakes, streams, refusals; gateway/mcp_lane.py)",
        labels=["outcome"],
    )
    for outcome, count in sorted(metrics.lane_counts().items()):
        lane.add_metric([outcome], count)
    yield lane
