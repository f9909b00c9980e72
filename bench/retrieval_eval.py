"""Retrieval quality through the real proxy: `retrieve_tools` over MCP, scored against graded labels.

    .venv/bin/python bench/retrieval_eval.py [--bm25-only] [--limit 10] [--runs-dir DIR] [--dump-tools FILE]

Starts `mcpproxy serve` with the seven reference servers of the public
mcpproxy-retrieval-v1 set as upstreams (npm filesystem, memory and
sequential-thinking from tests/fixtures/node_modules; PyPI git, fetch, time
and sqlite from tests/fixtures/eval/.venv, created by
tests/fixtures/eval/install.sh), asks `retrieve_tools` every query of the
golden set and of our own holdout sets, writes the run files and scores them
with the set's own `score.py`. Holdout sets (tests/fixtures/eval/): the first
was written before any ranking was tuned, the second after the method was
frozen; neither was used to tune it. `--bm25-only` runs the proxy with
MCPPROXY_SEARCH_EMBEDDINGS=off.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import trio
from mcp.client.session import ClientSession

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from services.search import EMBEDDINGS_ENV  # noqa: E402
from tests.proxyctl import Proxy, running_proxy  # noqa: E402

# The public evaluation set lives in `shared/eval` beside the repository checkout.
EVAL_SET: Final = Path(
    os.environ.get("MCPPROXY_EVAL_SET", Path(__file__).resolve().parents[2] / "shared" / "eval")
)
GOLDEN: Final = EVAL_SET / "mcpproxy-retrieval-v1" / "retrieval_golden_v1.json"
CORPUS: Final = EVAL_SET / "mcpproxy-retrieval-v1" / "corpus_v1.tools.json"
SCORER: Final = EVAL_SET / "score.py"
FIXTURES: Final = REPO / "tests" / "fixtures"
EVAL_FIXTURES: Final = FIXTURES / "eval"
QUERY_SETS: Final = {
    "golden": GOLDEN,
    "holdout": EVAL_FIXTURES / "holdout_queries.json",
    "holdout2": EVAL_FIXTURES / "holdout2_queries.json",
}
INSTALL: Final = EVAL_FIXTURES / "install.sh"
EVAL_VENV_BIN: Final = EVAL_FIXTURES / ".venv" / "bin"
NODE_SERVERS: Final = FIXTURES / "node_modules" / "@modelcontextprotocol"
NODE_PACKAGES: Final = ("server-filesystem", "server-memory", "server-sequential-thinking")
SERVER_NAMES: Final = ("filesystem", "memory", "sequential-thinking", "git", "fetch", "time", "sqlite")
INSTALL_TIMEOUT_S: Final = 600.0
SCORE_TIMEOUT_S: Final = 60.0
QUERY_TIMEOUT_S: Final = 10.0
DEFAULT_LIMIT: Final = 10
METRICS: Final = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr", "ndcg@10")
PUBLISHED: Final = {
    "mcpproxy-go, published (golden)": {
        "recall@1": 0.418,
        "recall@3": 0.560,
        "recall@5": 0.681,
        "recall@10": 0.791,
        "mrr": 0.568,
        "ndcg@10": 0.609,
    }
}


def missing_inputs() -> str | None:
    """Why the eval cannot run here (no eval set, no npm servers), or None."""
    for needed in (GOLDEN, CORPUS, SCORER):
        if not needed.is_file():
            return f"missing {needed} (set MCPPROXY_EVAL_SET to the eval directory)"
    missing = [n for n in NODE_PACKAGES if not (NODE_SERVERS / n / "dist" / "index.js").is_file()]
    if missing:
        return f"missing npm servers {missing}: run npm ci --prefix tests/fixtures"
    return None


def install_servers() -> str | None:
    """Create the Python servers' environment; None on success, else why it failed."""
    try:
        done = subprocess.run(
            ["sh", str(INSTALL)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{INSTALL.name} failed: {exc}"
    if done.returncode != 0:
        return f"{INSTALL.name} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
    return None


def eval_servers(workdir: Path) -> list[dict[str, Any]]:
    """Config entries for the seven reference servers; their data lives under `workdir`."""
    files = workdir / "files"
    files.mkdir(parents=True, exist_ok=True)

    def node(name: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        script = NODE_SERVERS / f"server-{name}" / "dist" / "index.js"
        return {"name": name, "command": "node", "args": [str(script), *args], "env": env or {}}

    def python(name: str, *args: str) -> dict[str, Any]:
        return {"name": name, "command": str(EVAL_VENV_BIN / f"mcp-server-{name}"), "args": list(args)}

    return [
        node("filesystem", str(files)),
        node("memory", env={"MEMORY_FILE_PATH": str(workdir / "memory.jsonl")}),
        node("sequential-thinking", env={"DISABLE_THOUGHT_LOGGING": "true"}),
        python("git"),
        python("fetch"),
        python("time", "--local-timezone", "UTC"),
        python("sqlite", "--db-path", str(workdir / "eval.db")),
    ]


def load_queries(path: Path) -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = json.loads(path.read_text())["queries"]
    return queries


async def retrieve(session: ClientSession, query: str, limit: int) -> list[str]:
    result = await session.call_tool("retrieve_tools", {"query": query, "limit": limit})
    if result.is_error or result.structured_content is None:
        raise AssertionError(f"retrieve_tools failed for {query!r}: {result.content}")
    return [tool["name"] for tool in result.structured_content["tools"]]


async def run_queries(proxy: Proxy, queries: list[dict[str, Any]], limit: int) -> dict[str, list[str]]:
    """The run file: query id -> `server:tool` ids, best first, as the proxy returned them."""
    run = {}
    async with proxy.mcp() as session:
        for query in queries:
            with trio.fail_after(QUERY_TIMEOUT_S):
                run[query["id"]] = await retrieve(session, query["query"], limit)
    return run


async def live_tools(proxy: Proxy) -> dict[str, list[dict[str, Any]]]:
    tools = {}
    for name in SERVER_NAMES:
        response = await proxy.get(f"/api/v1/servers/{name}/tools")
        response.raise_for_status()
        tools[name] = response.json()["data"]["tools"]
    return tools


def score(golden: Path, run: dict[str, list[str]], run_path: Path) -> dict[str, float]:
    run_path.write_text(json.dumps(run, indent=1))
    done = subprocess.run(
        [sys.executable, str(SCORER), str(golden), str(run_path)],
        capture_output=True,
        text=True,
        timeout=SCORE_TIMEOUT_S,
        check=True,
    )
    metrics: dict[str, float] = json.loads(done.stdout)
    return metrics


async def evaluate(
    workdir: Path, *, limit: int = DEFAULT_LIMIT, embeddings: bool = True, dump_tools: Path | None = None
) -> dict[str, dict[str, float]]:
    """Start the proxy with the seven servers, run every query set, return metrics per set."""
    runs: dict[str, dict[str, list[str]]] = {}
    env = {} if embeddings else {EMBEDDINGS_ENV: "off"}
    async with running_proxy(workdir, eval_servers(workdir), env=env) as proxy:
        for name in SERVER_NAMES:
            await proxy.wait_for(name, "running")
        tools = await live_tools(proxy)
        corpus = {t["tool_id"] for t in json.loads(CORPUS.read_text())["tools"]}
        live = {f"{server}:{t['name']}" for server, listed in tools.items() for t in listed}
        if live != corpus:
            raise AssertionError(
                f"the live servers do not serve corpus_v1: missing {sorted(corpus - live)}, "
                f"extra {sorted(live - corpus)}"
            )
        if dump_tools is not None:
            dump_tools.write_text(json.dumps(tools, indent=1))
        for set_name, path in QUERY_SETS.items():
            runs[set_name] = await run_queries(proxy, load_queries(path), limit)
    return {
        set_name: score(path, runs[set_name], workdir / f"run_{set_name}.json")
        for set_name, path in QUERY_SETS.items()
    }


def table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table, one row per query set (the row name says how many queries it has)."""
    head = f"| {'set':<32} | " + " | ".join(f"{m:>9}" for m in METRICS) + " |"
    rule = f"|{'-' * 34}|" + "|".join("-" * 11 for _ in METRICS) + "|"
    rows = []
    for name, values in results.items():
        label = f"{name} ({int(values['queries'])} queries)" if "queries" in values else name
        rows.append(f"| {label:<32} | " + " | ".join(f"{values[m]:>9.3f}" for m in METRICS) + " |")
    return "\n".join([head, rule, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bm25-only", action="store_true", help="run the proxy without embeddings")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="retrieve_tools limit per query")
    parser.add_argument("--runs-dir", type=Path, help="keep the run files here (default: a temp dir)")
    parser.add_argument("--dump-tools", type=Path, help="write the live tool lists (with schemas) here")
    args = parser.parse_args()
    problem = missing_inputs() or install_servers()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.runs_dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = trio.run(
            lambda: evaluate(
                workdir, limit=args.limit, embeddings=not args.bm25_only, dump_tools=args.dump_tools
            )
        )
    mode = "BM25 only" if args.bm25_only else "BM25 + embeddings (when installed)"
    print(f"retrieve_tools through mcpproxy serve, 7 reference servers, limit {args.limit}, {mode}")
    print(table(results | PUBLISHED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
