"""Tokens the agent reads: `retrieve_tools` answers compact vs full, `/mcp/all` listings deferred vs full.

    .venv/bin/python bench/context_tokens.py

Starts `mcpproxy serve` with the seven reference servers of the public
mcpproxy-retrieval-v1 set (as bench/retrieval_eval.py does), asks `retrieve_tools`
every golden query with `detail: "compact"` and with `detail: "full"` (default limit)
and counts the tokens of each answer's text, checking that both rank the same tools
in the same order; then lists `/mcp/all` with `direct_mode` full and deferred and
counts the tokens of each `tools/list` result. Tokens are counted with the tokenizer
the proxy already ships for search (WordLlama's `l2_supercat`, the Llama 2 BPE with
32,000 entries, read offline from the `wordllama` package); cl100k would need a
download at run time.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio
from mcp.client.session import ClientSession

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.retrieval_eval import (  # noqa: E402
    GOLDEN,
    QUERY_TIMEOUT_S,
    SERVER_NAMES,
    eval_servers,
    install_servers,
    load_queries,
    missing_inputs,
)
from services.search import WORDLLAMA_TOKENIZER  # noqa: E402
from tests.proxyctl import running_proxy  # noqa: E402

TOKENIZER_NAME: Final = "WordLlama l2_supercat (Llama 2 BPE, 32k)"
TARGET_RATIO: Final = 1 / 3
"""Compact answers at most a third of full ones' tokens (issue 22)."""


@dataclass(frozen=True)
class ContextTokens:
    queries: int
    compact: int
    full: int
    same_ranking: bool
    listing_full: int
    listing_deferred: int
    listed_tools: int

    @property
    def ratio(self) -> float:
        return self.compact / self.full if self.full else 0.0


class TokenCounter:
    def __init__(self) -> None:
        from tokenizers import Tokenizer

        spec = importlib.util.find_spec("wordllama")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the wordllama package (its tokenizer) is not installed")
        root = Path(next(iter(spec.submodule_search_locations)))
        self._tokenizer = Tokenizer.from_file(str(root / WORDLLAMA_TOKENIZER))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


async def _answers(session: ClientSession, query: str, detail: str) -> tuple[str, list[str]]:
    result = await session.call_tool("retrieve_tools", {"query": query, "detail": detail})
    if result.is_error or result.structured_content is None:
        raise AssertionError(f"retrieve_tools failed for {query!r}: {result.content}")
    text = "".join(getattr(block, "text", "") for block in result.content)
    return text, [tool["name"] for tool in result.structured_content["tools"]]


async def _listing(workdir: Path, direct_mode: str, counter: TokenCounter) -> tuple[int, int]:
    """Tokens of the `/mcp/all` tools/list result as it goes on the wire, and how many tools it lists."""
    async with running_proxy(workdir, eval_servers(workdir), direct_mode=direct_mode) as proxy:
        for name in SERVER_NAMES:
            await proxy.wait_for(name, "running")
        async with proxy.mcp("/mcp/all") as session:
            listed = await session.list_tools()
    wire = listed.model_dump(mode="json", by_alias=True, exclude_none=True)
    return counter.count(json.dumps(wire)), len(listed.tools)


async def measure(workdir: Path) -> ContextTokens:
    counter = TokenCounter()
    queries = load_queries(GOLDEN)
    compact = full = 0
    same = True
    first = workdir / "search"
    first.mkdir(parents=True, exist_ok=True)
    async with running_proxy(first, eval_servers(first)) as proxy:
        for name in SERVER_NAMES:
            await proxy.wait_for(name, "running")
        async with proxy.mcp() as session:
            for query in queries:
                with trio.fail_after(QUERY_TIMEOUT_S):
                    compact_text, compact_names = await _answers(session, query["query"], "compact")
                    full_text, full_names = await _answers(session, query["query"], "full")
                compact += counter.count(compact_text)
                full += counter.count(full_text)
                same = same and compact_names == full_names
    listings = {}
    for mode in ("full", "deferred"):
        (workdir / mode).mkdir(parents=True, exist_ok=True)
        listings[mode] = await _listing(workdir / mode, mode, counter)
    return ContextTokens(
        queries=len(queries),
        compact=compact,
        full=full,
        same_ranking=same,
        listing_full=listings["full"][0],
        listing_deferred=listings["deferred"][0],
        listed_tools=listings["full"][1],
    )


def describe(tokens: ContextTokens) -> list[tuple[str, str, str, bool | None]]:
    """(what, figure, target, met) rows for bench/report.py."""
    per = tokens.queries or 1
    listing_ratio = tokens.listing_deferred / tokens.listing_full if tokens.listing_full else 0.0
    return [
        (
            f"retrieve_tools answer tokens, compact vs full, {tokens.queries} public golden queries "
            f"(default limit; {TOKENIZER_NAME})",
            f"{tokens.compact / per:,.0f} vs {tokens.full / per:,.0f} per answer ({tokens.ratio:.2f}×); "
            f"same ranking: {'yes' if tokens.same_ranking else 'no'}",
            "≤ 1/3 of full, same ranking",
            tokens.ratio <= TARGET_RATIO and tokens.same_ranking,
        ),
        (
            f"/mcp/all tools/list tokens, 7 reference servers ({tokens.listed_tools} tools), deferred vs full",
            f"{tokens.listing_deferred:,} vs {tokens.listing_full:,} ({listing_ratio:.2f}×)",
            "—",
            None,
        ),
    ]


def main() -> int:
    problem = missing_inputs() or install_servers()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tokens = trio.run(measure, Path(tmp))
    for what, figure, target, met in describe(tokens):
        print(f"| {what} | {figure} | {target} | {'—' if met is None else ('yes' if met else 'no')} |")
    print(json.dumps(tokens.__dict__ | {"ratio": round(tokens.ratio, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
