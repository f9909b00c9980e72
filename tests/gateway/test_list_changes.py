"""gateway/list_changes.py on trio's MockClock: which settled changes of a list are announced."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from gateway.list_changes import NOTIFY_DEBOUNCE_S, ListChanges


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Watched:
    """A list (`items`) and its announcements, counted by a task that waits for them."""

    def __init__(self, items: list[str]) -> None:
        self.items = items
        self.changes = ListChanges(None, lambda: tuple(self.items))
        self.announced = 0

    async def count(self) -> None:
        while True:
            await self.changes.next_change()
            self.announced += 1

    def set(self, items: list[str]) -> None:
        self.items = items
        self.changes.changed()


async def announced_after(watched: Watched, *steps: list[str] | None) -> int:
    """Apply `steps` (a new list, or None for "a client lists it now") within one debounce window;
    the announcements made once it settled."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watched.count)
        await trio.lowlevel.checkpoint()
        for step in steps:
            if step is None:
                watched.changes.served()
            else:
                watched.set(step)
        await trio.sleep(NOTIFY_DEBOUNCE_S * 4)
        nursery.cancel_scope.cancel()
    return watched.announced


async def test_a_settled_change_is_announced_once(autojump_clock: trio.testing.MockClock) -> None:
    assert await announced_after(Watched(["a"]), ["a", "b"], ["a", "b", "c"]) == 1


async def test_a_change_that_settles_where_it_began_is_not_announced_to_nobody(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await announced_after(Watched(["a"]), ["b"], ["a"]) == 0


async def test_a_change_a_client_saw_before_it_settled_back_is_announced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The client was shown ["b"]: the settled ["a"] equals the last announced list, but not what it holds.
    assert await announced_after(Watched(["a"]), ["b"], None, ["a"]) == 1


async def test_a_list_served_with_no_change_waiting_announces_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert await announced_after(Watched(["a"]), None, None) == 0


async def test_a_change_to_what_does_not_show_in_the_list_is_not_announced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    watched = Watched(["a"])
    watched.changes.changed()  # e.g. another server's state, the same list
    assert await announced_after(watched) == 0
