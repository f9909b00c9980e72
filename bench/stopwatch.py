"""A proxy's stop, timed from outside: when each upstream's stdin closes, when the last upstream exits.

Nothing in the proxy is instrumented. Each stdio upstream reads its stdin
from a pipe whose only write end its worker holds; the moment that
descriptor leaves the worker's /proc fd table, the upstream has its EOF. Upstream exits are seen by
polling /proc. Together they split a stop into the proxy's own parts (fanning
the stop out to every worker, and ending after the last upstream) and the
upstreams' own exits in between.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import trio

from tests.proxyctl import alive

POLL_S: Final = 0.005
"""Precision of the figures; each poll reads a few /proc entries, cheap beside what a stop costs."""


@dataclass(frozen=True)
class StdinPipe:
    """Where an upstream's stdin can be seen closing: descriptor `fd` of `worker`, pointing at `pipe`."""

    upstream: int
    worker: int
    fd: str
    pipe: str

    def open(self) -> bool:
        try:
            return os.readlink(f"/proc/{self.worker}/fd/{self.fd}") == self.pipe
        except OSError:
            return False


def _links(pid: int) -> dict[str, str]:
    links = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            links[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return links


def _writes(pid: int, fd: str) -> bool:
    """Whether descriptor `fd` of `pid` is open for writing (fdinfo `flags` are octal open(2) flags)."""
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    return False


def stdin_pipes(upstreams: list[int]) -> list[StdinPipe]:
    """For each upstream, the descriptor through which its parent (its worker) writes to its stdin.

    The upstream's fd 0 may not be the pipe any more (the MCP SDK's stdio server moves it to a
    private descriptor and puts /dev/null there), so the pipe is the one the two share that the
    worker holds open for writing: stdout and stderr it holds for reading.
    """
    found = []
    for pid in upstreams:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            worker = int(stat[stat.rfind(")") + 2 :].split()[1])
            pipes = {link for link in _links(pid).values() if link.startswith("pipe:")}
            for fd, link in _links(worker).items():
                if link in pipes and _writes(worker, fd):
                    found.append(StdinPipe(pid, worker, fd, link))
                    break
        except OSError:
            continue
    return found


@dataclass
class StopTimes:
    """Seconds after the signal; None where it was not seen."""

    watched_stdins: int = 0
    last_stdin_closed_s: float | None = None
    last_upstream_exit_s: float | None = None
    exited_s: float | None = None
    closed: list[float] = field(default_factory=list)


async def watch_stop(
    process: trio.Process, pipes: list[StdinPipe], upstreams: list[int], signalled: float
) -> StopTimes:
    """Poll until `process` exits; the caller found `pipes` before it signalled, at perf_counter `signalled`."""
    times = StopTimes(watched_stdins=len(pipes))
    pending = list(pipes)
    remaining = list(upstreams)
    while process.returncode is None:
        now = time.perf_counter() - signalled
        still = [pipe for pipe in pending if pipe.open()]
        times.closed += [now] * (len(pending) - len(still))
        pending = still
        # Only the last exit matters: look at the upstreams in order, stop at the first one alive.
        while remaining and not alive([remaining[0]]):
            remaining.pop(0)
        if not remaining and times.last_upstream_exit_s is None:
            times.last_upstream_exit_s = now
        with trio.move_on_after(POLL_S):
            await process.wait()
    times.exited_s = time.perf_counter() - signalled
    if times.closed and not pending:
        times.last_stdin_closed_s = max(times.closed)
    if times.last_upstream_exit_s is None and not alive(upstreams):
        times.last_upstream_exit_s = times.exited_s  # all went within the last poll
    return times
