"""What arrives in a server runner's inbox: its worker's messages, the worker's exit, and commands.

The runner (supervisor/runner.py) is the one writer of its state; everything
else asks it through these, delivered with `ServerRunner.deliver_nowait`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import trio

from bus.messages import WorkerToSupervisor
from services.config import ServerConfig


@dataclass(frozen=True)
class WorkerExited:
    """The worker process of `generation` ended."""

    generation: int
    code: int


@dataclass
class LoginOutcome:
    """What a `login` command waits for: the authorization URL, or the server's fate without one."""

    done: trio.Event
    url: str | None = None
    error: str | None = None


CommandAction = Literal["restart", "reload", "login", "logout", "repin", "disable", "remove", "start"]


@dataclass(frozen=True)
class Command:
    """A change asked of a runner. Only the runner's own task applies it: it is its state's one writer.

    `restart`, `reload` (adopting `config`), `login` (settling `login`), `disable` and `remove` decide
    what runs; `logout` forgets the sign-in and reconnects; `repin` checks the tools and prompts
    against the approvals again; `start` is a call's demand for an on-demand server (supervisor/on_demand.py).
    `done`, when given, is set once the command has been applied.
    """

    action: CommandAction
    config: ServerConfig | None = None
    login: LoginOutcome | None = None
    done: trio.Event | None = None


Event = WorkerToSupervisor | WorkerExited | Command
"""What arrives in a runner's inbox: its worker's messages, the worker's exit, and commands."""
