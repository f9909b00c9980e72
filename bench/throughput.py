"""Concurrent throughput: N client sessions, each making M sequential calls at once, in calls/s."""

from __future__ import annotations

import time
from typing import Final

import trio

from bench.clients import CallOpener

DEADLINE_S: Final = 600.0


async def throughput_of(open_call: CallOpener, sessions: int, calls: int) -> float:
    """Calls per second from the moment every session is open and warm until the last one finishes.

    Session set-up is not timed: the figure is the steady state of `sessions`
    clients calling at once.
    """
    ready = 0
    all_ready = trio.Event()
    go = trio.Event()
    all_done = trio.Event()
    finished: list[float] = []

    async def client() -> None:
        nonlocal ready
        async with open_call() as call:
            ready += 1
            if ready == sessions:
                all_ready.set()
            await go.wait()
            for _ in range(calls):
                await call()
            finished.append(time.perf_counter())
            if len(finished) == sessions:
                all_done.set()
            await all_done.wait()  # a session closing must not slow the ones still calling

    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            for _ in range(sessions):
                nursery.start_soon(client)
            await all_ready.wait()
            started = time.perf_counter()
            go.set()
    return sessions * calls / (max(finished) - started)
