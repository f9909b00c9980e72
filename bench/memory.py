"""Memory of the proxy's own processes: PSS from /proc/PID/smaps_rollup, by role.

PSS (proportional set size) charges each shared page to its sharers in equal
parts, so summing it over processes counts copy-on-write pages shared between
the zygote and the workers it forked once, not once per worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.proxy import Proxy, Role

OWN_ROLES = (Role.SERVE, Role.SUPERVISOR, Role.GATEWAY, Role.ZYGOTE, Role.WORKER)
"""Upstream servers are the user's processes, not the proxy's cost."""


def pss_kib(pid: int) -> int:
    """The `Pss:` line of /proc/PID/smaps_rollup in KiB (0 for a process that is gone)."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class ProxyMemory:
    """PSS in MiB of each role's processes, summed, and the number of workers found."""

    by_role: dict[Role, float]
    workers: int

    @property
    def total_mib(self) -> float:
        return sum(self.by_role[role] for role in OWN_ROLES)

    def describe(self) -> str:
        parts = [f"{role.value} {self.by_role[role]:.1f}" for role in OWN_ROLES if role is not Role.WORKER]
        workers = self.by_role[Role.WORKER]
        each = workers / self.workers if self.workers else 0.0
        return ", ".join(parts) + f", workers {workers:.1f} ({self.workers} × {each:.1f})"


def measure_proxy(proxy: Proxy) -> ProxyMemory:
    processes = proxy.processes()
    by_role = {role: sum(pss_kib(pid) for pid in pids) / 1024 for role, pids in processes.items()}
    return ProxyMemory(by_role, len(processes[Role.WORKER]))
