"""The process ledger and the data-dir lock, with real processes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from services import process
from supervisor.ledger import AlreadyRunningError, Ledger, lock_data_dir


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
        crashed.record_groups("s", [pgid])
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
