"""Latency samples and what we report of them: p50, p99 and the rate they were taken at."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 <= q <= 1) of a non-empty list."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Latency:
    """Sequential calls: median and 99th percentile in milliseconds, and calls per second."""

    p50_ms: float
    p99_ms: float
    rate: float

    def added_over(self, baseline: Latency) -> tuple[float, float]:
        """(added p50, added p99) in milliseconds."""
        return self.p50_ms - baseline.p50_ms, self.p99_ms - baseline.p99_ms


async def time_calls(call: Callable[[], Awaitable[None]], calls: int, warmup: int) -> Latency:
    """Run `warmup` untimed calls, then `calls` timed ones, one after the other."""
    for _ in range(warmup):
        await call()
    samples = []
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    return Latency(statistics.median(samples), percentile(samples, 0.99), calls / elapsed)
