"""Cutting a long result and paging the rest: pure functions (services/result_pages.py)."""

from __future__ import annotations

import json

import pytest

from services.result_pages import clean_cut, cut, json_records, page


def whole_by_pages(text: str, first: int, unit: str, page_chars: int) -> str:
    offset: int | None = first
    pieces = []
    while offset is not None:
        piece = page(text, "chars", offset, None, page_chars)
        pieces.append(piece.text)
        offset = piece.next_offset
    return "".join(pieces)


def test_a_text_within_the_limit_is_not_cut() -> None:
    assert cut("short", 5) is None
    assert cut("x" * 50_000, 0) is None


def test_a_text_is_cut_after_the_last_line_break_near_the_limit() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    piece = cut(text, 100)
    assert piece is not None and piece.unit == "chars"
    assert piece.shown.endswith("\n") and len(piece.shown) <= 100
    assert text.startswith(piece.shown) and piece.next_offset == len(piece.shown)


def test_a_text_without_line_breaks_is_cut_at_a_space_else_at_the_limit() -> None:
    assert clean_cut("aaaa bbbb cccc", 0, 12) == 10
    assert clean_cut("x" * 40, 0, 12) == 12


def test_a_crlf_is_never_parted() -> None:
    text = "a" * 11 + "\r\n" + "b" * 20
    end = clean_cut(text, 0, 12)
    assert text[end - 1] != "\r"


def test_the_shown_part_and_the_pages_give_back_the_text_character_for_character() -> None:
    text = "".join(
        f"caf\u00e9 \U0001f600 {i} " + "y" * (i % 50) + ("\r\n" if i % 3 else "\n") for i in range(5000)
    )
    piece = cut(text, 1000)
    assert piece is not None
    assert piece.shown + whole_by_pages(text, piece.next_offset, "chars", 1000) == text


def test_json_records_keep_each_element_as_written() -> None:
    assert json_records(' [ {"a": 1} ,\n [2, 3], "x" ] ') == ['{"a": 1}', "[2, 3]", '"x"']
    assert json_records("[]") == []
    assert json_records('{"a": 1}') is None
    assert json_records("[1, 2") is None
    assert json_records("[1] trailing") is None


def test_a_json_array_is_cut_and_paged_by_record_into_valid_arrays() -> None:
    records = [{"id": i, "name": f"record {i}"} for i in range(500)]
    text = json.dumps(records, indent=1)
    piece = cut(text, 2000)
    assert piece is not None and piece.unit == "records" and piece.total == 500
    got = json.loads(piece.shown)
    assert len(piece.shown) <= 2000 and got == records[: piece.next_offset]
    offset: int | None = piece.next_offset
    while offset is not None:
        shown = page(text, "records", offset, None, 2000)
        assert len(shown.text) <= 2000
        got += json.loads(shown.text)
        offset = shown.next_offset
    assert got == records


def test_a_page_by_record_takes_the_count_asked_for_and_at_least_one_record() -> None:
    text = json.dumps(["a" * 100, "b", "c", "d"])
    assert json.loads(page(text, "records", 1, 2, 1000).text) == ["b", "c"]
    assert json.loads(page(text, "records", 0, None, 10).text) == ["a" * 100]


def test_a_bad_offset_or_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        page("abc", "chars", 4, None, 10)
    with pytest.raises(ValueError, match="not a JSON array"):
        page("abc", "records", 0, None, 10)
