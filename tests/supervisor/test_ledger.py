"""The process ledger and the data-dir lock, with real processes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from services import process
from supervisor.ledger import AlreadyRunningError, Ledger, Recorded, leftovers, lock_data_dir


def spawn_sleeper_group() -> tuple[subprocess.Popen[bytes], int]:
    """A leader in its own session with a child in the same group, like `npx` -> `node`."""
    leader = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300; wait"], start_new_session=True)
    return leader, leader.pid


def group_members(pgid: int) -> set[int]:
    """Live (not zombie) members of process group `pgid`."""
    return {pid for pid, (s, _pp, g, _st) in process.process_table().items() if g == pgid and s != "Z"}


def test_a_new_run_kills_what_a_crashed_run_recorded(tmp_path: Path) -> None:
    leader, pgid = spawn_sleeper_group()
    try:
        key = process.proc_key(leader.pid)
        assert key is not None
        crashed = Ledger(tmp_path)
        crashed.record("s", "upstream", [key])
        crashed.record_groups("s", [key])
        deadline = time.monotonic() + 10  # the shell forks its sleepers when the machine lets it
        while len(group_members(pgid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(group_members(pgid)) >= 2

        found = Ledger(tmp_path).sweep_leftovers()

        assert set(found) >= {leader.pid}
        leader.wait(timeout=10)
        deadline = time.monotonic() + 10  # SIGKILLed members leave the table once reaped
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not group_members(pgid)
    finally:
        if leader.poll() is None:
            leader.kill()


def wait_for_members(pgid: int, count: int) -> None:
    deadline = time.monotonic() + 10  # the shell forks its sleepers when the machine lets it
    while len(group_members(pgid)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(group_members(pgid)) >= count


def test_a_group_whose_leader_died_is_swept_when_a_recorded_member_is_still_in_it(tmp_path: Path) -> None:
    # The usual crash: the upstream leader dies with its worker (parent-death signal), its child lives on.
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!; exec sleep 300"], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert leader.stdout is not None
        child = int(leader.stdout.readline())
        leader_key, child_key = process.proc_key(leader.pid), process.proc_key(child)
        assert leader_key is not None and child_key is not None
        crashed = Ledger(tmp_path)
        crashed.record("s", "tree", [child_key])
        crashed.record_groups("s", [leader_key])
        leader.kill()
        leader.wait(timeout=10)
        assert group_members(leader.pid) == {child}

        assert Ledger(tmp_path).sweep_leftovers() == [child]
    finally:
        if leader.poll() is None:
            leader.kill()
        if process.proc_key(child) == child_key:
            os.kill(child, 9)


def test_a_group_named_without_its_leaders_start_time_is_left_alone(tmp_path: Path) -> None:
    leader, pgid = spawn_sleeper_group()
    try:
        wait_for_members(pgid, 3)  # the shell and its two sleepers
        before = group_members(pgid)
        (tmp_path / "processes.json").write_text(json.dumps({"s": {"pgids": [[pgid, 0]]}}))

        assert Ledger(tmp_path).sweep_leftovers() == []
        assert group_members(pgid) == before
    finally:
        os.killpg(pgid, 9)
        leader.wait(timeout=10)


def test_a_group_whose_number_was_reused_by_a_newer_leader_is_left_alone(tmp_path: Path) -> None:
    leader, pgid = spawn_sleeper_group()
    try:
        key = process.proc_key(leader.pid)
        assert key is not None
        wait_for_members(pgid, 3)
        before = group_members(pgid)
        # What a ledger of an earlier group with the same number holds: an older leader's start time.
        Ledger(tmp_path).record_groups("s", [(pgid, key[1] - 1)])

        assert Ledger(tmp_path).sweep_leftovers() == []
        assert group_members(pgid) == before
    finally:
        os.killpg(pgid, 9)
        leader.wait(timeout=10)


def test_the_sweep_decision_needs_a_live_leader_or_recorded_member_to_touch_a_group() -> None:
    table = {
        100: ("S", 1, 100, 5000),  # a leader of group 100, started at tick 5000
        101: ("S", 100, 100, 5001),
        201: ("S", 1, 200, 7001),  # group 200: its leader is gone
        202: ("S", 1, 200, 7002),
        300: ("Z", 1, 300, 8000),  # only a zombie is left of group 300
    }
    recorded = Recorded(
        keys={(201, 7001), (999, 1)},
        groups={(100, 5000), (200, 6999), (300, 8000), (400, 9000)},
    )
    assert leftovers(recorded, table, me=1) == (
        {(100, 5000), (101, 5001), (201, 7001), (202, 7002)},
        {},
    )
    found, skipped = leftovers(Recorded(keys=set(), groups={(100, 4000), (200, 6999)}), table, me=1)
    assert found == set()
    assert "reused" in skipped[100] and "reused" in skipped[200]
    assert leftovers(Recorded(keys=set(), groups={(100, 0)}), table, me=1)[1][100].endswith(
        "(a ledger of an older version)"
    )
    assert leftovers(Recorded(keys=set(), groups={(100, 5000)}), table, me=101)[0] == {(100, 5000)}


def test_a_recorded_pid_reused_by_another_process_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "300"])
    try:
        key = process.proc_key(other.pid)
        assert key is not None
        ledger = Ledger(tmp_path)
        ledger.record("s", "worker", [(other.pid, key[1] - 1)])  # same pid, different start time
        assert Ledger(tmp_path).sweep_leftovers() == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_ledger_is_empty_after_a_sweep_and_after_forget(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record("s", "worker", [(1, 1)])
    ledger.forget("s")
    assert (tmp_path / "processes.json").read_text().strip() == "{}"


def test_two_supervisors_cannot_share_a_data_dir(tmp_path: Path) -> None:
    fd = lock_data_dir(tmp_path / "run")
    try:
        with pytest.raises(AlreadyRunningError, match="already running"):
            lock_data_dir(tmp_path / "run")
    finally:
        os.close(fd)
    os.close(lock_data_dir(tmp_path / "run"))
