"""The on-demand decisions (supervisor/on_demand.py `Usage`): pure, fed heartbeats and a clock."""

from __future__ import annotations

from supervisor.on_demand import DRAIN_SETTLE_S, Usage


def usage(idle_after_s: float | None = 10.0, max_lifetime_s: float | None = None) -> Usage:
    return Usage(started_at=0.0, idle_after_s=idle_after_s, max_lifetime_s=max_lifetime_s, drain_limit_s=30.0)


def test_a_server_without_calls_past_its_idle_timeout_drains_then_goes_idle() -> None:
    decide = usage()
    assert decide.on_beat(busy=0, idle_s=9.0, served=3, now=9.0) is None
    assert decide.on_beat(busy=0, idle_s=10.0, served=3, now=10.0) == "drain"
    assert decide.on_beat(busy=0, idle_s=10.5, served=3, now=10.5) is None  # not settled yet
    assert decide.on_beat(busy=0, idle_s=10.0 + DRAIN_SETTLE_S, served=3, now=10.0 + DRAIN_SETTLE_S) == "idle"


def test_a_call_in_flight_keeps_a_server_from_going_idle() -> None:
    decide = usage()
    assert decide.on_beat(busy=1, idle_s=60.0, served=1, now=60.0) is None


def test_a_call_that_reaches_a_draining_server_undoes_the_idle_drain() -> None:
    decide = usage()
    assert decide.on_beat(busy=0, idle_s=10.0, served=3, now=10.0) == "drain"
    assert decide.on_beat(busy=0, idle_s=0.2, served=4, now=12.0) == "undrain"
    assert decide.on_beat(busy=0, idle_s=1.2, served=4, now=13.0) is None
    assert decide.on_beat(busy=0, idle_s=10.2, served=4, now=22.0) == "drain"


def test_max_lifetime_drains_and_recycles_once_nothing_is_in_flight() -> None:
    decide = usage(idle_after_s=None, max_lifetime_s=5.0)
    assert decide.on_beat(busy=2, idle_s=0.0, served=9, now=4.0) is None
    assert decide.on_beat(busy=2, idle_s=0.0, served=9, now=5.0) == "drain"
    assert decide.on_beat(busy=1, idle_s=0.0, served=10, now=7.0) is None  # a call still runs
    assert decide.on_beat(busy=0, idle_s=0.1, served=10, now=8.0) == "recycle"


def test_a_recycle_stops_waiting_for_calls_after_its_drain_limit() -> None:
    decide = usage(idle_after_s=None, max_lifetime_s=5.0)
    assert decide.on_beat(busy=1, idle_s=0.0, served=1, now=5.0) == "drain"
    assert decide.on_beat(busy=1, idle_s=0.0, served=1, now=34.0) is None
    assert decide.on_beat(busy=1, idle_s=0.0, served=1, now=35.0) == "recycle"


def test_an_always_server_without_max_lifetime_is_never_stopped() -> None:
    decide = usage(idle_after_s=None)
    assert decide.on_beat(busy=0, idle_s=1e6, served=0, now=1e6) is None
