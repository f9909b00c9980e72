"""A query that names a tool has it first (services/search_names.py, services/search.py)."""

from __future__ import annotations

import pytest

from services.search import ToolIndex
from services.search_names import NameTable, fold, named_words


def test_names_fold_case_dashes_and_underscores() -> None:
    assert fold("Git-Status") == fold("git_status") == fold("gitstatus") == "gitstatus"


def test_only_words_that_look_like_names_are_taken_from_a_sentence() -> None:
    assert named_words("fetch the git log") == ["fetch the git log"]
    assert named_words("please run `git_status`, then commit.") == [
        "please run `git_status`, then commit",
        "git_status",
    ]
    assert named_words("call gitStatus now") == ["call gitStatus now", "gitStatus"]
    assert named_words("  `fetch`  ") == ["fetch"]


def table() -> NameTable:
    names = NameTable()
    names.add("git", ["git_status", "git_log"])
    names.add("my__server", ["status"])
    names.add("fetch", ["fetch"])
    return names


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("git:git_status", [("git", "git_status")]),
        ("GIT:GIT-STATUS", [("git", "git_status")]),
        ("git__git_status", [("git", "git_status")]),
        ("git_status", [("git", "git_status")]),
        ("git status", [("git", "git_status")]),
        ("my__server__status", [("my__server", "status")]),
        ("fetch", [("fetch", "fetch")]),
        ("fetch the git log", []),
        ("show the log with git_log please", [("git", "git_log")]),
        ("grab https://example.com/pricing at 9:00", []),
    ],
)
def test_a_query_names_tools_by_any_spelling(query: str, expected: list[tuple[str, str]]) -> None:
    assert table().named(query) == expected


def test_a_removed_tool_is_no_longer_named() -> None:
    names = table()
    names.remove("git", "git_status")
    assert names.named("git:git_status") == [] and names.named("git_status") == []
    assert names.named("git_log") == [("git", "git_log")]


def test_a_named_tool_comes_first_whatever_the_scores_say() -> None:
    index = ToolIndex()
    index.replace_server("fetch", [("fetch", "Fetch a URL from the internet and return its content.")])
    index.replace_server(
        "git",
        [
            ("git_log", "Show the commit log of a git repository."),
            ("git_status", "Show the working tree status."),
            ("git_show", "Show the contents of a commit from the log."),
        ],
    )
    assert index.search("show the git commit log")[0].tool == "git_log"
    assert [h.tool for h in index.search("git_show")][:1] == ["git_show"]
    assert [h.tool for h in index.search("git:git-status", limit=2)] == ["git_status", "git_log"]
    assert index.search("is the commit log in git_status")[0].tool == "git_status"
    index.remove_server("git")
    assert index.search("git_status") == []
