from __future__ import annotations

from services.search import ToolIndex, tokenize


def test_names_are_split_on_snake_camel_and_kebab_case() -> None:
    assert tokenize("read_file getTinyImage list-directory HTTPServer") == [
        "read",
        "file",
        "get",
        "tiny",
        "image",
        "list",
        "directory",
        "http",
        "server",
    ]


def test_search_ranks_the_matching_tool_first_and_updates_per_server() -> None:
    index = ToolIndex()
    index.replace_server(
        "fs",
        [
            (
                "read_file",
                "Read the complete contents of a file",
                {"properties": {"path": {"description": "File path"}}},
            ),
            ("list_directory", "List the entries of a directory", None),
        ],
    )
    index.replace_server("time", [("get_current_time", "Get the current time in a timezone", None)])
    assert index.search("show me what is inside a file")[0].tool == "read_file"
    assert index.search("what time is it")[0].tool == "get_current_time"
    index.remove_server("time")
    assert all(hit.server == "fs" for hit in index.search("time"))
    assert len(index) == 2


def test_an_empty_index_or_query_finds_nothing() -> None:
    index = ToolIndex()
    assert index.search("anything") == []
    index.replace_server("a", [("x", "y", None)])
    assert index.search("") == []
