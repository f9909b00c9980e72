"""Hardening seen from outside: the start-up sweep spares processes that are not ours.

Each test starts a real `mcpproxy serve` from its CLI and checks, through the
kernel's process table, HTTP and the data dir, what a user can rely on.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import process
from tests.proxyctl import echo_server, running_proxy

pytestmark = pytest.mark.system

REAP_TIMEOUT_S = 10.0


@pytest.fixture
def unrelated_groups() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two `setsid sleep` processes, each leading a group of its own, that mcpproxy never started."""
    sleepers = [subprocess.Popen(["sleep", "300"], start_new_session=True) for _ in range(2)]
    try:
        yield sleepers
    finally:
        for sleeper in sleepers:
            if sleeper.poll() is None:
                sleeper.kill()
            sleeper.wait(timeout=REAP_TIMEOUT_S)


async def test_the_start_up_sweep_spares_unrelated_groups_whose_numbers_a_ledger_names(
    tmp_path: Path, unrelated_groups: list[subprocess.Popen[bytes]]
) -> None:
    old_format, reused = unrelated_groups
    reused_key = process.proc_key(reused.pid)
    assert reused_key is not None
    run_dir = tmp_path / "data" / "run"
    run_dir.mkdir(parents=True)
    # A ledger from an older version (no start time), and one whose group had a leader that started
    # earlier than the process that holds the number now (the number was reused).
    (run_dir / "processes.json").write_text(
        json.dumps(
            {
                "old": {"pgids": [[old_format.pid, 0]]},
                "gone": {"pgids": [[reused.pid, reused_key[1] - 1]]},
            }
        )
    )

    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        assert old_format.poll() is None and reused.poll() is None
        assert process.proc_key(reused.pid) == reused_key
        log = (tmp_path / "proxy.log").read_text()
        assert f"not killing process group {old_format.pid} " in log
        assert f"not killing process group {reused.pid} " in log
        assert "older version" in log and "reused" in log
