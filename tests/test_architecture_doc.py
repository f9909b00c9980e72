"""docs/architecture.md is the map: a row per bus message, in its union's direction; every path exists."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Final

import pytest

from bus import messages
from bus.messages import Message
from cli.serve import stop_budget_s
from services.config import parse_config
from tests.cli.test_serve import supervisor_stop_bound_s

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "architecture.md"
TOP_LEVEL: Final = ("bus", "services", "supervisor", "gateway", "cli", "tests", "bench", "docs", "scripts")


def section(title: str) -> str:
    """The text of one `## title` section of the doc."""
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def catalogue() -> dict[str, str]:
    """The message table: each row's message name -> its `from -> to` cell."""
    rows = {}
    for line in section("Messages").splitlines():
        row = re.match(r"\| `(\w+)[^`]*`[^|]*\| ([^|]+) \|", line)
        if row is not None:
            rows[row[1]] = row[2].strip()
    return rows


def message_classes() -> dict[str, type[Message]]:
    return {
        name: value
        for name, value in vars(messages).items()
        if isinstance(value, type) and issubclass(value, Message) and value is not Message
    }


def unions() -> dict[str, tuple[type, ...]]:
    found = vars(messages).items()
    return {name: typing.get_args(value) for name, value in found if isinstance(value, types.UnionType)}


def directions() -> dict[str, str]:
    """Each one-direction union -> the `from -> to` its name says (`WorkerToGateway`: `worker -> gateway`)."""
    found = {}
    for name in unions():
        parts = re.fullmatch(r"([A-Z][a-z]+)To([A-Z][a-z]+)", name)
        if parts is not None:
            found[name] = f"{parts[1].lower()} -> {parts[2].lower()}"
    return found


def test_every_bus_message_has_a_row_in_the_catalogue() -> None:
    missing = sorted(message_classes().keys() - catalogue().keys())
    assert not missing, f"bus/messages.py messages without a row in {DOC.name}'s message table: {missing}"


def test_every_row_of_the_catalogue_is_a_bus_message() -> None:
    stale = sorted(catalogue().keys() - message_classes().keys())
    assert not stale, f"rows of {DOC.name}'s message table that bus/messages.py does not define: {stale}"


def test_every_message_travels_in_a_union_and_its_row_names_that_direction() -> None:
    rows = catalogue()
    placed: set[type] = set()
    for union, direction in directions().items():
        for member in unions()[union]:
            placed.add(member)
            cell = rows.get(member.__name__, "")
            assert cell.startswith(direction), f"{member.__name__} is in {union}; its row says {cell!r}"
    unsent = sorted(name for name, cls in message_classes().items() if cls not in placed)
    assert not unsent, f"messages in no direction union (no decoder accepts them): {unsent}"


def test_the_doc_names_every_union() -> None:
    text = section("Messages")
    assert directions(), "bus/messages.py has no `<From>To<To>` unions"
    unnamed = sorted(name for name in unions() if f"`{name}`" not in text)
    assert not unnamed, f"unions {DOC.name} does not name: {unnamed}"


def test_the_shutdown_budget_states_the_bounds_the_code_keeps() -> None:
    text = section("Shutdown time budget")
    config = parse_config('{"mcpServers": []}')
    close, kill = config.close_timeout_s(), config.kill_timeout_s()
    assert f"`close_timeout` {close:.0f} s, `kill_timeout` {kill:.0f} s" in text
    supervisor = supervisor_stop_bound_s(close, kill, docker=False)
    with_docker = supervisor_stop_bound_s(close, kill)
    for seconds in (supervisor, with_docker, stop_budget_s(close, kill)):
        assert f"({seconds:.0f} s)" in text, f"the shutdown budget does not state {seconds:.0f} s"


@pytest.mark.parametrize(
    "path",
    sorted(set(re.findall(rf"`((?:{'|'.join(TOP_LEVEL)})/[\w./-]*)`", DOC.read_text()))),
)
def test_every_path_the_doc_names_exists(path: str) -> None:
    assert (REPO / path).exists(), f"{DOC.name} names `{path}`, which does not exist"
