"""Restart timing over minutes of simulated time: the pure policy, driven the way ServerRunner drives it.

ServerRunner calls `after_stable_run` on every event while a server runs (the
exit included), then `after_failure` when it ends, then sleeps the backoff.
`simulate` does the same on trio's autojump MockClock, so a five-minute
sequence of crashes runs in milliseconds and every restart time is exact.
No processes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from supervisor.policy import RestartPolicy, after_failure, after_stable_run


def no_jitter(low: float, high: float) -> float:
    return 1.0


@dataclass
class Run:
    """What the simulated server did: when each start happened, and when it went fatal (if it did)."""

    starts: list[float]
    fatal_at: float | None


async def simulate(
    policy: RestartPolicy,
    uptimes: Sequence[float],
    uniform: Callable[[float, float], float] = no_jitter,
    restart_after_fatal: bool = False,
) -> Run:
    """Start a server that crashes after `uptimes[n]` seconds on its n-th run; restart as the runner does."""
    t0 = trio.current_time()
    failures: tuple[float, ...] = ()
    starts: list[float] = []
    fatal_at = None
    for uptime in uptimes:
        running_since = trio.current_time()
        starts.append(running_since - t0)
        await trio.sleep(uptime)
        now = trio.current_time()
        failures = after_stable_run(policy, failures, running_since, now)
        decision = after_failure(policy, failures, now, uniform=uniform)
        failures = decision.failures
        if decision.fatal:
            fatal_at = now - t0
            if not restart_after_fatal:
                break
            failures = ()  # a human restart clears the history
            continue
        await trio.sleep(decision.delay_s)
    return Run(starts=starts, fatal_at=fatal_at)


async def test_a_crash_looping_server_backs_off_1_2_4_8_seconds_then_goes_fatal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = await simulate(RestartPolicy(), [0.0] * 10)
    assert run.starts == [0.0, 1.0, 3.0, 7.0, 15.0]
    assert run.fatal_at == 15.0


async def test_backoff_doubles_up_to_the_cap_when_failures_are_never_fatal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = await simulate(RestartPolicy(max_failures=1000), [0.0] * 10)
    gaps = [b - a for a, b in zip(run.starts, run.starts[1:], strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert run.fatal_at is None


async def test_jittered_restarts_stay_within_twenty_percent_of_the_nominal_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rng = random.Random(1234)
    run = await simulate(RestartPolicy(max_failures=1000), [0.0] * 12, uniform=rng.uniform)
    gaps = [b - a for a, b in zip(run.starts, run.starts[1:], strict=False)]
    nominal = [min(2.0**n, 60.0) for n in range(len(gaps))]
    for gap, base in zip(gaps, nominal, strict=True):
        assert base * 0.8 - 1e-9 <= gap <= min(base * 1.2, 60.0) + 1e-9
    assert len(set(gaps)) > 1, "jitter should spread the delays"


async def test_a_server_that_stays_up_past_the_stable_period_restarts_after_one_second_forever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = RestartPolicy()
    run = await simulate(policy, [policy.stable_after_s + 1.0] * 20)
    assert run.fatal_at is None
    gaps = [b - a for a, b in zip(run.starts, run.starts[1:], strict=False)]
    assert gaps == [policy.stable_after_s + 1.0 + 1.0] * 19


async def test_crashes_just_short_of_the_stable_period_add_up_to_fatal_within_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = RestartPolicy()
    uptime = policy.stable_after_s - 1.0
    run = await simulate(policy, [uptime] * 10)
    # 59 s up, then 1, 2, 4, 8 s of backoff: the fifth crash, at 310 s, is within 300 s of the first (59 s).
    assert run.starts == [0.0, 60.0, 121.0, 184.0, 251.0]
    assert run.fatal_at == 251.0 + uptime


async def test_failures_spread_wider_than_the_window_are_never_fatal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Without the stable-run reset, only the window forgets: 80 s apart, at most 4 fit in 300 s.
    policy = RestartPolicy(stable_after_s=math.inf)
    run = await simulate(policy, [80.0] * 30)
    assert run.fatal_at is None
    assert len(run.starts) == 30


async def test_a_restart_after_fatal_starts_again_from_the_first_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = await simulate(RestartPolicy(), [0.0] * 7, restart_after_fatal=True)
    # fatal at 15 s, restarted at once, then 1 s of backoff again.
    assert run.starts == [0.0, 1.0, 3.0, 7.0, 15.0, 15.0, 16.0]


@pytest.mark.parametrize("max_failures", [1, 2, 5])
async def test_the_fatal_failure_is_exactly_the_max_failures_th(
    autojump_clock: trio.testing.MockClock, max_failures: int
) -> None:
    run = await simulate(RestartPolicy(max_failures=max_failures), [0.0] * 10)
    assert len(run.starts) == max_failures
    assert run.fatal_at == run.starts[-1]
