"""Where a long tool result is cut and how the rest is paged (no I/O: gateway/large_results.py applies it).

A text is cut at a clean boundary at or before the limit: the last line break in
the limit's last quarter, else the last whitespace there, else the limit itself.
The part shown is an exact prefix, so the shown part and the pages of
`read_cache` put together are the original, character for character.

A text that is a JSON array is cut and paged by record instead: the part shown
is a valid JSON array of the first records that fit, and each page is one too,
built from the records' own text (never re-serialized). A page by characters of
the same text is always available too, for a byte-exact copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal

Unit = Literal["chars", "records"]

CLEAN_WINDOW: Final = 4
"""A clean boundary is looked for in the last 1/CLEAN_WINDOW of the limit; before that, a cut mid-word
loses less of the page than a boundary far back would."""
_JSON_SPACE: Final = " \t\n\r"
_DECODER: Final = json.JSONDecoder()


def clean_cut(text: str, start: int, limit: int) -> int:
    """The end of a piece of `text` from `start` of at most `limit` characters, at a clean boundary."""
    end = start + limit
    if end >= len(text):
        return len(text)
    floor = max(start + 1, end - limit // CLEAN_WINDOW)
    newline = text.rfind("\n", floor - 1, end)
    if newline >= floor - 1:
        return newline + 1
    for at in range(end, floor - 1, -1):
        if text[at - 1].isspace() and not _parts_crlf(text, at):
            return at
    if _parts_crlf(text, end):
        return end - 1 if end - 1 > start else end + 1
    return end


def _parts_crlf(text: str, at: int) -> bool:
    """A cut at `at` would leave a CR at the end of one piece and its LF at the start of the next."""
    return 0 < at < len(text) and text[at - 1] == "\r" and text[at] == "\n"


def json_records(text: str) -> list[str] | None:
    """The text of each element of `text` if it is a JSON array (whitespace around allowed), else None."""
    at = _skip_space(text, 0)
    if at >= len(text) or text[at] != "[":
        return None
    records: list[str] = []
    at = _skip_space(text, at + 1)
    if at < len(text) and text[at] == "]":
        return records if _skip_space(text, at + 1) == len(text) else None
    while True:
        try:
            _value, end = _DECODER.raw_decode(text, at)
        except json.JSONDecodeError:
            return None
        records.append(text[at:end])
        at = _skip_space(text, end)
        if at >= len(text):
            return None
        if text[at] == "]":
            return records if _skip_space(text, at + 1) == len(text) else None
        if text[at] != ",":
            return None
        at = _skip_space(text, at + 1)


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in _JSON_SPACE:
        at += 1
    return at


def records_text(records: list[str]) -> str:
    """A JSON array of records given by their text."""
    return "[" + ",".join(records) + "]"


def fitting_records(records: list[str], start: int, budget: int, count: int | None = None) -> int:
    """How many records from `start` fit, as a JSON array, in `budget` characters (and at most `count`).

    At least one when any is left, however long: a page never stalls on a record larger than a page.
    """
    taken, size = 0, 2
    for record in records[start:]:
        if count is not None and taken >= count:
            break
        size += len(record) + (1 if taken else 0)
        if taken and size > budget:
            break
        taken += 1
    return taken


@dataclass(frozen=True)
class Page:
    """One piece of a cached text: `text`, and where the next piece starts (None: this was the last)."""

    text: str
    unit: Unit
    offset: int
    next_offset: int | None
    total: int
    """Characters, or records, in the whole text."""


@dataclass(frozen=True)
class Cut:
    """A text too long to send whole: what is sent of it, and the rest's first offset."""

    shown: str
    unit: Unit
    next_offset: int
    total: int


def cut(text: str, limit: int) -> Cut | None:
    """What to show of `text` under a limit of `limit` characters (0: no limit); None when it fits."""
    if limit <= 0 or len(text) <= limit:
        return None
    records = json_records(text)
    if records is not None:
        taken = fitting_records(records, 0, limit)
        if taken and len(records_text(records[:taken])) <= limit:
            return Cut(records_text(records[:taken]), "records", taken, len(records))
    end = clean_cut(text, 0, limit)
    return Cut(text[:end], "chars", end, len(text))


def page(text: str, unit: Unit, offset: int, limit: int | None, page_chars: int) -> Page:
    """The piece of `text` at `offset` (records or characters): `limit` of them, but no more than
    `page_chars` characters (a page's records: at least one). Raises ValueError for a bad offset."""
    if unit == "records":
        records = json_records(text)
        if records is None:
            raise ValueError("this result is not a JSON array: read it by characters")
        if not 0 <= offset <= len(records):
            raise ValueError(f"offset {offset} is outside the result's {len(records)} records")
        taken = fitting_records(records, offset, page_chars, limit)
        end = offset + taken
        return Page(
            records_text(records[offset:end]), unit, offset, end if end < len(records) else None, len(records)
        )
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} is outside the result's {len(text)} characters")
    size = page_chars if limit is None else min(limit, page_chars)
    end = clean_cut(text, offset, max(1, size))
    return Page(text[offset:end], unit, offset, end if end < len(text) else None, len(text))
