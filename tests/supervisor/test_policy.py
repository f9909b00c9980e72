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
        decision = after_failure(policy, failures, float(now), uniform=no_jitter)
        failures = decision.failures
        delays.append(decision.delay_s)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_stays_within_the_configured_band() -> None:
    policy = RestartPolicy()
    low = after_failure(policy, (), 0.0, uniform=lambda a, b: a).delay_s
    high = after_failure(policy, (), 0.0, uniform=lambda a, b: b).delay_s
    assert low == pytest.approx(0.8) and high == pytest.approx(1.2)


def test_repeated_failures_of_a_local_server_that_never_ran_are_fatal() -> None:
    policy = RestartPolicy(max_failures=3, failure_window_s=60.0)
    first = after_failure(policy, (), 0.0, uniform=no_jitter)
    second = after_failure(policy, first.failures, 10.0, uniform=no_jitter)
    third = after_failure(policy, second.failures, 20.0, uniform=no_jitter)
    assert not first.fatal and not second.fatal and third.fatal


@pytest.mark.parametrize(
    ("has_run", "remote", "condition"),
    [(True, False, "crash-looping"), (False, True, "unreachable"), (True, True, "unreachable")],
)
def test_a_server_that_ran_or_is_remote_is_retried_forever_at_the_cap(
    has_run: bool, remote: bool, condition: str
) -> None:
    policy = RestartPolicy(max_failures=3, failure_window_s=60.0, max_backoff_s=8.0)
    failures: tuple[float, ...] = ()
    decisions = []
    for now in range(0, 1000, 10):
        decision = after_failure(
            policy, failures, float(now), has_run=has_run, remote=remote, uniform=no_jitter
        )
        failures = decision.failures
        decisions.append(decision)
    assert not any(d.fatal for d in decisions)
    assert decisions[-1].delay_s == 8.0 and decisions[-1].condition == condition
    if not remote:
        assert decisions[0].condition == "retrying"


def test_the_backoff_exponent_is_bounded_for_a_server_that_fails_for_days() -> None:
    policy = RestartPolicy(max_failures=10**9, failure_window_s=1e12)
    decision = after_failure(policy, tuple(float(t) for t in range(5000)), 5000.0, uniform=no_jitter)
    assert decision.delay_s == policy.max_backoff_s


def test_failures_older_than_the_window_are_forgotten() -> None:
    policy = RestartPolicy(max_failures=3, failure_window_s=60.0)
    decision = after_failure(policy, (0.0, 10.0), 100.0, uniform=no_jitter)
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
