"""CPU time per call of the processes on a call's path, from /proc/PID/stat utime + stime.

py-spy counts runnable-but-waiting threads as busy and overstates waiting on a
loaded machine; the kernel's own accounting does not. A `CpuTally` reads every
watched process before and after each measured block of calls and adds up the
difference; divided by the calls made, it says where the time of a call goes.
The kernel reports in clock ticks (10 ms at USER_HZ 100), so a block's figure
is good to a tick per process: over 1000 calls, ~0.01 ms per call. Named
processes can also be split by thread (/proc/PID/task/*/stat): the main
thread, ZeroMQ's I/O thread, the rest.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Final

TICK_S: Final = 1.0 / os.sysconf("SC_CLK_TCK")
CLIENT: Final = "client"
"""The bench's own process, which runs the client under test (and nothing else while it is timed)."""
ECHO_SERVER: Final = "echo server"
"""The upstream every target calls, the same program for all."""


MAIN_THREAD: Final = "main"


def _ticks_s(stat: str) -> float:
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def threads_cpu_s(pid: int) -> dict[str, float]:
    """utime + stime of `pid`'s live threads in seconds, by thread name (the main thread: "main")."""
    found: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = MAIN_THREAD if int(tid) == pid else stat[stat.find("(") + 1 : stat.rfind(")")]
        found[name] = found.get(name, 0.0) + _ticks_s(stat)
    return found


def cpu_s(pid: int) -> float | None:
    """utime + stime of `pid` (every thread, ended threads included) in seconds; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return _ticks_s(stat)


class CpuTally:
    """CPU used by named processes over measured blocks, per call; `split` ones also by thread."""

    def __init__(self, processes: Mapping[str, int], split: Collection[str] = ()) -> None:
        self.processes = {CLIENT: os.getpid(), **processes}
        self.split = [name for name in split if name in self.processes]
        self.used_s = dict.fromkeys(self.processes, 0.0)
        self.threads_used_s: dict[str, dict[str, float]] = {name: {} for name in self.split}
        self.calls = 0
        self._before: dict[str, float | None] = {}
        self._threads_before: dict[str, dict[str, float]] = {}

    def start(self) -> None:
        self._threads_before = {name: threads_cpu_s(self.processes[name]) for name in self.split}
        self._before = {name: cpu_s(pid) for name, pid in self.processes.items()}

    def stop(self, calls: int) -> None:
        for name, pid in self.processes.items():
            before, after = self._before.get(name), cpu_s(pid)
            if before is not None and after is not None:
                self.used_s[name] += after - before
        for name in self.split:
            before_threads, used = self._threads_before.get(name, {}), self.threads_used_s[name]
            for thread, after_s in threads_cpu_s(self.processes[name]).items():
                if thread in before_threads:
                    used[thread] = used.get(thread, 0.0) + after_s - before_threads[thread]
        self.calls += calls

    def per_call_ms(self) -> dict[str, float]:
        """Milliseconds of CPU per call, by process name."""
        if not self.calls:
            return {}
        return {name: used * 1000 / self.calls for name, used in self.used_s.items()}

    def threads_per_call_ms(self) -> dict[str, dict[str, float]]:
        """Milliseconds of CPU per call of each split process's threads, by thread name."""
        if not self.calls:
            return {}
        return {
            name: {thread: used * 1000 / self.calls for thread, used in threads.items()}
            for name, threads in self.threads_used_s.items()
        }
