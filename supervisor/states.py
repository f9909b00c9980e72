"""The lifecycle of one server's worker: one enum, one table, one transition method."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from bus.errors import InvalidTransitionError
from bus.messages import ServerState

logger = logging.getLogger(__name__)


WorkerState = ServerState
"""The states travel on the bus, so the enum lives in bus/messages.py; the graph lives here."""

S = WorkerState
ALLOWED: Final[Mapping[WorkerState, frozenset[WorkerState]]] = {
    S.STOPPED: frozenset({S.STARTING, S.IDLE}),
    S.STARTING: frozenset({S.RUNNING, S.EXITED, S.STOPPING}),
    S.RUNNING: frozenset({S.EXITED, S.STOPPING}),
    S.EXITED: frozenset({S.BACKOFF, S.FATAL, S.NEEDS_LOGIN, S.STOPPED}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED, S.IDLE}),
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),
    S.NEEDS_LOGIN: frozenset({S.STARTING, S.STOPPED}),
    S.IDLE: frozenset({S.STARTING, S.STOPPED}),
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
