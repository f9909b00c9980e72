"""CPU time per call of the processes on a call's path, from /proc/PID/stat utime + stime.

py-spy counts runnable-but-waiting threads as busy and overstates waiting on a
loaded machine; the kernel's own accounting does not. A `CpuTally` reads every
watched process before and after each measured block of calls and adds up the
difference; divided by the calls made, it says where the time of a call goes.
The kernel reports in clock ticks (10 ms at USER_HZ 100), so a block's figure
is good to a tick per process: over 1000 calls, ~0.01 ms per call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

TICK_S: Final = 1.0 / os.sysconf("SC_CLK_TCK")
CLIENT: Final = "client"
"""The bench's own process, which runs the client under test (and nothing else while it is timed)."""
ECHO_SERVER: Final = "echo server"
"""The upstream every target calls, the same program for all."""


def cpu_s(pid: int) -> float | None:
    """utime + stime of `pid` (every thread, ended threads included) in seconds; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


class CpuTally:
    """CPU used by named processes over measured blocks, per call."""

    def __init__(self, processes: Mapping[str, int]) -> None:
        self.processes = {CLIENT: os.getpid(), **processes}
        self.used_s = dict.fromkeys(self.processes, 0.0)
        self.calls = 0
        self._before: dict[str, float | None] = {}

    def start(self) -> None:
        self._before = {name: cpu_s(pid) for name, pid in self.processes.items()}

    def stop(self, calls: int) -> None:
        for name, pid in self.processes.items():
            before, after = self._before.get(name), cpu_s(pid)
            if before is not None and after is not None:
                self.used_s[name] += after - before
        self.calls += calls

    def per_call_ms(self) -> dict[str, float]:
        """Milliseconds of CPU per call, by process name."""
        if not self.calls:
            return {}
        return {name: used * 1000 / self.calls for name, used in self.used_s.items()}
