"""`mcpproxy serve`'s stop budget against the supervisor's own bounded stop (pure: constants only)."""

from __future__ import annotations

import pytest

from cli.serve import STOP_MARGIN_S, stop_budget_s
from services import process
from supervisor import containers, runner_context


def supervisor_stop_bound_s(close_timeout_s: float, kill_timeout_s: float, *, docker: bool = True) -> float:
    """The longest the supervisor takes to stop, from its own constants (servers stop in parallel)."""
    per_server = close_timeout_s + kill_timeout_s + runner_context.STOP_MARGIN_S  # Shutdown, wait
    per_server += process.REAP_GRACE_S  # SIGKILL the worker's group, reap
    per_server += kill_timeout_s + process.REAP_GRACE_S  # sweep the upstream group: SIGTERM, SIGKILL, reap
    after = process.REAP_GRACE_S  # reap the zygote
    if docker:
        per_server += containers.SWEEP_TIMEOUT_S  # the server's containers
        after += containers.SWEEP_TIMEOUT_S  # every container of this instance
    return per_server + after


@pytest.mark.parametrize(("close", "kill"), [(10.0, 9.0), (1.0, 1.0), (60.0, 30.0), (0.5, 120.0)])
def test_serve_never_kills_a_supervisor_still_within_its_own_bounded_stop(close: float, kill: float) -> None:
    assert stop_budget_s(close, kill) == supervisor_stop_bound_s(close, kill) + STOP_MARGIN_S


def test_by_default_the_supervisor_stops_within_36_s_or_56_s_with_docker_and_serve_waits_61_s() -> None:
    assert supervisor_stop_bound_s(10.0, 9.0, docker=False) == 36.0
    assert supervisor_stop_bound_s(10.0, 9.0) == 56.0
    assert stop_budget_s(10.0, 9.0) == 61.0
