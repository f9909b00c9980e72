"""The restart policy: a pure function of the failure history and the clock.

Backoff starts at `initial_backoff_s`, doubles per consecutive failure with
+-`jitter` randomness, and is capped at `max_backoff_s`. `max_failures`
failures within `failure_window_s` make the server fatal. A server that stayed
up for `stable_after_s` has its history forgotten.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 60.0
MAX_FAILURES: Final = 5
FAILURE_WINDOW_S: Final = 300.0
STABLE_AFTER_S: Final = 60.0
JITTER: Final = 0.2


@dataclass(frozen=True)
class RestartPolicy:
    initial_backoff_s: float = INITIAL_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    max_failures: int = MAX_FAILURES
    failure_window_s: float = FAILURE_WINDOW_S
    stable_after_s: float = STABLE_AFTER_S
    jitter: float = JITTER


@dataclass(frozen=True)
class Decision:
    """What to do after a failure: retry after `delay_s`, or give up (`fatal`)."""

    fatal: bool
    delay_s: float
    failures: tuple[float, ...]


def after_failure(
    policy: RestartPolicy,
    failures: Sequence[float],
    now: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Decision:
    """Record a failure at `now` and decide; `failures` are earlier failure times."""
    recent = (*tuple(t for t in failures if now - t < policy.failure_window_s), now)
    if len(recent) >= policy.max_failures:
        return Decision(fatal=True, delay_s=0.0, failures=recent)
    base = min(policy.initial_backoff_s * 2 ** (len(recent) - 1), policy.max_backoff_s)
    delay = base * uniform(1.0 - policy.jitter, 1.0 + policy.jitter)
    return Decision(fatal=False, delay_s=min(delay, policy.max_backoff_s), failures=recent)


def after_stable_run(
    policy: RestartPolicy, failures: Sequence[float], running_since: float, now: float
) -> tuple[float, ...]:
    """Forget the history once the server has been up for `stable_after_s`."""
    if now - running_since >= policy.stable_after_s:
        return ()
    return tuple(failures)
