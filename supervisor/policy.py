"""The restart policy: a pure function of the failure history and the clock.

Backoff starts at `initial_backoff_s`, doubles per consecutive failure with
+-`jitter` randomness, and is capped at `max_backoff_s`. A server that stayed
up for `stable_after_s` has its history forgotten.

Giving up is for servers that cannot start at all: `max_failures` failures
within `failure_window_s` make a local (stdio) server that never once ran
`fatal` — a wrong command or a missing binary does not fix itself. A server
that has run before (it may crash-loop for a while, or its machine may
sleep) and a remote server (the network comes back) are retried forever at
the capped backoff, shown as `crash-looping` or `unreachable`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 60.0
MAX_FAILURES: Final = 5
FAILURE_WINDOW_S: Final = 300.0
STABLE_AFTER_S: Final = 60.0
JITTER: Final = 0.2
MAX_DOUBLINGS: Final = 32
"""Enough to reach any cap; bounds the exponent of a server that fails for days."""


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = INITIAL_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    max_failures: int = MAX_FAILURES
    failure_window_s: float = FAILURE_WINDOW_S
    stable_after_s: float = STABLE_AFTER_S
    jitter: float = JITTER


Condition = Literal["retrying", "crash-looping", "unreachable"]
"""Why a server in backoff is waiting: the first failures, a repeated crash, or a remote gone."""


@dataclass(frozen=True)
class Decision:
    """What to do after a failure: retry after `delay_s` (and why), or give up (`fatal`)."""

    fatal: bool
    delay_s: float
    failures: tuple[float, ...]
    condition: Condition | None = None


def after_failure(
    policy: RestartPolicy,
    failures: Sequence[float],
    now: float,
    *,
    has_run: bool = False,
    remote: bool = False,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Decision:
    """Record a failure at `now` and decide; `failures` are earlier failure times.

    `has_run`: the server reached running since it was last configured or
    restarted by hand. `remote`: it is reached over the network.
    """
    recent = (*tuple(t for t in failures if now - t < policy.failure_window_s), now)
    looping = len(recent) >= policy.max_failures
    if looping and not has_run and not remote:
        return Decision(fatal=True, delay_s=0.0, failures=recent)
    doublings = min(len(recent) - 1, MAX_DOUBLINGS)
    base = min(policy.initial_backoff_s * 2**doublings, policy.max_backoff_s)
    delay = min(base * uniform(1.0 - policy.jitter, 1.0 + policy.jitter), policy.max_backoff_s)
    condition: Condition = "unreachable" if remote else "crash-looping" if looping else "retrying"
    return Decision(fatal=False, delay_s=delay, failures=recent, condition=condition)


def after_stable_run(
    policy: RestartPolicy, failures: Sequence[float], running_since: float, now: float
) -> tuple[float, ...]:
    """Forget the history once the server has been up for `stable_after_s`."""
    if now - running_since >= policy.stable_after_s:
        return ()
    return tuple(failures)
