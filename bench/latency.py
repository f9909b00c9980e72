"""Sequential call latency through any client, and the echo server's own start time over stdio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

import trio

from bench.clients import Call, open_stdio_session
from bench.samples import Latency, time_calls

WARMUP: Final = 50
DEADLINE_S: Final = 600.0
START_DEADLINE_S: Final = 30.0

CallOpener = Callable[[], AbstractAsyncContextManager[Call]]


async def latency_of(open_call: CallOpener, calls: int, warmup: int = WARMUP) -> Latency:
    """p50/p99 of `calls` sequential calls on one session, after `warmup` untimed ones."""
    with trio.fail_after(DEADLINE_S):
        async with open_call() as call:
            return await time_calls(call, calls, warmup)


async def echo_start_s(repeats: int) -> float:
    """Median seconds from spawning the echo server to a completed `initialize`, with the SDK client."""
    samples = []
    for _ in range(repeats):
        with trio.fail_after(START_DEADLINE_S):
            started = time.perf_counter()
            async with open_stdio_session() as session:
                await session.initialize()
                samples.append(time.perf_counter() - started)
    return statistics.median(samples)
