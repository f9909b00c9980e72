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


def summarize(samples_ms: list[float]) -> Latency:
    """p50, p99 and the back-to-back rate of a non-empty list of call times."""
    return Latency(
        statistics.median(samples_ms), percentile(samples_ms, 0.99), len(samples_ms) * 1000 / sum(samples_ms)
    )


async def timed_block(call: Callable[[], Awaitable[None]], calls: int) -> list[float]:
    """Milliseconds taken by each of `calls` calls made one after the other."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples
