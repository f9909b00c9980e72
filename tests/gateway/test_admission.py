"""gateway/admission.py on trio's MockClock: slots, the FIFO queue, its bound and its timeout."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bus.messages import CallLimits, ServerCallLimits
from gateway.admission import Admission, Gate, retry_after, shed_result


def limits(server: int | None = None, queued: int = 5, timeout_s: float = 10.0, **top: int) -> CallLimits:
    own = {"db": ServerCallLimits(max_concurrent_calls=server, max_queued_calls=queued)} if server else {}
    return CallLimits(queue_timeout_s=timeout_s, servers=own, **top)  # type: ignore[arg-type]


def test_a_server_without_limits_has_no_ticket() -> None:
    admission = Admission()
    admission.adopt(limits(server=2))
    assert admission.ticket("other") is None
    assert admission.ticket("db") is not None


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_waiters_get_freed_slots_in_arrival_order_and_the_queue_is_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = Gate("db", 1, 2)
    assert await gate.enter(trio.current_time() + 10) is None
    order: list[int] = []

    async def wait(n: int) -> None:
        assert await gate.enter(trio.current_time() + 10) is None
        order.append(n)
        await trio.sleep(1)
        gate.leave()

    async with trio.open_nursery() as nursery:
        for n in range(2):
            nursery.start_soon(wait, n)
            await trio.sleep(0.1)
        assert len(gate.waiting) == 2
        assert await gate.enter(trio.current_time() + 10) == "queue_full"
        gate.leave()
    assert order == [0, 1]
    assert gate.running == 0


async def test_a_waiter_past_its_deadline_is_shed_and_leaves_the_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = Gate("db", 1, 5)
    await gate.enter(trio.current_time() + 10)
    assert await gate.enter(trio.current_time() + 3) == "queue_timeout"
    assert not gate.waiting
    gate.leave()
    assert gate.running == 0


async def test_a_cancelled_waiter_gives_back_nothing_it_did_not_hold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = Gate("db", 1, 5)
    await gate.enter(trio.current_time() + 10)
    with trio.move_on_after(1):
        await gate.enter(trio.current_time() + 10)
    assert not gate.waiting and gate.running == 1


async def test_a_raised_limit_lets_waiters_in_and_a_removed_one_opens_the_gate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission()
    admission.adopt(limits(server=1))
    ticket = admission.ticket("db")
    assert ticket is not None
    assert await admission.enter(ticket) is None
    entered: list[int] = []

    async def call(n: int) -> None:
        assert await admission.enter(ticket) is None
        entered.append(n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, 1)
        await trio.sleep(0.1)  # trio starts tasks in no set order: queue them one after the other
        nursery.start_soon(call, 2)
        await trio.sleep(1)
        assert entered == []
        admission.adopt(limits(server=2))
        await trio.sleep(1)
        assert entered == [1]
        admission.adopt(limits())
    assert entered == [1, 2]
    assert admission.ticket("db") is None


async def test_the_global_gate_sheds_after_the_server_gate_passed_and_frees_that_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    admission = Admission()
    admission.adopt(limits(server=3, max_concurrent_calls=1, max_queued_calls=0))
    ticket = admission.ticket("db")
    assert ticket is not None and len(ticket.gates) == 2
    assert await admission.enter(ticket) is None
    shed = await admission.enter(ticket)
    assert shed is not None and shed[0].scope == "" and shed[1] == "queue_full"
    assert ticket.gates[0].running == 1
    result = shed_result("db:gate", "db", *shed)
    assert retry_after(result) is not None and "the proxy" in (retry_after(result) or "")
    admission.leave(ticket)
    assert [g.running for g in ticket.gates] == [0, 0]
