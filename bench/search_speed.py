"""Tool search speed on a synthetic catalogue: query latency and index update cost.

    .venv/bin/python bench/search_speed.py [--sizes 1000 10000] [--queries 2000]

Builds a deterministic synthetic catalogue (servers of 50 tools; snake_case and
camelCase names, Zipf-distributed description vocabulary, parameters with
descriptions), indexes it with services.search.ToolIndex (BM25 alone, and with
embeddings when they are installed) and prints per size:
- p50/p99/max wall-clock latency of `search(query, 15)`, and the p99 of the
  thread's own CPU time, which preemption by other processes does not inflate
  (on a busy machine wall p99 measures the machine, CPU p99 the search);
- the time to build the whole index;
- the cost of replacing and of removing one server (the incremental update the
  gateway does when a server's tools change), and the latency of the first
  query after such a replacement (it rebuilds the arrays of the terms touched).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.samples import percentile  # noqa: E402
from services.search import StaticEmbedder, ToolIndex  # noqa: E402

TOOLS_PER_SERVER: Final = 50
WARMUP: Final = 200
SEED: Final = 6
ZIPF_OFFSET: Final = 50
VERBS: Final = (
    "get list create delete update read write search find fetch send run execute query add remove set "
    "move copy rename open close start stop restart check validate convert parse format export import "
    "upload download sync merge commit push pull deploy build test scan index watch subscribe publish "
    "schedule cancel approve reject assign archive restore backup describe show count summarize translate"
).split()
NOUNS: Final = (
    "file directory folder path repository branch commit issue pull request comment user group team "
    "project task ticket message channel thread email calendar event meeting note document page table "
    "row column database query schema record entity relation graph node edge image video audio url "
    "link website page content text markdown json yaml config setting secret token key certificate "
    "container pod service deployment cluster namespace volume bucket object blob queue topic stream "
    "log metric alert incident dashboard report invoice payment customer order product price stock "
    "time date timezone weather location map route address contact invitation label tag workflow "
    "pipeline job build artifact release version package dependency library function variable symbol"
).split()
FILLER: Final = (
    "the a of to in for with and or from by on this that an it as is be are will can all any each "
    "specified given optional current new existing multiple single specific detailed full recursive "
    "within between across into using based returns information including its their which when if"
).split()


def zipf_vocabulary(rng: random.Random, size: int) -> tuple[list[str], list[float]]:
    """Real words, then invented product words, with Zipf weights (s = 1.07) from rank 50 on.

    The ~50 most frequent words of English text are function words (FILLER stands for them), so
    content words start at rank 50: the commonest then appears in ~15 % of descriptions, as "file"
    does in a catalogue of file-system tools.
    """
    words = list(dict.fromkeys(NOUNS + VERBS))
    syllables = ["ka", "lo", "mi", "ter", "zan", "qu", "bri", "on", "ex", "ra", "vel", "dor", "sy", "po"]
    while len(words) < size:
        words.append("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    rng.shuffle(words)
    weights = [1.0 / (rank + ZIPF_OFFSET) ** 1.07 for rank in range(len(words))]
    return words, weights


def synthetic_catalogue(n_tools: int, seed: int = SEED) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    rng = random.Random(seed)
    vocab, weights = zipf_vocabulary(rng, 20_000)
    servers: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for number in range((n_tools + TOOLS_PER_SERVER - 1) // TOOLS_PER_SERVER):
        server = f"{rng.choice(NOUNS)}-{rng.choice(vocab)}-{number}"
        tools = []
        for index in range(min(TOOLS_PER_SERVER, n_tools - number * TOOLS_PER_SERVER)):
            verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
            name = f"{verb}{noun.title()}{index}" if rng.random() < 0.3 else f"{verb}_{noun}_{index}"
            words = rng.choices(vocab, weights, k=rng.randint(8, 60))
            for position in range(0, len(words), 3):
                words.insert(position, rng.choice(FILLER))
            description = f"{verb.title()} a {noun} " + " ".join(words) + "."
            properties = {
                f"{rng.choice(NOUNS)}_{rng.choice(NOUNS)}": {
                    "type": "string",
                    "description": " ".join(rng.choices(vocab, weights, k=rng.randint(3, 12))),
                }
                for _ in range(rng.randint(0, 5))
            }
            tools.append((name, description, {"type": "object", "properties": properties}))
        servers[server] = tools
    return servers


def synthetic_queries(count: int, seed: int = SEED + 1) -> list[str]:
    rng = random.Random(seed)
    vocab, weights = zipf_vocabulary(random.Random(SEED), 20_000)
    queries = []
    for _ in range(count):
        words = [rng.choice(VERBS), rng.choice(FILLER), rng.choice(NOUNS)]
        words += rng.choices(vocab, weights, k=rng.randint(0, 7))
        words += rng.choices(FILLER, k=rng.randint(0, 3))
        rng.shuffle(words)
        queries.append(" ".join(words))
    return queries


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def measure(n_tools: int, n_queries: int, embedder: StaticEmbedder | None) -> dict[str, float]:
    catalogue = synthetic_catalogue(n_tools)
    queries = synthetic_queries(n_queries + WARMUP)
    index = ToolIndex(embedder)

    def build() -> None:
        for server, tools in catalogue.items():
            index.replace_server(server, tools)

    build_ms = timed_ms(build)
    for query in queries[:WARMUP]:
        index.search(query, 15)
    gc.collect()
    samples, cpu = [], []
    for query in queries[WARMUP:]:
        wall_started, cpu_started = time.perf_counter(), time.thread_time()
        index.search(query, 15)
        samples.append((time.perf_counter() - wall_started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)
    servers = list(catalogue)
    replace, after = [], []
    for number, server in enumerate(servers[:20]):
        replace.append(timed_ms(lambda s=server: index.replace_server(s, catalogue[s])))  # type: ignore[misc]
        after.append(timed_ms(lambda q=queries[number]: index.search(q, 15)))  # type: ignore[misc]
    remove = []
    for server in servers[:20]:
        remove.append(timed_ms(lambda s=server: index.remove_server(s)))  # type: ignore[misc]
        index.replace_server(server, catalogue[server])
    assert len(index) == n_tools
    return {
        "p50": statistics.median(samples),
        "p99": percentile(samples, 0.99),
        "max": max(samples),
        "cpu p99": percentile(cpu, 0.99),
        "build": build_ms,
        "replace": statistics.median(replace),
        "after": statistics.median(after),
        "remove": statistics.median(remove),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--queries", type=int, default=2_000)
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = StaticEmbedder.load()
    load_ms = (time.perf_counter() - started) * 1000
    modes: dict[str, StaticEmbedder | None] = {"BM25": None}
    if embedder is not None:
        modes["BM25 + embeddings"] = embedder
    print(
        f"ToolIndex.search(query, 15) on a synthetic catalogue, {args.queries} queries after {WARMUP} warm-up; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today()}"
    )
    print(f"embeddings: loaded in {load_ms:.0f} ms" if embedder else "embeddings: not available")
    print(
        f"| {'mode':<17} | {'tools':>6} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | {'CPU p99':>7} | {'build ms':>9} "
        f"| {'replace 1 server ms':>19} | {'next query ms':>13} | {'remove 1 server ms':>18} |"
    )
    print(
        f"|{'-' * 19}|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 11}|{'-' * 21}|{'-' * 15}|{'-' * 20}|"
    )
    for size in args.sizes:
        for mode, mode_embedder in modes.items():
            row = measure(size, args.queries, mode_embedder)
            print(
                f"| {mode:<17} | {size:>6} | {row['p50']:>7.3f} | {row['p99']:>7.3f} | {row['max']:>7.2f} "
                f"| {row['cpu p99']:>7.3f} "
                f"| {row['build']:>9.0f} | {row['replace']:>19.2f} | {row['after']:>13.2f} | {row['remove']:>18.2f} |"
            )


if __name__ == "__main__":
    main()
