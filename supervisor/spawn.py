"""Starting worker processes: forked by the zygote when it runs, else `python -m services.worker`.

A zygote-forked worker is re-parented to us (we are a child subreaper), so we
wait for it and reap it like any child; it holds no lifeline pipe and stops
with us through its parent-death signal instead. Both interpreters start with
`-P`: our working directory (the user's) must not come first on their sys.path.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Final

import trio

from services import process

logger = logging.getLogger(__name__)

ZYGOTE_TIMEOUT_S: Final = 10.0
ZYGOTE_WARMUP_TIMEOUT_S: Final = 60.0
"""The first answer also waits for the zygote's imports, which a loaded machine can slow a lot."""


@dataclass
class WorkerProcess:
    """A spawned worker and, for a directly spawned one, the write end of its lifeline."""

    child: process.Child
    lifeline_w: int = -1

    def close_lifeline(self) -> None:
        if self.lifeline_w >= 0:
            os.close(self.lifeline_w)
            self.lifeline_w = -1


def spawn_worker(server: str, generation: int, control_endpoint: str, log_level: str) -> WorkerProcess:
    """Fork a fresh interpreter for the worker. Its stdin is the lifeline: EOF means the supervisor died."""
    lifeline_r, lifeline_w = os.pipe()
    os.set_inheritable(lifeline_w, False)
    try:
        child = process.spawn(
            [sys.executable, "-P", "-m", "services.worker", "--server", server,
             "--generation", str(generation), "--control", control_endpoint, "--lifeline-fd", "0",
             "--log-level", log_level],
            env=dict(os.environ),
            stdin=lifeline_r,
        )  # fmt: skip
    finally:
        os.close(lifeline_r)
    return WorkerProcess(child=child, lifeline_w=lifeline_w)


class Spawner:
    """Asks the zygote for workers; falls back to a fresh interpreter whenever the zygote cannot help.

    The zygote is started once, by the first worker that needs it or by `start_zygote`, whichever
    comes first: its warm-up (~1 s of CPU) must not compete with the gateway's start when no
    server is waiting for it.
    """

    def __init__(self, control_endpoint: str, log_level: str) -> None:
        self.control_endpoint = control_endpoint
        self.log_level = log_level
        self._zygote: process.Child | None = None
        self._socket: trio.socket.SocketType | None = None
        self._buffer = b""
        self._lock = trio.Lock()
        self._started = False
        self._warm = False

    def start_zygote(self) -> None:
        """Start the zygote unless it was started before (a failed zygote is not started again)."""
        if self._started:
            return
        self._started = True
        ours, theirs = socket.socketpair()
        try:
            self._zygote = process.spawn(
                [sys.executable, "-P", "-m", "services.worker.zygote"], stdin=theirs.fileno()
            )
        except Exception as exc:  # no zygote: every worker gets a fresh interpreter
            logger.warning("worker zygote unavailable (%s): starting workers directly", exc)
            ours.close()
            return
        finally:
            theirs.close()
        self._socket = trio.socket.from_stdlib_socket(ours)

    async def spawn(self, server: str, generation: int) -> WorkerProcess:
        self.start_zygote()
        if self._socket is not None and self._zygote is not None and self._zygote.running:
            try:
                async with self._lock:
                    pid = await self._ask(server, generation)
                return WorkerProcess(child=process.Child.adopt(pid))
            except Exception as exc:  # any zygote trouble: fall back, never fail the start for it
                logger.warning("worker zygote failed (%s): starting %s directly", exc, server)
                self.stop_zygote()
        return spawn_worker(server, generation, self.control_endpoint, self.log_level)

    async def _ask(self, server: str, generation: int) -> int:
        assert self._socket is not None
        request = {"server": server, "generation": generation, "control": self.control_endpoint,
                   "log_level": self.log_level}  # fmt: skip
        with trio.fail_after(ZYGOTE_TIMEOUT_S if self._warm else ZYGOTE_WARMUP_TIMEOUT_S):
            data = json.dumps(request).encode() + b"\n"
            while data:
                data = data[await self._socket.send(data) :]
            while b"\n" not in self._buffer:
                chunk = await self._socket.recv(4096)
                if not chunk:
                    raise OSError("the zygote closed its socket")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer = json.loads(line)
        if "pid" not in answer:
            raise OSError(answer.get("error", "no pid"))
        self._warm = True
        return int(answer["pid"])

    def stop_zygote(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._zygote is not None and self._zygote.running:
            self._zygote.signal_group(signal.SIGKILL)

    async def aclose(self) -> None:
        """Stop the zygote and reap it, so that it is gone (not only signalled) when we end."""
        self.stop_zygote()
        if self._zygote is not None:
            with trio.move_on_after(process.REAP_GRACE_S):
                await self._zygote.wait()
