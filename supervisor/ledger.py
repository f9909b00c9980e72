"""The process ledger: every process the proxy is responsible for, written down, so a crash cannot hide one.

`<data_dir>/run/processes.json` holds, per server, the worker, the upstream
and its descendants as (pid, start time) pairs, and the upstream's process
group as (pgid, start time of its leader); a start time makes a reused pid
harmless. The supervisor rewrites it (atomically) when processes come and go,
and refreshes the descendants every REFRESH_INTERVAL_S. When the whole proxy
was SIGKILLed, nothing was left to run a staged stop: the next supervisor
start reads the ledger and kills what is still alive before it spawns
anything.

A group number is a pid too, and is reused once the group is empty. So the
sweep kills members of a recorded group only when the group is proven the
recorded one (`leftovers`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bus.errors import ProxyError
from services import cgroups, process
from services.config import write_atomically
from services.limits_config import GENERATION_MARK, cgroup_group
from services.private_files import make_private_dir

logger = logging.getLogger(__name__)

REFRESH_INTERVAL_S: Final = 5.0
SWEEP_TERM_GRACE_S: Final = 2.0
WORKER_STOP_MARGIN_S: Final = 1.0
"""Beyond its staged stop (close + kill timeouts), how long a previous run's worker is waited for."""


class AlreadyRunningError(ProxyError):
    """Another supervisor owns this data dir."""


def lock_data_dir(run_dir: Path) -> int:
    """Hold an exclusive lock for this process's lifetime; the kernel drops it if we die."""
    make_private_dir(run_dir)
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
        self.cgroup_group = cgroup_group(run_dir.parent)
        """The instance's cgroup (`limits`): every upstream cgroup of this data dir is in it."""
        self._hierarchies: dict[str, cgroups.Hierarchy] | None = None

    def _cgroups(self, prefix: str = "") -> list[Path]:
        if self._hierarchies is None:
            self._hierarchies = cgroups.hierarchies()
        return cgroups.leftovers(self.cgroup_group, prefix, self._hierarchies)

    def record(self, server: str, kind: str, keys: set[process.ProcKey] | list[process.ProcKey]) -> None:
        self._entries.setdefault(server, {})[kind] = sorted([pid, start] for pid, start in keys)
        self.flush()

    def record_groups(self, server: str, leaders: list[process.ProcKey]) -> None:
        """Record process groups by their leaders' (pid, start time): a pgid is its leader's pid."""
        self._entries.setdefault(server, {})["pgids"] = sorted([pgid, start] for pgid, start in leaders)
        self.flush()

    def forget(self, server: str) -> None:
        # Without fsync: what is forgotten is gone already, and only a machine crash (after which
        # no recorded process lives on) could bring the entry back. A stop of many servers makes one
        # forget each, on the supervisor's event loop: waiting for the disk each time stalled it.
        if self._entries.pop(server, None) is not None:
            self.flush(durable=False)

    async def release_cgroups(self, server: str) -> None:
        """After `server`'s worker is gone and its upstream's tree was stopped: remove its cgroups
        (`limits`), which a SIGKILLed worker could not, ending whatever is still in one (only ever
        ours: a dying upstream, a zombie not yet reaped). One still busy is removed at the next start."""
        if busy := await cgroups.release(self._cgroups(f"{server}{GENERATION_MARK}")):
            logger.warning("cgroups still busy; removed at the next start: %s", [str(path) for path in busy])

    def flush(self, *, durable: bool = True) -> None:
        text = json.dumps(self._entries, sort_keys=True)
        if text != self._written:
            write_atomically(self.path, text + "\n", durable=durable)
            self._written = text

    def _recorded(self) -> Recorded | None:
        """What a previous run wrote down (None: it wrote nothing)."""
        try:
            return parse_ledger(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except ValueError as exc:  # JSONDecodeError too
            logger.warning("%s: not a ledger this version can read (%s); nothing swept", self.path, exc)
            return Recorded(set(), set())

    async def let_workers_finish(self, grace_s: float) -> None:
        """A previous run's workers still alive were told to stop when their supervisor died (their
        parent-death signal): give them `grace_s` to finish their staged stops, which also end the
        orphans they adopted (a daemon its upstream double-forked, say, which the ledger may not have
        recorded yet), before `sweep_leftovers` SIGKILLs whatever is left. Then it ends and removes every
        cgroup of this instance: no worker of ours runs yet, so each is a previous run's."""
        recorded = self._recorded()
        table = process.process_table()
        workers = {
            key
            for key in (recorded.workers if recorded is not None else ())
            if (info := table.get(key[0])) and info[3] == key[1] and info[0] != "Z"
        }
        if workers:
            logger.info("waiting up to %gs for %d worker(s) of a previous run to stop", grace_s, len(workers))
            await process.wait_all_gone(workers, grace_s)
        # Then whatever their upstreams left in this instance's cgroups (only ever ours) is ended.
        if stale := self._cgroups():
            logger.warning("removing %d cgroup(s) left by a previous run", len(stale))
            if busy := await cgroups.release(stale):
                logger.error("cgroups of a previous run still busy: %s", [str(path) for path in busy])

    def sweep_leftovers(self) -> list[int]:
        """Kill whatever a previous, crashed run left behind. Returns the pids found alive."""
        recorded = self._recorded()
        if recorded is None:
            return []
        alive, skipped = leftovers(recorded, process.process_table(), os.getpid())
        for pgid, why in sorted(skipped.items()):
            logger.warning(
                "not killing process group %d named in %s: %s. Look at it (ps -o pid,lstart,args -g %d) "
                "and, if it is a leftover of mcpproxy, end it yourself (kill -- -%d)",
                pgid,
                self.path,
                why,
                pgid,
                pgid,
            )
        if alive:
            logger.warning(
                "killing %d process(es) left by a previous run: %s", len(alive), sorted(p for p, _ in alive)
            )
            process.signal_all(alive, signal.SIGKILL)
        self._entries = {}
        self.flush()
        return sorted(pid for pid, _ in alive)


@dataclass(frozen=True)
class Recorded:
    """What a ledger names: processes as (pid, start time), groups as (pgid, leader's start time)."""

    keys: set[process.ProcKey]
    groups: set[process.ProcKey]
    workers: frozenset[process.ProcKey] = frozenset()
    """The workers among `keys`: a previous run's that still live are stopping, and are let finish."""


def parse_ledger(data: Any) -> Recorded:
    """The ledger file's JSON as keys and groups; ValueError when it has another shape."""
    keys: set[process.ProcKey] = set()
    groups: set[process.ProcKey] = set()
    workers: set[process.ProcKey] = set()
    try:
        for entry in data.values():
            for kind, items in entry.items():
                pairs = {(int(first), int(second)) for first, second in items}
                (groups if kind == "pgids" else keys).update(pairs)
                if kind == "worker":
                    workers |= pairs
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"expected {{server: {{kind: [[pid, start], ...]}}}}: {exc}") from None
    return Recorded(keys, groups, frozenset(workers))


def leftovers(
    recorded: Recorded, table: Mapping[int, tuple[str, int, int, int]], me: int
) -> tuple[set[process.ProcKey], dict[int, str]]:
    """What of a previous run is still alive and provably its, and which recorded groups are spared (why).

    A recorded process is the same one while its start time matches. A recorded group is the same
    one while its number is not free for reuse: the kernel does not hand out a pid that is still a
    live process's pid or pgid. So the group is proven the recorded one when its leader lives with
    the recorded start time, or when a recorded process (start time matching) is still a member.
    Then its members that started no earlier than the leader are the previous run's. Otherwise the
    number may belong to an unrelated group that reused it, and nothing of the group is killed.
    """
    found = {
        key for key in recorded.keys if (info := table.get(key[0])) and info[3] == key[1] and info[0] != "Z"
    }
    skipped: dict[int, str] = {}
    for pgid, leader_start in sorted(recorded.groups):
        members = {(pid, info[3]) for pid, info in table.items() if info[2] == pgid and info[0] != "Z"}
        if not members:
            continue  # the group is gone
        leader = table.get(pgid)
        if not leader_start:
            skipped[pgid] = "it was recorded without its leader's start time (a ledger of an older version)"
        elif (leader is not None and leader[3] == leader_start) or members & found:
            found |= {key for key in members if key[1] >= leader_start}
        else:
            skipped[pgid] = (
                "its leader and every recorded member are gone, so the group number may have been reused"
            )
    return {key for key in found if key[0] != me}, skipped


async def wait_gone(pids: list[int]) -> None:
    keys = {key for pid in pids if (key := process.proc_key(pid)) is not None}
    await process.wait_all_gone(keys, SWEEP_TERM_GRACE_S)


def refresh_descendants(ledger: Ledger, trees: dict[str, tuple[list[int], int]]) -> None:
    """Record the current descendants of each server's (worker and upstream pids, upstream pgid)."""
    table = process.process_table()
    for server, (roots, pgid) in trees.items():
        ledger.record(server, "tree", process.tree_of(roots, [pgid], table))
