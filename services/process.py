"""Child processes we own: spawn, wait, reap, find every descendant, and the staged kill.

Why not `trio.lowlevel.open_process`: trio forks from a worker thread, and a
parent-death signal (PR_SET_PDEATHSIG) fires when the *thread* that forked
the child exits, which trio's thread cache does after idling. We fork from
the calling (main) thread and wait with a pidfd instead.

Process groups: every child we spawn leads a new session, so its pgid is its
pid and `killpg` reaches its whole tree, except descendants that called
`setsid()`. Those are found by walking /proc parent links, and, once their
parents die, they are re-parented to us because both the supervisor and the
worker mark themselves as child subreapers.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, NoReturn

import trio

from bus.errors import SpawnError

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG: Final = 1
PR_SET_CHILD_SUBREAPER: Final = 36
KILL_POLL_S: Final = 0.1
REAP_GRACE_S: Final = 2.0
STAT_READ_BYTES: Final = 4096

_libc = ctypes.CDLL(None, use_errno=True)

ProcKey = tuple[int, int]
"""(pid, start time in clock ticks): a process identity that survives pid reuse."""


PARENT_PID_ENV: Final = "MCPPROXY_PARENT_PID"
"""Set by `mcpproxy serve` for the gateway and the supervisor: the parent they must die with."""


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send `sig` to this process when its parent thread dies."""
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def die_with_parent(sig: int) -> None:
    """`sig` when the parent dies, including a parent that died before this process could ask the
    kernel for it (between its spawn and this call, no signal would ever come): when the parent named
    in PARENT_PID_ENV is no longer our parent, `sig` now."""
    set_parent_death_signal(sig)
    expected = os.environ.get(PARENT_PID_ENV, "")
    if expected.isdigit() and os.getppid() != int(expected):
        os.kill(os.getpid(), sig)


def exit_now(code: int) -> NoReturn:
    """End this process once its work is done: exit handlers run and stdio is flushed, but the
    interpreter's teardown (freeing every module and object, ~50 ms and several times that on a
    busy machine) is skipped. For the end of `mcpproxy serve` and the supervisor, whose stop every
    caller waits for, with no file left open for writing but stdio."""
    atexit._run_exitfuncs()  # logging.shutdown and coverage's data file, among others
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def become_subreaper() -> None:
    """Orphaned descendants get re-parented to us instead of init, so we can kill and reap them."""
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        logger.warning("cannot become a child subreaper: errno %d", ctypes.get_errno())


def _stat_fields(pid: int | str) -> list[bytes] | None:
    # Plain os.open/os.read: a staged stop reads every process's stat, in each worker and the
    # supervisor at once, and this is ~2x faster than a Path round trip.
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    try:
        raw = os.read(fd, STAT_READ_BYTES)
    except ProcessLookupError:  # the process went away between open and read
        return None
    finally:
        os.close(fd)
    # The command name (field 2) may contain spaces and parentheses.
    tail = raw[raw.rfind(b")") + 2 :].split()
    return tail if len(tail) > 19 else None  # tail[0] is field 3 (state)


def _info(fields: list[bytes]) -> tuple[str, int, int, int]:
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19])


def proc_info(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, start time) of a live process, or None."""
    fields = _stat_fields(pid)
    return None if fields is None else _info(fields)


def proc_key(pid: int) -> ProcKey | None:
    info = proc_info(pid)
    return None if info is None else (pid, info[3])


def is_alive(key: ProcKey) -> bool:
    """True while the process exists, is the same process, and is not a zombie."""
    info = proc_info(key[0])
    return info is not None and info[3] == key[1] and info[0] != "Z"


def process_table() -> dict[int, tuple[str, int, int, int]]:
    """pid -> (state, ppid, pgid, start time) for every visible process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat_fields(name)) is not None:
            table[int(name)] = _info(fields)
    return table


def tree_of(
    roots: Iterable[int],
    pgids: Iterable[int] = (),
    table: Mapping[int, tuple[str, int, int, int]] | None = None,
) -> set[ProcKey]:
    """Every live process that is a root, a descendant of one, or a member of one of `pgids`."""
    table = process_table() if table is None else table
    roots = list(roots)
    children: dict[int, list[int]] = {}
    for pid, (_state, ppid, _pgid, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    groups = set(pgids)
    found: set[int] = {pid for pid, info in table.items() if info[2] in groups}
    stack = [pid for pid in roots if pid in table]
    while stack:
        pid = stack.pop()
        if pid in found and pid not in roots:
            continue
        found.add(pid)
        stack.extend(children.get(pid, ()))
    return {(pid, table[pid][3]) for pid in found if table[pid][0] != "Z"}


def group_exists(pgid: int) -> bool:
    """Whether process group `pgid` still has a member (a zombie counts), without reading /proc."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # a member we may not signal: it exists all the same
    return True


def _my_children() -> set[int] | None:
    """This process's children (zombies too), from each thread's /proc children list; None where the
    kernel does not provide that list (CONFIG_PROC_CHILDREN)."""
    found: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            fd = os.open(f"/proc/self/task/{tid}/children", os.O_RDONLY)
        except FileNotFoundError:
            if int(tid) == os.getpid():
                return None  # the main thread always exists: the kernel has no such file
            continue  # a thread that just ended
        try:
            while chunk := os.read(fd, STAT_READ_BYTES):
                found.update(int(pid) for pid in chunk.split())
        finally:
            os.close(fd)
    return found


def live_tree(
    roots: Iterable[int], pgids: Iterable[int] = (), *, adopted_except: Iterable[int] | None = None
) -> set[ProcKey]:
    """`tree_of(roots, pgids)`, plus (unless `adopted_except` is None) our children but those: the
    orphans adopted as a subreaper. One /proc scan; none when cheap checks show that no root is
    left, no group has a member and we have no other child, as at the end of every polite stop."""
    roots, pgids = list(roots), list(pgids)
    skip = None if adopted_except is None else set(adopted_except)
    children = _my_children() if skip is not None else set()
    if (
        children is not None
        and not (children - (skip or set()))
        and all(proc_info(pid) is None for pid in roots)
        and not any(group_exists(pgid) for pgid in pgids)
    ):
        return set()
    table = process_table()
    found = tree_of(roots, pgids, table)
    if skip is not None:
        found |= children_of_me(skip, table)
    return found


def children_of_me(
    exclude: Iterable[int] = (), table: Mapping[int, tuple[str, int, int, int]] | None = None
) -> set[ProcKey]:
    """Live children of this process, less `exclude`: with a subreaper, the adopted orphans."""
    table = process_table() if table is None else table
    me = os.getpid()
    skip = set(exclude)
    return {
        (pid, info[3]) for pid, info in table.items() if info[1] == me and pid not in skip and info[0] != "Z"
    }


def signal_all(keys: Iterable[ProcKey], sig: int) -> None:
    """Signal each process that is still the one we mean (pid reuse is checked)."""
    for key in keys:
        if is_alive(key):
            with contextlib.suppress(ProcessLookupError):
                os.kill(key[0], sig)


class Child:
    """A child process of ours. It leads its own session: pgid == pid."""

    def __init__(self, popen: subprocess.Popen[bytes] | None, pid: int | None = None) -> None:
        self.popen = popen
        self.pid = popen.pid if popen is not None else int(pid or 0)
        self.pgid = self.pid
        self.key: ProcKey | None = proc_key(self.pid)
        self.returncode: int | None = None
        self._exited = trio.Event()
        self._watching = False
        self._pidfd = os.pidfd_open(self.pid)
        _REGISTRY[self.pid] = self

    @classmethod
    def adopt(cls, pid: int) -> Child:
        """A process that became our child by re-parenting (we are a subreaper)."""
        return cls(None, pid)

    @property
    def running(self) -> bool:
        return self.returncode is None

    def _set_exit(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        if self.popen is not None:
            self.popen.returncode = self.returncode
        self._exited.set()
        _REGISTRY.pop(self.pid, None)
        trio.lowlevel.notify_closing(self._pidfd)
        os.close(self._pidfd)

    async def wait(self) -> int:
        """Wait for exit and reap; the return code is negative for a signal, like subprocess."""
        # trio allows one waiter per fd: the first caller watches the pidfd, the rest the event.
        while self.returncode is None:
            if self._watching:
                await self._exited.wait()
                continue
            self._watching = True
            try:
                await trio.lowlevel.wait_readable(self._pidfd)
            except trio.ClosedResourceError:
                pass  # someone else reaped it and closed the pidfd
            finally:
                self._watching = False
            reap_children()
        return self.returncode

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)


_REGISTRY: dict[int, Child] = {}


def reap_children() -> int:
    """Reap every exited child; report exits of our Child objects. Returns how many were reaped."""
    reaped = 0
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1
        child = _REGISTRY.get(pid)
        if child is not None:
            child._set_exit(status)
        else:
            logger.debug("reaped orphan %d", pid)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    pass_fds: Sequence[int] = (),
    preexec_fn: Callable[[], None] | None = None,
) -> Child:
    """Start `argv` as the leader of a new session, forking from this thread."""
    try:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
            preexec_fn=preexec_fn,
            close_fds=True,
        )
    except FileNotFoundError as exc:
        raise SpawnError(f"command not found: {argv[0]!r} (check `command` and PATH)") from exc
    except PermissionError as exc:
        raise SpawnError(f"command not executable: {argv[0]!r}") from exc
    except NotADirectoryError as exc:
        raise SpawnError(f"working_dir is not a directory: {cwd!r}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOENT and cwd:
            raise SpawnError(f"working_dir does not exist: {cwd!r}") from exc
        raise SpawnError(f"cannot start {argv[0]!r}: {exc.strerror}") from exc
    except subprocess.SubprocessError as exc:  # preexec_fn failed in the child (e.g. joining a cgroup)
        raise SpawnError(f"cannot start {argv[0]!r}: {exc}") from exc
    return Child(popen)


def _parent_death_kill() -> None:
    set_parent_death_signal(signal.SIGKILL)


PARENT_DEATH_KILL: Final = _parent_death_kill
"""preexec_fn for upstreams: die with the worker even if the worker is SIGKILLed."""


async def wait_all_gone(keys: set[ProcKey], timeout_s: float) -> set[ProcKey]:
    """Poll every KILL_POLL_S until all of `keys` are gone or `timeout_s` passes; return survivors."""
    with trio.move_on_after(timeout_s):
        while True:
            reap_children()
            keys = {key for key in keys if is_alive(key)}
            if not keys:
                return keys
            await trio.sleep(KILL_POLL_S)
    reap_children()
    return {key for key in keys if is_alive(key)}


async def terminate_tree(
    roots: Iterable[int], pgids: Iterable[int], kill_timeout_s: float, *, adopted: bool = True
) -> set[ProcKey]:
    """SIGTERM every process of the tree, poll, SIGKILL what is left after `kill_timeout_s`.

    The tree is: the roots, their descendants, the members of `pgids`, and (with
    `adopted`) every orphan re-parented to us. Returns the processes that
    survived even SIGKILL (normally none).
    """
    roots = list(roots)
    pgids = list(pgids)
    # Adopted orphans are every child of ours but the ones we spawned (and track) ourselves.
    adopted_except = (_REGISTRY.keys() - set(roots)) if adopted else None
    targets = live_tree(roots, pgids, adopted_except=adopted_except)
    if not targets:
        return set()
    logger.info("SIGTERM to %d process(es): %s", len(targets), sorted(pid for pid, _ in targets))
    signal_all(targets, signal.SIGTERM)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    survivors = await wait_all_gone(targets, kill_timeout_s)
    # Processes forked during the grace period are caught by a fresh look.
    survivors |= live_tree(roots, pgids, adopted_except=(_REGISTRY.keys() - set(roots)) if adopted else None)
    if not survivors:
        return set()
    logger.warning("SIGKILL to %d process(es) that ignored SIGTERM", len(survivors))
    signal_all(survivors, signal.SIGKILL)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    return await wait_all_gone(survivors, REAP_GRACE_S)
