"""The cgroup manager and the confinement of one upstream: pure parsing of the kernel's files, then
real cgroups and real child processes (group `cgroups`: skipped, with the reason, only where the
kernel gives no writable hierarchy)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest
import trio

from bus.values import ResourceLimits
from services import cgroups
from services.limits import Confinement, machine_support

V1_MOUNTINFO: Final = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
35 30 0:31 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
"""
V1_OWN: Final = "5:pids:/\n4:memory:/sandbox/x\n2:cpu,cpuacct:/docker/abc/inner\n0::/\n"
V2_MOUNTINFO: Final = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_v1_hierarchies_are_found_per_controller_below_our_own_cgroup() -> None:
    found = cgroups.find_hierarchies(V1_MOUNTINFO, V1_OWN)
    assert found == {
        "memory": cgroups.Hierarchy("memory", Path("/sys/fs/cgroup/memory/sandbox/x"), v2=False),
        "pids": cgroups.Hierarchy("pids", Path("/sys/fs/cgroup/pids"), v2=False),
        # The mount shows the hierarchy from /docker/abc down: our path is relative to it.
        "cpu": cgroups.Hierarchy("cpu", Path("/sys/fs/cgroup/cpu,cpuacct/inner"), v2=False),
    }


def test_an_empty_unified_hierarchy_is_passed_over_for_the_v1_ones() -> None:
    found = cgroups.find_hierarchies(V1_MOUNTINFO, V1_OWN, ["memory"])
    assert not found["memory"].v2


def test_v2_is_used_for_the_controllers_our_cgroup_is_offered(tmp_path: Path) -> None:
    own = tmp_path / "user.slice" / "proxy.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    mountinfo = V2_MOUNTINFO.replace("/sys/fs/cgroup", str(tmp_path))
    found = cgroups.find_hierarchies(mountinfo, "0::/user.slice/proxy.service\n")
    assert {name: (h.base, h.v2) for name, h in found.items()} == {
        name: (own, True) for name in ("memory", "pids", "cpu")
    }


def test_no_cgroup_mounts_means_no_hierarchies() -> None:
    assert cgroups.find_hierarchies("22 1 0:5 / / rw - ext4 /dev/sda1 rw\n", "0::/\n") == {}


@pytest.fixture
def writable() -> dict[str, cgroups.Hierarchy]:
    support = machine_support()
    missing = {
        name: how for name, how in support.items() if name in ("memory", "pids") and "cgroup" not in how
    }
    if missing:
        pytest.skip(f"the kernel gives no writable cgroup hierarchy here: {missing}")
    return cgroups.hierarchies()


PROBE: Final = (
    "import json, resource\n"
    "print(json.dumps({'cgroup': open('/proc/self/cgroup').read(),"
    " 'nofile': resource.getrlimit(resource.RLIMIT_NOFILE)[0],"
    " 'as': resource.getrlimit(resource.RLIMIT_AS)[0]}))"
)


def run_confined(confinement: Confinement, code: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            preexec_fn=confinement.preexec,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        confinement.spawned()


@pytest.mark.requires("cgroups")
def test_the_child_alone_joins_its_cgroups_and_they_go_when_released(
    writable: dict[str, cgroups.Hierarchy],
) -> None:
    name = f"mcpproxy-test-{os.getpid()}/unit@1"
    limits = ResourceLimits(cgroup=name, memory="64m", memory_bytes=64 << 20, pids=32, open_files=77)
    confinement = Confinement.prepare(limits)
    assert confinement.how["memory"].startswith("cgroup") and confinement.how["open_files"] == "RLIMIT_NOFILE"
    seen = json.loads(run_confined(confinement, PROBE).stdout)
    assert f"{name}\n" in seen["cgroup"] and seen["nofile"] == 77
    assert name not in Path("/proc/self/cgroup").read_text()  # we, the worker, stay where we were
    assert confinement.exit_reason() is None
    directories = [directory for _h, directory in confinement.groups.values()]
    trio.run(confinement.release)
    assert not any(directory.exists() or directory.parent.exists() for directory in directories)


@pytest.mark.requires("cgroups")
def test_exceeding_the_memory_cap_is_reported_as_oom(writable: dict[str, cgroups.Hierarchy]) -> None:
    limits = ResourceLimits(cgroup=f"mcpproxy-test-{os.getpid()}/oom@1", memory="32m", memory_bytes=32 << 20)
    confinement = Confinement.prepare(limits)
    try:
        leak = "x = []\nwhile len(x) < 256: x.append(bytearray(4 << 20))"
        assert run_confined(confinement, leak).returncode == -9
        assert confinement.exit_reason() == "memory limit 32m exceeded (oom)"
    finally:
        trio.run(confinement.release)


def test_without_cgroups_memory_and_pids_fall_back_to_rlimits_and_cpu_is_not_enforced() -> None:
    limits = ResourceLimits(cgroup="unused", memory="256m", memory_bytes=256 << 20, cpu=0.5, pids=64)
    confinement = Confinement.prepare(limits, found={})
    assert confinement.how == {
        "memory": "RLIMIT_AS (no cgroup hierarchy with this controller)",
        "pids": "RLIMIT_NPROC (no cgroup hierarchy with this controller)",
        "cpu": "not enforced: no cgroup hierarchy with this controller",
    }
    seen = json.loads(run_confined(confinement, PROBE).stdout)
    assert seen["as"] == 256 << 20
    assert confinement.exit_reason() is None


def test_a_hierarchy_we_may_not_write_falls_back_too(tmp_path: Path) -> None:
    read_only = cgroups.Hierarchy("memory", tmp_path / "missing" / "cgroup", v2=False)
    limits = ResourceLimits(cgroup="g/s@1", memory="64m", memory_bytes=64 << 20)
    confinement = Confinement.prepare(limits, found={"memory": read_only})
    assert confinement.how["memory"].startswith("RLIMIT_AS (no writable cgroup under")
    assert resource.RLIMIT_AS in [which for which, _value in confinement.rlimits]
