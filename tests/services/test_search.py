from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.search import (
    EMBEDDINGS_ENV,
    Hit,
    StaticEmbedder,
    ToolDoc,
    ToolIndex,
    query_weights,
    terms,
    tokenize,
)

REPO = Path(__file__).resolve().parent.parent.parent
FS_TOOLS = [
    (
        "read_file",
        "Read the complete contents of a file",
        {"properties": {"path": {"description": "File path"}}},
    ),
    ("list_directory", "List the entries of a directory", None),
    ("move_file", "Move or rename files and directories.", {"properties": {"source": {}, "destination": {}}}),
]
GIT_TOOLS = [
    ("git_log", "Shows the commit logs", {"properties": {"repo_path": {"type": "string"}}}),
    ("git_add", "Adds file contents to the staging area", None),
]
TIME_TOOLS = [("get_current_time", "Get the current time in a timezone", None)]


@pytest.fixture(scope="module")
def embedder() -> StaticEmbedder:
    loaded = StaticEmbedder.load()
    if loaded is None:
        pytest.skip(f"wordllama embeddings are not installed, or {EMBEDDINGS_ENV} turns them off")
    return loaded


def names(hits: list[Hit]) -> list[str]:
    return [f"{hit.server}:{hit.tool}" for hit in hits]


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


def test_digits_stay_with_their_word_and_non_ascii_words_stay_whole() -> None:
    assert tokenize("utf8 v2Beta 2FA café-au-lait naïveBayes") == [
        "utf8",
        "v2",
        "beta",
        "2",
        "fa",
        "café",
        "au",
        "lait",
        "naïvebayes",
    ]


def test_terms_drop_stopwords_and_share_a_stem_across_word_forms() -> None:
    assert terms("Listing all of the files") == ["list", "file"]
    assert terms("changes") == terms("changed") == terms("changing")


def test_query_terms_bring_their_synonyms_at_lower_weight() -> None:
    weights = query_weights("remove a folder")
    assert weights[terms("remove")[0]] == 1.0
    assert weights[terms("folder")[0]] == 1.0
    assert 0 < weights[terms("delete")[0]] < 1.0
    assert 0 < weights[terms("directory")[0]] < 1.0


def test_search_ranks_the_matching_tool_first_and_updates_per_server() -> None:
    index = ToolIndex()
    index.replace_server("fs", FS_TOOLS)
    index.replace_server("time", TIME_TOOLS)
    assert index.search("show me what is inside a file")[0].tool == "read_file"
    assert index.search("what time is it")[0].tool == "get_current_time"
    index.remove_server("time")
    assert all(hit.server == "fs" for hit in index.search("time"))
    assert len(index) == 3


def test_an_empty_index_or_query_finds_nothing() -> None:
    index = ToolIndex()
    assert index.search("anything") == []
    index.replace_server("a", [("x", "y", None)])
    assert index.search("") == []
    assert index.search("what is the") == []


def test_synonyms_and_abbreviations_reach_tools_that_use_other_words() -> None:
    index = ToolIndex()
    index.replace_server("fs", FS_TOOLS)
    index.replace_server("git", GIT_TOOLS)
    assert index.search("browse a folder")[0].tool == "list_directory"
    assert index.search("repo history")[0].tool == "git_log"


def test_a_match_in_the_name_outranks_the_same_word_deep_in_a_description() -> None:
    index = ToolIndex()
    index.replace_server(
        "s",
        [
            ("archive_project", "Bundle a project into a tarball. Old bundles are pruned after a week."),
            ("prune_cache", "Free disk space."),
        ],
    )
    assert names(index.search("prune"))[0] == "s:prune_cache"


def test_parameter_names_and_descriptions_are_searched() -> None:
    index = ToolIndex()
    index.replace_server(
        "s",
        [
            ("run", "Run a job", {"properties": {"cron_expression": {"description": "When to repeat"}}}),
            ("stop", "Stop a job", None),
        ],
    )
    assert names(index.search("cron"))[0] == "s:run"
    assert names(index.search("repeat"))[0] == "s:run"


def test_a_title_adds_only_the_words_its_name_lacks() -> None:
    plain, titled = ToolIndex(), ToolIndex()
    plain.replace_server("fs", [("read_file", "Read a file", None)])
    titled.replace_server("fs", [ToolDoc("read_file", "Read a file", None, "Read File (Deprecated)")])
    assert plain.search("read file")[0].score == titled.search("read file")[0].score
    assert titled.search("deprecated")[0].tool == "read_file"
    assert plain.search("deprecated") == []


def test_results_are_best_first_within_the_limit() -> None:
    index = ToolIndex()
    index.replace_server("fs", FS_TOOLS)
    index.replace_server("git", GIT_TOOLS)
    hits = index.search("file", limit=2)
    assert len(hits) == 2
    assert hits[0].score >= hits[1].score > 0
    assert index.search("file", limit=0) == []


def test_a_repeated_tool_name_is_indexed_once() -> None:
    index = ToolIndex()
    index.replace_server("s", [("echo", "Echo a message", None), ("echo", "Echo it again", None)])
    assert len(index) == 1
    assert names(index.search("echo")) == ["s:echo"]


def test_incremental_updates_score_exactly_like_an_index_built_from_scratch() -> None:
    churned = ToolIndex()
    churned.replace_server("fs", FS_TOOLS)
    churned.replace_server("git", [("git_status", "Shows the working tree status", None)])
    churned.replace_server("time", TIME_TOOLS)
    churned.remove_server("time")
    churned.replace_server("git", GIT_TOOLS)  # reuses freed slots
    churned.replace_server("fs", FS_TOOLS[:2])
    churned.replace_server("time", TIME_TOOLS)
    fresh = ToolIndex()
    fresh.replace_server("fs", FS_TOOLS[:2])
    fresh.replace_server("git", GIT_TOOLS)
    fresh.replace_server("time", TIME_TOOLS)
    assert len(churned) == len(fresh) == 5
    for query in ("file", "commit log", "what time is it", "list a folder", "status", "move"):
        assert sorted(churned.search(query), key=names_key) == sorted(fresh.search(query), key=names_key)
    assert churned.search("status") == []
    assert churned.search("rename") == []


def names_key(hit: Hit) -> tuple[str, str]:
    return hit.server, hit.tool


def test_removing_every_server_leaves_an_empty_index_that_still_works() -> None:
    index = ToolIndex()
    index.replace_server("fs", FS_TOOLS)
    index.remove_server("fs")
    index.remove_server("never-added")
    assert len(index) == 0
    assert index.search("file") == []
    index.replace_server("time", TIME_TOOLS)
    assert names(index.search("time")) == ["time:get_current_time"]


@pytest.mark.requires("embeddings")
def test_embeddings_find_a_paraphrase_that_shares_no_word_with_the_tool(embedder: StaticEmbedder) -> None:
    tools = [
        ("get_weather", "Current weather conditions and forecast for a city", None),
        ("send_email", "Send an email message to a recipient", None),
        ("create_invoice", "Create an invoice for a customer", None),
    ]
    lexical, hybrid = ToolIndex(), ToolIndex(embedder)
    lexical.replace_server("s", tools)
    hybrid.replace_server("s", tools)
    query = "will it rain tomorrow in Paris"
    assert lexical.search(query) == []
    assert names(hybrid.search(query))[0] == "s:get_weather"


@pytest.mark.requires("embeddings")
def test_embedded_vectors_follow_incremental_updates(embedder: StaticEmbedder) -> None:
    index = ToolIndex(embedder)
    index.replace_server("a", [("get_weather", "Weather forecast for a city", None)])
    index.replace_server("b", [("send_email", "Send an email message", None)])
    index.remove_server("a")
    assert "a:get_weather" not in names(index.search("will it rain tomorrow"))
    index.replace_server("a", [("get_weather", "Weather forecast for a city", None)])
    assert names(index.search("will it rain tomorrow"))[0] == "a:get_weather"


def test_embeddings_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EMBEDDINGS_ENV, "off")
    assert StaticEmbedder.load() is None


def test_loading_embeddings_neither_imports_wordllama_nor_touches_logging() -> None:
    code = (
        "import logging, sys\n"
        "from services.search import StaticEmbedder\n"
        "StaticEmbedder.load()\n"
        "assert 'wordllama' not in sys.modules\n"
        "assert logging.getLogger().handlers == []\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO)
