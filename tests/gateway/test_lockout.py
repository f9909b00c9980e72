"""The wrong-key lockout's bookkeeping, on an explicit clock."""

from __future__ import annotations

from gateway.lockout import MAX_FAILURES, WINDOW_S, KeyLockout, client_of


def test_a_client_is_locked_out_by_its_tenth_failure_within_the_window_until_the_first_leaves_it() -> None:
    lockout = KeyLockout()
    for second in range(MAX_FAILURES - 1):
        assert lockout.failed("10.0.0.1", float(second)) == 0.0
    assert lockout.locked_for("10.0.0.1", 9.0) == 0.0

    assert lockout.failed("10.0.0.1", 9.0) == WINDOW_S - 9.0
    assert lockout.locked_for("10.0.0.1", 30.0) == WINDOW_S - 30.0
    assert lockout.locked_for("10.0.0.2", 30.0) == 0.0
    assert lockout.locked_for("10.0.0.1", WINDOW_S) == 0.0


def test_the_window_slides_so_no_window_holds_more_than_the_limit() -> None:
    lockout = KeyLockout()
    for second in range(MAX_FAILURES):
        lockout.failed("10.0.0.1", float(second))
    # Once the first failure has left the window one more try is answered; it locks again until
    # the second failure leaves.
    assert lockout.failed("10.0.0.1", WINDOW_S) == 1.0
    assert lockout.locked_for("10.0.0.1", WINDOW_S + 1.0) == 0.0


def test_failures_spread_wider_than_the_window_never_lock_out() -> None:
    lockout = KeyLockout()
    step_s = WINDOW_S / (MAX_FAILURES - 1)
    assert all(lockout.failed("10.0.0.1", i * step_s) == 0.0 for i in range(10 * MAX_FAILURES))


def test_memory_is_bounded_by_forgetting_the_least_recently_failing_client() -> None:
    lockout = KeyLockout(max_failures=2, max_clients=2)
    lockout.failed("a", 0.0)
    lockout.failed("b", 1.0)
    lockout.failed("a", 2.0)  # a locked out, and now the most recent
    lockout.failed("c", 3.0)  # b goes
    assert lockout.locked_for("a", 3.0) > 0
    lockout.failed("b", 4.0)
    assert lockout.failed("b", 5.0) > 0  # counted afresh: two failures, not three


def test_an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_by_its_address() -> None:
    assert client_of("2001:db8::1") == client_of("2001:db8::ffff:2") == "2001:db8::/64"
    assert client_of("2001:db8:0:1::1") != client_of("2001:db8::1")
    assert client_of("::ffff:192.0.2.7") == client_of("192.0.2.7") == "192.0.2.7"
    assert client_of("") == ""
