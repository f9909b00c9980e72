"""Control groups for upstreams: one child cgroup per upstream, below the proxy's own cgroup.

cgroup v2 where the unified hierarchy offers a controller to us, else the v1 hierarchy of that
controller (`/sys/fs/cgroup/memory`, `pids`, `cpu`); a machine may mount v1 controllers beside an
empty v2 `unified`, as these do. A controller neither offers, or whose directory we may not
write, is not available and its limit falls back to an rlimit (services/limits.py).

Layout, in each hierarchy used: `<own cgroup>/mcpproxy-<instance>/<server>@<generation>`. The
upstream joins its cgroup itself, between fork and exec (`join_in_child`), so not one of its
instructions runs, and nothing it forks escapes, outside the cap; the worker never joins it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from services import process

CONTROLLERS: Final = ("memory", "pids", "cpu")
CFS_PERIOD_US: Final = 100_000
"""The CPU period a quota is a share of (the kernel's default, 100 ms)."""
EMPTY_POLL_S: Final = 0.05
RELEASE_TIMEOUT_S: Final = 5.0
"""Killing a cgroup's processes and removing it: SIGKILL is not ignorable, so this covers only
reaping and the kernel's own bookkeeping."""
CREATE_ATTEMPTS: Final = 3
"""A sibling's worker may remove the (empty) instance directory while we create ours in it."""


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller is used: the proxy's own cgroup in its hierarchy."""

    controller: str
    base: Path
    v2: bool


def _mountinfo(text: str) -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, super options) of every cgroup mount."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 10:
            continue
        after = line.split(" - ", 1)[1].split()
        if after[0] in ("cgroup", "cgroup2"):
            found.append(
                (fields[3], fields[4], after[0], set(after[2].split(",")) if len(after) > 2 else set())
            )
    return found


def _own_paths(text: str) -> dict[str, str]:
    """Our cgroup path per v1 controller, and under "" the v2 one, from /proc/self/cgroup."""
    paths = {}
    for line in text.splitlines():
        _id, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _within(mount: str, root: str, path: str) -> Path:
    """Our cgroup's directory: the mount shows the hierarchy from `root` down."""
    relative = path[len(root) :] if root != "/" and path.startswith(root) else path
    return Path(mount) / relative.lstrip("/")


def find_hierarchies(
    mountinfo: str, own_cgroup: str, controllers: Iterable[str] = CONTROLLERS
) -> dict[str, Hierarchy]:
    """Per controller, where the proxy's own cgroup is (v2 preferred); pure, for any machine's files."""
    mounts = _mountinfo(mountinfo)
    own = _own_paths(own_cgroup)
    found: dict[str, Hierarchy] = {}
    unified = next((m for m in mounts if m[2] == "cgroup2"), None)
    offered: set[str] = set()
    if unified is not None and "" in own:
        base = _within(unified[1], unified[0], own[""])
        with contextlib.suppress(OSError):
            offered = set((base / "cgroup.controllers").read_text().split())
    for controller in controllers:
        if unified is not None and controller in offered:
            found[controller] = Hierarchy(controller, _within(unified[1], unified[0], own[""]), v2=True)
            continue
        mount = next((m for m in mounts if m[2] == "cgroup" and controller in m[3]), None)
        if mount is not None and controller in own:
            found[controller] = Hierarchy(controller, _within(mount[1], mount[0], own[controller]), v2=False)
    return found


def hierarchies(controllers: Iterable[str] = CONTROLLERS) -> dict[str, Hierarchy]:
    """This process's hierarchies per controller (an empty map off Linux or without cgroups)."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        own = Path("/proc/self/cgroup").read_text()
    except OSError:
        return {}
    return find_hierarchies(mountinfo, own, controllers)


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _enable_v2(directory: Path, controller: str) -> None:
    """Let `directory`'s children use `controller` (v2 hands controllers down level by level)."""
    with contextlib.suppress(OSError):
        if controller in (directory / "cgroup.subtree_control").read_text().split():
            return
    _write(directory / "cgroup.subtree_control", f"+{controller}")


def make_cgroup(hierarchy: Hierarchy, name: str) -> Path:
    """Create `<base>/<name>` (its parents too) and return it; OSError when we may not."""
    parts = name.split("/")
    for attempt in range(CREATE_ATTEMPTS):
        directory = hierarchy.base
        try:
            for part in parts:
                if hierarchy.v2:
                    _enable_v2(directory, hierarchy.controller)
                directory = directory / part
                with contextlib.suppress(FileExistsError):
                    directory.mkdir()
            return directory
        except FileNotFoundError:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def set_limit(hierarchy: Hierarchy, directory: Path, value: int | float) -> None:
    """Write one controller's cap into `directory` (memory in bytes, cpu in CPUs, pids a count)."""
    match hierarchy.controller, hierarchy.v2:
        case "memory", True:
            _write(directory / "memory.max", str(int(value)))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to hold back
                _write(directory / "memory.swap.max", "0")
        case "memory", False:
            _write(directory / "memory.limit_in_bytes", str(int(value)))
            # Without this the cgroup would swap instead of meeting its cap, where there is swap.
            with contextlib.suppress(OSError):
                _write(directory / "memory.memsw.limit_in_bytes", str(int(value)))
            with contextlib.suppress(OSError):
                _write(directory / "memory.swappiness", "0")
        case "pids", _:
            _write(directory / "pids.max", str(int(value)))
        case "cpu", True:
            _write(directory / "cpu.max", f"{round(value * CFS_PERIOD_US)} {CFS_PERIOD_US}")
        case "cpu", False:
            _write(directory / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(directory / "cpu.cfs_quota_us", str(round(value * CFS_PERIOD_US)))
        case _:
            raise ValueError(f"no cap for controller {hierarchy.controller!r}")


def oom_kills(hierarchy: Hierarchy, directory: Path) -> int:
    """How many processes the kernel's OOM killer ended in this memory cgroup (0 if unknown)."""
    name = "memory.events" if hierarchy.v2 else "memory.oom_control"
    try:
        text = (directory / name).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def members(directory: Path) -> list[int]:
    """The pids in the cgroup (its zombies, not yet reaped, may still count)."""
    try:
        return [int(pid) for pid in (directory / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def kill_members(directory: Path) -> int:
    """SIGKILL every process in the cgroup; how many there were. A cgroup's membership is the
    kernel's own, so no pid here can be a stranger's reused number."""
    pids = members(directory)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def try_remove(directory: Path) -> bool:
    """rmdir the cgroup (a cgroup directory's files go with it); True once it is gone."""
    try:
        directory.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
    return True


async def release(directories: Iterable[Path], timeout_s: float = RELEASE_TIMEOUT_S) -> list[Path]:
    """Kill whatever is left in each cgroup and remove it, then its instance directory if that is
    empty; returns the cgroups still there after `timeout_s` (normally none)."""
    given = list(dict.fromkeys(directories))
    left = list(given)
    with trio.move_on_after(timeout_s):
        while left:
            for directory in left:
                kill_members(directory)
            process.reap_children()  # zombies of ours keep a cgroup busy until reaped
            left = [directory for directory in left if not try_remove(directory)]
            if left:
                await trio.sleep(EMPTY_POLL_S)
    for parent in {directory.parent for directory in given}:
        with contextlib.suppress(OSError):
            parent.rmdir()  # fails while a sibling upstream's cgroup is in it: then it is theirs to remove
    return left


def leftovers(group: str, prefix: str = "", found: Mapping[str, Hierarchy] | None = None) -> list[Path]:
    """The upstream cgroups of instance `group` whose name starts with `prefix`, in every hierarchy."""
    result = []
    for hierarchy in (hierarchies() if found is None else found).values():
        directory = hierarchy.base / group
        with contextlib.suppress(OSError):
            result.extend(sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith(prefix)))
    return list(dict.fromkeys(result))  # v2: every controller shares one directory
