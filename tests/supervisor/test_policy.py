from __future__ import annotations

import pytest

from bus.errors import InvalidTransitionError
from supervisor.policy import RestartPolicy, after_failure, after_stable_run
from supervisor.states import ALLOWED, Lifecycle, WorkerState


def no_jitter(low: float, high: float) -> float:
    return 1.0


def test_backoff_starts_near_one_second_and_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(max_failures=100, max_backoff_s=8.0)
    failures: tuple[float, ...] = ()
    delays = []
    for now in range(6):
        decision = after_failure(policy, failures, float(now), no_jitter)
        failures = decision.failures
        delays.append(decision.delay_s)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_stays_within_the_configured_band() -> None:
    policy = RestartPolicy()
    low = after_failure(policy, (), 0.0, lambda a, b: a).delay_s
    high = after_failure(policy, (), 0.0, lambda a, b: b).delay_s
    assert low == pytest.approx(0.8) and high == pytest.approx(1.2)


def test_repeated_failures_within_the_window_are_fatal() -> None:
    policy = RestartPolicy(max_failures=3, failure_window_s=60.0)
    first = after_failure(policy, (), 0.0, no_jitter)
    second = after_failure(policy, first.failures, 10.0, no_jitter)
    third = after_failure(policy, second.failures, 20.0, no_jitter)
    assert not first.fatal and not second.fatal and third.fatal


def test_failures_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(max_failures=3, failure_window_s=60.0)
    decision = after_failure(policy, (0.0, 10.0), 100.0, no_jitter)
    assert not decision.fatal and decision.failures == (100.0,)


def test_a_stable_run_clears_the_history() -> None:
    policy = RestartPolicy(stable_after_s=60.0)
    assert after_stable_run(policy, (1.0, 2.0), running_since=0.0, now=30.0) == (1.0, 2.0)
    assert after_stable_run(policy, (1.0, 2.0), running_since=0.0, now=61.0) == ()


def test_every_state_has_an_entry_in_the_transition_table() -> None:
    assert set(ALLOWED) == set(WorkerState)


def test_a_transition_outside_the_table_is_refused() -> None:
    life = Lifecycle("x")
    life.transition(WorkerState.STARTING)
    life.transition(WorkerState.RUNNING)
    with pytest.raises(InvalidTransitionError, match="running -> backoff"):
        life.transition(WorkerState.BACKOFF)
    assert life.state is WorkerState.RUNNING
