"""The lifecycle of one server's worker: one enum, one table, one transition method."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Final

from bus.errors import InvalidTransitionError

logger = logging.getLogger(__name__)


class WorkerState(enum.Enum):
    STOPPED = "stopped"
    """Not running and not meant to: disabled, quarantined, or stopped on purpose."""
    STARTING = "starting"
    """A worker process exists and is connecting to and initializing its upstream."""
    RUNNING = "running"
    """The upstream is initialized; its tools are served."""
    BACKOFF = "backoff"
    """The last start failed or the worker died; a retry is scheduled."""
    STOPPING = "stopping"
    """The staged stop is under way."""
    EXITED = "exited"
    """The worker ended unexpectedly; the restart policy decides what is next."""
    FATAL = "fatal"
    """Too many failed starts in the window; only a human restart brings it back."""
    NEEDS_LOGIN = "needs_login"
    """An OAuth upstream waits for a person to sign in (`login`); it is not retried until then."""


S = WorkerState
ALLOWED: Final[Mapping[WorkerState, frozenset[WorkerState]]] = {
    S.STOPPED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.RUNNING, S.EXITED, S.STOPPING}),
    S.RUNNING: frozenset({S.EXITED, S.STOPPING}),
    S.EXITED: frozenset({S.BACKOFF, S.FATAL, S.NEEDS_LOGIN, S.STOPPED}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),
    S.NEEDS_LOGIN: frozenset({S.STARTING, S.STOPPED}),
}


class Lifecycle:
    """Holds the state of one server; nothing else assigns it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = WorkerState.STOPPED

    def transition(self, new: WorkerState) -> None:
        if new not in ALLOWED[self.state]:
            raise InvalidTransitionError(self.name, self.state.value, new.value)
        logger.info("server %s: %s -> %s", self.name, self.state.value, new.value)
        self.state = new
