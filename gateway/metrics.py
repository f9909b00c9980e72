"""`/metrics`: the proxy's state in the Prometheus text format.

What a call costs here is two dict updates (`CallStats.observe`, from the activity record every call
makes anyway); everything else is read when Prometheus scrapes: each server's state, restarts and
tools from the registry, calls running and waiting from the concurrency gates
(gateway/admission.py), and the resident memory of each worker and of its upstream's process
group from /proc (the supervisor reports their pids). `prometheus_client` is imported on the first
scrape, so a proxy nobody scrapes never loads it.

Who may scrape (gateway/frontdoor.py): the API key, or with `metrics_access: "loopback"` any
client connecting from a loopback address.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterator
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from gateway.admission import Admission
from gateway.registry import Registry
from services.activity import CallRecord

BUCKETS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Call latency histogram bounds: from the fast lane's millisecond to a minute-long tool."""
PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")
METRICS_ACCESS: Final = ("api_key", "loopback")


class CallStats:
    """Calls by server and status, and each server's latency histogram, as plain counters."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.latency: dict[str, list[float]] = {}
        """Per server: a count per bucket (the last one: above every bound), then the sum of seconds."""

    def observe(self, record: CallRecord) -> None:
        if " " in record.tool:  # `tasks/result <tool>`, `elicitation/create <tool>`: not a call of its own
            return
        key = (record.server, record.status)
        self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.latency.get(record.server)
        if histogram is None:
            histogram = self.latency[record.server] = [0.0] * (len(BUCKETS_S) + 2)
        seconds = record.duration_ms / 1000
        histogram[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        histogram[-1] += seconds


def rss_bytes(pid: int) -> int | None:
    """Resident memory of `pid` (/proc/PID/statm), None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def group_rss_bytes(pgid: int) -> int | None:
    """Resident memory of every process in group `pgid` (an upstream and what it started: npx, node)."""
    total, found = 0, False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            size = rss_bytes(int(entry.name))
            if size is not None:
                total, found = total + size, True
    return total if found else None


class Metrics:
    """The `/metrics` route and what it reads from."""

    def __init__(
        self,
        registry: Registry,
        admission: Admission,
        stats: CallStats,
        indexed: Callable[[], dict[str, int]],
    ) -> None:
        self.registry = registry
        self.admission = admission
        self.stats = stats
        self.indexed = indexed
        self.lane_counts: Callable[[], dict[str, int]] = dict
        """Requests the MCP lane answered and declined (gateway/mcp_lane.py)."""
        self._registry: Any = None

    async def endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self._registry is None:
            from prometheus_client.registry import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(self)
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    def collect(self) -> Iterator[Any]:
        from gateway.metrics_families import families

        yield from families(self)
