"""The process ledger: every process the proxy is responsible for, written down, so a crash cannot hide one.

`<data_dir>/run/processes.json` holds, per server, the worker and the
upstream's process group and descendants as (pid, start time) pairs; a start
time makes a reused pid harmless. The supervisor rewrites it (atomically)
when processes come and go, and refreshes the descendants every
REFRESH_INTERVAL_S. When the whole proxy was SIGKILLed, nothing was left to
run a staged stop: the next supervisor start reads the ledger and kills what
is still alive before it spawns anything.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
from pathlib import Path
from typing import Final

from bus.errors import ProxyError
from services import process
from services.config import write_atomically

logger = logging.getLogger(__name__)

REFRESH_INTERVAL_S: Final = 5.0
SWEEP_TERM_GRACE_S: Final = 2.0


class AlreadyRunningError(ProxyError):
    """Another supervisor owns this data dir."""


def lock_data_dir(run_dir: Path) -> int:
    """Hold an exclusive lock for this process's lifetime; the kernel drops it if we die."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(run_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunningError(
            f"another mcpproxy is already running with the data dir {run_dir.parent}; stop it first "
            "or use --data-dir to run a second one"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class Ledger:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "processes.json"
        self._entries: dict[str, dict[str, list[list[int]]]] = {}
        self._written: str | None = None

    def record(self, server: str, kind: str, keys: set[process.ProcKey] | list[process.ProcKey]) -> None:
        self._entries.setdefault(server, {})[kind] = sorted([pid, start] for pid, start in keys)
        self.flush()

    def record_groups(self, server: str, pgids: list[int]) -> None:
        self._entries.setdefault(server, {})["pgids"] = [[pgid, 0] for pgid in pgids]
        self.flush()

    def forget(self, server: str) -> None:
        # Without fsync: what is forgotten is gone already, and only a machine crash (after which
        # no recorded process lives on) could bring the entry back. A stop of many servers makes one
        # forget each, on the supervisor's event loop: waiting for the disk each time stalled it.
        if self._entries.pop(server, None) is not None:
            self.flush(durable=False)

    def flush(self, *, durable: bool = True) -> None:
        text = json.dumps(self._entries, sort_keys=True)
        if text != self._written:
            write_atomically(self.path, text + "\n", durable=durable)
            self._written = text

    def sweep_leftovers(self) -> list[int]:
        """Kill whatever a previous, crashed run left behind. Returns the pids found alive."""
        try:
            previous = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        keys: set[process.ProcKey] = set()
        pgids: set[int] = set()
        for entry in previous.values():
            for kind, items in entry.items():
                if kind == "pgids":
                    pgids |= {pgid for pgid, _ in items}
                else:
                    keys |= {(pid, start) for pid, start in items}
        alive = {key for key in keys if process.is_alive(key)}
        # Group members of a recorded upstream group are ours only if they started after its leader did.
        leader_start = {pid: start for pid, start in keys}
        table = process.process_table()
        for pid, (state, _ppid, pgid, start) in table.items():
            if pgid in pgids and state != "Z" and start >= leader_start.get(pgid, 0) and pid != os.getpid():
                alive.add((pid, start))
        if alive:
            logger.warning(
                "killing %d process(es) left by a previous run: %s", len(alive), sorted(p for p, _ in alive)
            )
            process.signal_all(alive, signal.SIGKILL)
        self._entries = {}
        self.flush()
        return sorted(pid for pid, _ in alive)


async def wait_gone(pids: list[int]) -> None:
    keys = {key for pid in pids if (key := process.proc_key(pid)) is not None}
    await process.wait_all_gone(keys, SWEEP_TERM_GRACE_S)


def refresh_descendants(ledger: Ledger, trees: dict[str, tuple[list[int], int]]) -> None:
    """Record the current descendants of each server's (worker and upstream pids, upstream pgid)."""
    table = process.process_table()
    for server, (roots, pgid) in trees.items():
        ledger.record(server, "tree", process.tree_of(roots, [pgid], table))
