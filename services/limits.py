"""Enforcing one stdio upstream's `limits`: a cgroup of its own where the machine lets us make one,
rlimits where it does not (services/limits_config.py reads the config, services/cgroups.py the
kernel's files).

- memory: a cgroup caps the upstream's whole tree, and over the cap the kernel's OOM killer ends
  the tree's largest process; the fallback, RLIMIT_AS, caps each process's address space (not
  its memory), and an allocation over it fails (the upstream sees ENOMEM) instead.
- pids: a cgroup caps the tree's processes and threads, and `fork` fails with EAGAIN; the
  fallback, RLIMIT_NPROC, counts every process of the user, not of the upstream, and root
  ignores it.
- cpu: a cgroup's CFS quota; no fallback (RLIMIT_CPU caps total seconds, not a share).
- open_files: RLIMIT_NOFILE per process, always (cgroups have no such controller).

The upstream joins its cgroups itself between fork and exec (`preexec`), with descriptors the
worker opened beforehand, so the worker never enters them and the upstream never runs outside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bus.values import ResourceLimits
from services import cgroups, process

logger = logging.getLogger(__name__)

FALLBACK_RLIMITS: Final = {"memory": "RLIMIT_AS", "pids": "RLIMIT_NPROC"}
"""The rlimit that stands in for a controller we cannot use (cpu has none)."""


@dataclass
class Confinement:
    """One upstream's caps: its cgroups, the rlimits that cover the rest, and how each is enforced."""

    limits: ResourceLimits | None = None
    groups: dict[str, tuple[cgroups.Hierarchy, Path]] = field(default_factory=dict)
    """Per controller, its hierarchy and the upstream's cgroup in it."""
    rlimits: list[tuple[int, int]] = field(default_factory=list)
    how: dict[str, str] = field(default_factory=dict)
    """Per limit, what enforces it: `cgroup v1`, `cgroup v2`, an rlimit's name, or `not enforced: ...`."""
    _join_fds: list[int] = field(default_factory=list)
    _oom_before: int = 0

    @classmethod
    def prepare(
        cls, limits: ResourceLimits | None, found: dict[str, cgroups.Hierarchy] | None = None
    ) -> Confinement:
        """Create the upstream's cgroups and write their caps; choose rlimits for what they cannot cap."""
        confinement = cls(limits)
        if limits is None:
            return confinement
        asked = {"memory": limits.memory_bytes, "pids": limits.pids, "cpu": limits.cpu}
        wanted: dict[str, float] = {name: value for name, value in asked.items() if value is not None}
        if found is None:
            found = cgroups.hierarchies(wanted) if wanted else {}
        for controller, value in wanted.items():
            hierarchy = found.get(controller)
            if hierarchy is None:
                confinement._fall_back(controller, int(value), "no cgroup hierarchy with this controller")
                continue
            try:
                directory = confinement._capped(hierarchy, limits.cgroup, value)
            except OSError as exc:
                reason = f"no writable cgroup under {hierarchy.base}: {exc.strerror or exc}"
                confinement._fall_back(controller, int(value), reason)
                continue
            confinement.groups[controller] = (hierarchy, directory)
            confinement.how[controller] = "cgroup v2" if hierarchy.v2 else "cgroup v1"
        if limits.open_files is not None:
            confinement._add_rlimit(resource.RLIMIT_NOFILE, limits.open_files)
            confinement.how["open_files"] = "RLIMIT_NOFILE"
        if "memory" in confinement.groups:
            confinement._oom_before = cgroups.oom_kills(*confinement.groups["memory"])
        for directory in dict.fromkeys(directory for _h, directory in confinement.groups.values()):
            confinement._join_fds.append(os.open(directory / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        return confinement

    def _capped(self, hierarchy: cgroups.Hierarchy, name: str, value: float) -> Path:
        directory = cgroups.make_cgroup(hierarchy, name)
        try:
            cgroups.set_limit(hierarchy, directory, value)
        except OSError:
            if all(directory != used for _h, used in self.groups.values()):  # v2 shares one directory
                cgroups.try_remove(directory)
            raise
        return directory

    def _fall_back(self, controller: str, value: int, reason: str) -> None:
        name = FALLBACK_RLIMITS.get(controller)
        if name is None:
            self.how[controller] = f"not enforced: {reason}"
            return
        self._add_rlimit(getattr(resource, name), value)
        self.how[controller] = f"{name} ({reason})"

    def _add_rlimit(self, which: int, value: int) -> None:
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and value > hard and os.geteuid() != 0:
            value = hard  # only root may raise a hard limit; the cap cannot be looser than ours anyway
        self.rlimits.append((which, value))

    def describe(self) -> str:
        """`memory 512m by cgroup v1, open_files 1024 by RLIMIT_NOFILE` for the upstream's log."""
        if self.limits is None:
            return "no limits"
        values = {
            "memory": self.limits.memory,
            "cpu": self.limits.cpu,
            "pids": self.limits.pids,
            "open_files": self.limits.open_files,
        }
        return ", ".join(f"{name} {values[name]} by {how}" for name, how in self.how.items())

    def preexec(self) -> None:
        """In the child, between fork and exec: die with the worker, join the cgroups, set the rlimits.

        Only system calls on values the parent prepared: the child of a threaded parent must not
        take locks another thread may have held at the fork.
        """
        process.set_parent_death_signal(signal.SIGKILL)
        pid = str(os.getpid()).encode()
        for fd in self._join_fds:
            os.write(fd, pid)
        for which, value in self.rlimits:
            resource.setrlimit(which, (value, value))

    def spawned(self) -> None:
        """After the fork: the child has joined; our copies of the descriptors are done with."""
        for fd in self._join_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._join_fds = []

    def exit_reason(self) -> str | None:
        """`memory limit 512m exceeded (oom)` when the kernel's OOM killer acted in the upstream's
        cgroup during this run, else None."""
        if self.limits is None or "memory" not in self.groups:
            return None
        if cgroups.oom_kills(*self.groups["memory"]) > self._oom_before:
            return f"memory limit {self.limits.memory} exceeded (oom)"
        return None

    async def release(self) -> None:
        """Kill whatever is left in the cgroups (nothing, after a staged stop) and remove them."""
        self.spawned()
        if not self.groups:
            return
        left = await cgroups.release(directory for _h, directory in self.groups.values())
        if left:
            logger.error("cgroups still busy after their processes were killed: %s", [str(p) for p in left])
        self.groups = {}


PROBE_NAME: Final = "mcpproxy-probe-{pid}"


def machine_support(found: dict[str, cgroups.Hierarchy] | None = None) -> dict[str, str]:
    """Per limit, what would enforce it for an upstream of a proxy run by this user on this machine:
    found by creating (and removing) a cgroup in each hierarchy, as `doctor` reports it."""
    found = cgroups.hierarchies() if found is None else found
    support: dict[str, str] = {}
    for controller in cgroups.CONTROLLERS:
        hierarchy = found.get(controller)
        if hierarchy is None:
            reason = "no cgroup hierarchy with this controller"
        else:
            try:
                probe = cgroups.make_cgroup(hierarchy, PROBE_NAME.format(pid=os.getpid()))
            except OSError as exc:
                reason = f"no writable cgroup under {hierarchy.base}: {exc.strerror or exc}"
            else:
                cgroups.try_remove(probe)
                support[controller] = f"cgroup {'v2' if hierarchy.v2 else 'v1'} under {hierarchy.base}"
                continue
        name = FALLBACK_RLIMITS.get(controller)
        support[controller] = f"{name} ({reason})" if name else f"not enforced ({reason})"
    support["open_files"] = "RLIMIT_NOFILE"
    return support
