"""Interleaved rounds: every target is measured in turn, round after round, rotating who goes first.

On a shared machine the load drifts over a run; measuring the baseline, the
proxy and each peer in alternating blocks makes that drift weigh on all of
them alike, so "added" figures and side-by-side rates stay comparable. A
target that fails is left out with its reason; the others are still measured.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Collection, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import trio

from bench.clients import Call, CallOpener
from bench.cpu import ECHO_SERVER, CpuTally
from bench.processes import children
from bench.samples import Latency, summarize, timed_block
from bench.throughput import throughput_of

WARMUP: Final = 50
DEADLINE_S: Final = 1800.0
FAILURE_CHARS: Final = 300

Figure = TypeVar("Figure")


@dataclass
class Outcome(Generic[Figure]):
    """Per target: its figure, or why it has none."""

    figures: dict[str, Figure] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    cpu_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per target: milliseconds of CPU per timed call, by process name."""
    threads_ms: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """Per target: of the processes split by thread, milliseconds per timed call by thread name."""


def failure_text(exc: BaseException) -> str:
    """An exception as one short line for a table cell."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:FAILURE_CHARS]


def rotated(names: list[str], number: int) -> list[str]:
    shift = number % len(names) if names else 0
    return names[shift:] + names[:shift]


async def interleaved_latency(
    openers: Mapping[str, CallOpener],
    calls: int,
    rounds: int,
    processes: Mapping[str, Mapping[str, int]] | None = None,
    split: Collection[str] = (),
) -> Outcome[Latency]:
    """One session per target, all open at once; `calls` sequential calls each, in `rounds` blocks.

    `processes`: per target, the processes on its call path (name -> pid) whose CPU is tallied;
    those named in `split` are also tallied by thread.
    """
    outcome: Outcome[Latency] = Outcome()
    samples: dict[str, list[float]] = {}
    tallies: dict[str, CpuTally] = {}
    with trio.fail_after(DEADLINE_S):
        async with AsyncExitStack() as stack:
            calls_of: dict[str, Call] = {}
            for name, opener in openers.items():
                before = children(os.getpid())
                try:
                    call = await stack.enter_async_context(opener())
                    for _ in range(WARMUP):
                        await call()
                except Exception as exc:  # this target is left out; the others are measured
                    outcome.failures[name] = failure_text(exc)
                    continue
                spawned = sorted(children(os.getpid()) - before)
                watched = dict((processes or {}).get(name, {}))
                watched.update(
                    {ECHO_SERVER if len(spawned) == 1 else f"{ECHO_SERVER} {pid}": pid for pid in spawned}
                )
                calls_of[name], samples[name], tallies[name] = call, [], CpuTally(watched, split)
            block = max(1, calls // rounds)
            for number in range(rounds):
                for name in rotated(list(calls_of), number):
                    if name in outcome.failures:
                        continue
                    try:
                        await calls_of[name]()
                        tallies[name].start()
                        samples[name] += await timed_block(calls_of[name], block)
                        tallies[name].stop(block)
                    except Exception as exc:  # as above
                        outcome.failures[name] = failure_text(exc)
    kept = [name for name in samples if name not in outcome.failures]
    outcome.figures = {name: summarize(samples[name]) for name in kept}
    outcome.cpu_ms = {name: tallies[name].per_call_ms() for name in kept}
    outcome.threads_ms = {name: tallies[name].threads_per_call_ms() for name in kept}
    return outcome


async def interleaved_throughput(
    openers: Mapping[str, CallOpener], sessions: int, calls: int, rounds: int
) -> Outcome[list[float]]:
    """`sessions` x `calls` at once against each target in turn, `rounds` times; every round's calls/s."""
    outcome: Outcome[list[float]] = Outcome()
    rates: dict[str, list[float]] = {name: [] for name in openers}
    for number in range(rounds):
        for name in rotated(list(openers), number):
            if name in outcome.failures:
                continue
            try:
                rates[name].append(await throughput_of(openers[name], sessions, calls))
            except Exception as exc:  # this target is left out; the others are measured
                outcome.failures[name] = failure_text(exc)
    outcome.figures = {name: r for name, r in rates.items() if r and name not in outcome.failures}
    return outcome


def median_of(rates: list[float]) -> str:
    """`612 calls/s (median of 3: 590, 612, 640)`, or just the rate when there is one."""
    median = f"{statistics.median(rates):.0f} calls/s"
    if len(rates) == 1:
        return median
    return f"{median} (median of {len(rates)}: {', '.join(f'{rate:.0f}' for rate in rates)})"
