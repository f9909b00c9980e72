"""Starting a worker process: `python -m services.worker` with a lifeline pipe as its stdin."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from services import process


@dataclass
class WorkerProcess:
    """A spawned worker and the write end of its lifeline (closing it tells the worker we are gone)."""

    child: process.Child
    lifeline_w: int

    def close_lifeline(self) -> None:
        if self.lifeline_w >= 0:
            os.close(self.lifeline_w)
            self.lifeline_w = -1


def spawn_worker(server: str, generation: int, control_endpoint: str, log_level: str) -> WorkerProcess:
    """Fork a worker in its own session. Its stdin is the lifeline: EOF means the supervisor died."""
    lifeline_r, lifeline_w = os.pipe()
    os.set_inheritable(lifeline_w, False)
    try:
        child = process.spawn(
            [
                sys.executable,
                "-m",
                "services.worker",
                "--server",
                server,
                "--generation",
                str(generation),
                "--control",
                control_endpoint,
                "--lifeline-fd",
                "0",
                "--log-level",
                log_level,
            ],
            env=dict(os.environ),
            stdin=lifeline_r,
        )
    finally:
        os.close(lifeline_r)
    return WorkerProcess(child=child, lifeline_w=lifeline_w)
