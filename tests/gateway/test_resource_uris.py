"""The URIs agents see for upstream resources, and pages of aggregated lists."""

from __future__ import annotations

import pytest

from gateway.resource_uris import decode_cursor, matches_template, page, qualify, unqualify


@pytest.mark.parametrize(
    "uri",
    ["file:///README.md", "ui://widget/card.html", "demo://resource/x?a=1#top", "https://h/p%20q", "x"],
)
def test_a_qualified_uri_gives_back_its_server_and_the_original_exactly(uri: str) -> None:
    shown = qualify("my-server.1", uri)
    assert shown.startswith("mcpproxy://my-server.1/")
    assert unqualify(shown) == ("my-server.1", uri)


@pytest.mark.parametrize("uri", ["file:///README.md", "mcpproxy://", "mcpproxy://server", "mcpproxy:///x"])
def test_other_uris_are_not_ours(uri: str) -> None:
    assert unqualify(uri) is None


def test_an_expanded_qualified_template_is_the_expanded_original_behind_the_prefix() -> None:
    template = qualify("fs", "demo://resource/dynamic/text/{resourceId}")
    assert unqualify(template.replace("{resourceId}", "3")) == ("fs", "demo://resource/dynamic/text/3")


@pytest.mark.parametrize(
    ("template", "uri", "expected"),
    [
        ("demo://text/{id}", "demo://text/3", True),
        ("demo://text/{id}", "demo://text/3/4", False),
        ("file:///{+path}", "file:///a/b/c.md", True),
        ("repo://{owner}/{name}", "repo://me/proj", True),
        ("search://q{?term,limit}", "search://q?term=x&limit=2", True),
        ("demo://text/{id}", "other://text/3", False),
    ],
)
def test_template_matching(template: str, uri: str, expected: bool) -> None:
    assert matches_template(template, uri) is expected


def test_cursors_name_the_last_key_so_servers_coming_and_going_skip_nothing() -> None:
    entries = [((server, str(i)), f"{server}{i}") for server in ("a", "b", "c") for i in range(3)]
    first = page(entries, None, size=4)
    assert first is not None
    items, cursor = first
    assert items == ["a0", "a1", "a2", "b0"] and cursor is not None
    # Server "a" went away and "aa" appeared between the two pages: "b" goes on where it was.
    later = [e for e in entries if e[0][0] != "a"] + [(("aa", "0"), "aa0")]
    rest = page(sorted(later), cursor, size=10)
    assert rest == (["b1", "b2", "c0", "c1", "c2"], None)


def test_a_cursor_we_did_not_make_is_refused() -> None:
    assert decode_cursor("not base64!") is None
    assert page([], "eyJ4IjogMX0=", size=1) is None  # {"x": 1}
