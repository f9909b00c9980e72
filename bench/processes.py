"""Process trees the bench starts: launch in a session of their own, remember every descendant, leave none.

Each tree's leader leads a new session, so a signal to its group reaches the
processes that stayed in it; descendants that set up sessions of their own
(the proxy's workers and upstreams, a peer's stdio servers) are found by
walking /proc parent links while the tree runs, and are SIGKILLed at teardown
if they outlive the leader. `LEFT_BEHIND` collects anything that still
survives, so the bench can say so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Final

import trio

from tests.proxyctl import alive, descendants

STOP_DEADLINE_S: Final = 40.0
"""Above the proxy's own stop budget with default timeouts (close 10 s + kill 9 s + 5 s)."""
REAP_DEADLINE_S: Final = 5.0

LEFT_BEHIND: set[int] = set()


def cmdline(pid: int) -> str:
    """The process's command line as one string ('' once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    found = set()
    for child in descendants(pid):
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.add(child)
    return found


class Tree:
    """A started process and every descendant seen so far."""

    def __init__(self, process: trio.Process, launched: float) -> None:
        self.process = process
        self.launched = launched
        self.seen: set[int] = {process.pid}

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def since_launch(self) -> float:
        return time.perf_counter() - self.launched

    def remember(self) -> set[int]:
        """Walk /proc now; return the live descendants (also remembered for teardown)."""
        found = descendants(self.pid)
        self.seen |= found
        return found

    def signal_leader(self, sig: int) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def _kill_everything(self) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in alive(self.seen - {self.pid}):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def aclose(self) -> None:
        """SIGTERM the group and wait; then SIGKILL whatever of the tree is left. Bounded, shielded."""
        if self.running:
            self.remember()
        with trio.move_on_after(STOP_DEADLINE_S, shield=True):
            if self.running:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGTERM)
                await self.process.wait()
        self._kill_everything()
        with trio.move_on_after(REAP_DEADLINE_S, shield=True):
            await self.process.wait()
            while alive(self.seen - {self.pid}):
                await trio.sleep(0.05)
        LEFT_BEHIND.update(alive(self.seen))


@asynccontextmanager
async def open_tree(
    argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> AsyncIterator[Tree]:
    """Start `argv` (stdout and stderr to `log_path`) in a new session; stop it and its tree on exit."""
    with log_path.open("wb") as log:
        launched = time.perf_counter()
        process = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        tree = Tree(process, launched)
        try:
            yield tree
        finally:
            await tree.aclose()
