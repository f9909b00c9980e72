"""Finding what is left of a process tree, with real processes: group members and adopted orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import process

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def sleeper_group() -> Iterator[subprocess.Popen[bytes]]:
    """A leader in its own session with a child in its group, like `npx` -> `node`."""
    leader = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300; wait"], start_new_session=True)
    yield leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
    leader.wait()


def test_a_group_with_members_is_found_and_a_killed_one_is_not(
    sleeper_group: subprocess.Popen[bytes],
) -> None:
    pgid = sleeper_group.pid
    deadline = time.monotonic() + 10
    while len(members := process.tree_of([], [pgid])) < 3:  # sh and both its sleeps
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert process.group_exists(pgid)
    assert process.live_tree([], [pgid]) == members
    os.killpg(pgid, signal.SIGKILL)
    sleeper_group.wait()
    while process.live_tree([], [pgid]):  # SIGKILLed members linger only as zombies, which do not count
        assert time.monotonic() < deadline
        time.sleep(0.01)


def run_as_subreaper(body: str) -> str:
    """Run `body` in a fresh interpreter that is a child subreaper (as the supervisor and workers are)."""
    script = "from services import process\nprocess.become_subreaper()\n" + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_orphan_that_escaped_the_group_is_found_as_adopted_and_stopped() -> None:
    out = run_as_subreaper(
        """
        import os, subprocess, time, trio
        leader = subprocess.Popen(
            ["sh", "-c", "setsid sleep 300 & echo $!"], stdout=subprocess.PIPE, start_new_session=True
        )
        orphan = int(leader.stdout.readline())
        leader.wait()
        deadline = time.monotonic() + 10
        while process.proc_info(orphan)[1] != os.getpid():  # re-parented to us
            assert time.monotonic() < deadline
            time.sleep(0.01)
        found = process.live_tree([leader.pid], [leader.pid], adopted_except=())
        assert {pid for pid, _ in found} == {orphan}, found
        assert trio.run(process.terminate_tree, [leader.pid], [leader.pid], 5.0) == set()
        assert process.live_tree([leader.pid], [leader.pid], adopted_except=()) == set()
        print("stopped", orphan)
        """
    )
    assert out.startswith("stopped")


def test_nothing_is_left_after_a_polite_exit() -> None:
    out = run_as_subreaper(
        """
        import subprocess
        leader = subprocess.Popen(["sh", "-c", "exit 0"], start_new_session=True)
        leader.wait()
        print(len(process.live_tree([leader.pid], [leader.pid], adopted_except=())))
        """
    )
    assert out.strip() == "0"


def test_a_child_whose_parent_died_before_it_armed_the_parent_death_signal_ends_at_once() -> None:
    """The gap between spawn and prctl: `mcpproxy serve` names itself in MCPPROXY_PARENT_PID, and a
    gateway or supervisor whose parent is no longer that process stops instead of living on."""
    from cli.serve_launch import PARENT_PID_ENV as LAUNCHER_NAME

    assert LAUNCHER_NAME == process.PARENT_PID_ENV
    code = "from services import process as p; p.die_with_parent(15); print('alive')"  # 15: SIGTERM
    env = {**os.environ, process.PARENT_PID_ENV: "1"}  # pid 1 is not this child's parent
    orphan = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=False
    )
    assert orphan.returncode == -signal.SIGTERM and orphan.stdout == b""
    env[process.PARENT_PID_ENV] = str(os.getpid())  # its real parent: it lives on
    child = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=False
    )
    assert child.returncode == 0 and child.stdout == b"alive\n"
