"""Every measurement `bench/run.py` makes, in one run, each against its target and the same baseline.

Stages run one after another (never two at once, so they do not compete for
the cores): the direct stdio baseline, a proxy with one echo upstream
(memory, latency, throughput), empty proxies (launch to ready), a proxy with a
fleet of echo upstreams (all running, memory, stop), tool search, then the
peers. A stage that fails becomes a failed row; the others still run.
"""

from __future__ import annotations

import enum
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

import trio

from bench import search_speed
from bench.clients import MESSAGE, open_mcp_call, open_stdio_call
from bench.latency import echo_start_s, latency_of
from bench.memory import ProxyMemory, measure_proxy
from bench.peer_install import NotInstalledError
from bench.peers import PEERS, Peer, install, measure_peer
from bench.processes import STOP_DEADLINE_S
from bench.proxy import Proxy, Role, echo_servers, open_proxy
from bench.report import Row
from bench.samples import Latency
from bench.throughput import throughput_of
from services.search import StaticEmbedder
from tests.proxyctl import alive

TARGET_ADDED_P50_MS: Final = 1.0
TARGET_ADDED_P99_MS: Final = 3.0
TARGET_RATE: Final = 600.0
TARGET_RATE_SESSIONS: Final = 10
TARGET_WORKER_MIB: Final = 15.0
TARGET_READY_S: Final = 1.0
TARGET_SEARCH_P99_MS: Final = 5.0
TARGET_SEARCH_TOOLS: Final = 10_000
TARGET_STOP_S: Final = 3.0
MEMORY_SETTLE_S: Final = 1.0
"""After the last server is running, let workers finish their first tools/list before reading PSS."""
FAILURE_CHARS: Final = 300


@dataclass(frozen=True)
class Counts:
    """How much each stage does: the full run, or `--quick`."""

    calls: int
    sessions: tuple[int, ...]
    session_calls: int
    fleet: int
    startups: int
    echo_starts: int
    search_sizes: tuple[int, ...]
    search_queries: int


FULL: Final = Counts(
    calls=1000, sessions=(10, 50), session_calls=100, fleet=50, startups=3, echo_starts=5,
    search_sizes=(1_000, 10_000), search_queries=2_000,
)  # fmt: skip
QUICK: Final = Counts(
    calls=100, sessions=(10, 50), session_calls=10, fleet=5, startups=1, echo_starts=2,
    search_sizes=(1_000, 10_000), search_queries=200,
)  # fmt: skip


class Section(enum.Enum):
    """The table's sections, in the order they are printed."""

    LATENCY = "call latency"
    THROUGHPUT = "throughput"
    MEMORY = "memory"
    STARTUP = "startup"
    SEARCH = "search"
    STOP = "stop"
    PEERS = "peers"


def _ms(value: float) -> str:
    return f"{value:+.2f} ms"


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Suite:
    """Runs the stages and keeps their rows by section."""

    def __init__(self, counts: Counts, scratch: Path) -> None:
        self.counts = counts
        self.scratch = scratch
        self.rows: dict[Section, list[Row]] = {section: [] for section in Section}
        self.failures = 0
        self.baseline: Latency | None = None
        self.echo_start_s: float | None = None
        self.memory_one: ProxyMemory | None = None

    def add(self, section: Section, row: Row) -> None:
        self.rows[section].append(row)

    def table_rows(self) -> list[Row]:
        return [row for section in Section for row in self.rows[section]]

    async def _stage(self, section: Section, what: str, stage: Callable[[], Awaitable[None]]) -> None:
        progress(what)
        try:
            await stage()
        except Exception as exc:  # a failed stage is reported as a row; the others still run
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:FAILURE_CHARS]
            progress(f"{what} failed: {message}")
            self.add(section, Row(what, f"failed: {message}", met=False))
            self.failures += 1

    async def run(self) -> None:
        await self._stage(Section.LATENCY, "direct stdio baseline", self.baseline_stage)
        await self._stage(Section.LATENCY, "proxy with 1 upstream", self.one_upstream_stage)
        await self._stage(Section.STARTUP, "launch to /readyz", self.startup_stage)
        await self._stage(Section.STOP, f"proxy with {self.counts.fleet} upstreams", self.fleet_stage)
        await self._stage(Section.SEARCH, "tool search", self.search_stage)
        for peer in PEERS:
            await self._stage(Section.PEERS, f"peer {peer.name}", partial(self.peer_stage, peer))

    def _require_baseline(self) -> Latency:
        if self.baseline is None:
            raise RuntimeError("no direct stdio baseline to compare with (that stage failed)")
        return self.baseline

    async def baseline_stage(self) -> None:
        self.baseline = await latency_of(open_stdio_call, self.counts.calls)
        self.add(Section.LATENCY, Row(
            f"direct stdio echo call, SDK client (baseline): p50 / p99, {self.counts.calls} calls",
            f"{self.baseline.p50_ms:.2f} / {self.baseline.p99_ms:.2f} ms ({self.baseline.rate:.0f} calls/s)",
        ))  # fmt: skip
        self.echo_start_s = await echo_start_s(self.counts.echo_starts)

    def _latency_rows(self, surface: str, measured: Latency) -> None:
        added_p50, added_p99 = measured.added_over(self._require_baseline())
        self.add(Section.LATENCY, Row(
            f"added p50, {surface}", f"{_ms(added_p50)} (p50 {measured.p50_ms:.2f} ms)",
            f"≤ {TARGET_ADDED_P50_MS:.1f} ms", added_p50 <= TARGET_ADDED_P50_MS,
        ))  # fmt: skip
        self.add(Section.LATENCY, Row(
            f"added p99, {surface}", f"{_ms(added_p99)} (p99 {measured.p99_ms:.2f} ms)",
            f"≤ {TARGET_ADDED_P99_MS:.1f} ms", added_p99 <= TARGET_ADDED_P99_MS,
        ))  # fmt: skip

    async def one_upstream_stage(self) -> None:
        async with open_proxy(self.scratch / "one", echo_servers(1)) as proxy:
            await proxy.wait_ready()
            await proxy.wait_running(1)
            await trio.sleep(MEMORY_SETTLE_S)
            self.memory_one = measure_proxy(proxy)
            self.add(Section.MEMORY, Row(
                "PSS of the proxy's processes, 1 upstream",
                f"{self.memory_one.total_mib:.1f} MiB ({self.memory_one.describe()})",
            ))  # fmt: skip
            all_tools = partial(open_mcp_call, f"{proxy.base_url}/mcp/all", "echo__echo", MESSAGE)
            read_tool = partial(
                open_mcp_call,
                f"{proxy.base_url}/mcp",
                "call_tool_read",
                {"name": "echo:echo", "args": MESSAGE},
            )
            self._latency_rows("proxy /mcp/all (direct mode)", await latency_of(all_tools, self.counts.calls))
            self._latency_rows("proxy /mcp call_tool_read", await latency_of(read_tool, self.counts.calls))
            for sessions in self.counts.sessions:
                rate = await throughput_of(all_tools, sessions, self.counts.session_calls)
                has_target = sessions == TARGET_RATE_SESSIONS
                self.add(Section.THROUGHPUT, Row(
                    f"proxy /mcp/all, {sessions} sessions × {self.counts.session_calls} calls at once",
                    f"{rate:.0f} calls/s",
                    f"≥ {TARGET_RATE:.0f} calls/s" if has_target else "—",
                    rate >= TARGET_RATE if has_target else None,
                ))  # fmt: skip

    async def startup_stage(self) -> None:
        samples = []
        for attempt in range(self.counts.startups):
            async with open_proxy(self.scratch / f"empty-{attempt}", []) as proxy:
                samples.append(await proxy.wait_ready())
        median = statistics.median(samples)
        each = ", ".join(f"{sample:.2f}" for sample in samples)
        self.add(Section.STARTUP, Row(
            "launch of `mcpproxy serve` to /readyz 200, no upstreams",
            f"{median:.2f} s (median of {len(samples)}: {each})",
            f"≤ {TARGET_READY_S:.1f} s", median <= TARGET_READY_S,
        ))  # fmt: skip

    async def fleet_stage(self) -> None:
        count = self.counts.fleet
        async with open_proxy(self.scratch / "fleet", echo_servers(count)) as proxy:
            ready_s = await proxy.wait_ready()
            running_s = await proxy.wait_running(count)
            figure = f"{running_s:.1f} s ({running_s - ready_s:.1f} s after /readyz)"
            if self.echo_start_s is not None:
                cores = os.cpu_count() or 1
                figure += (
                    f"; one echo server alone starts in {self.echo_start_s:.2f} s, "
                    f"× {count} / {cores} cores = {self.echo_start_s * count / cores:.1f} s"
                )
            self.add(Section.STARTUP, Row(f"launch to all {count} stdio echo upstreams running", figure))
            await trio.sleep(MEMORY_SETTLE_S)
            self._memory_rows(measure_proxy(proxy), count)
            await self._stop(proxy, count)

    def _memory_rows(self, memory: ProxyMemory, count: int) -> None:
        self.add(Section.MEMORY, Row(
            f"PSS of the proxy's processes, {count} upstreams", f"{memory.total_mib:.1f} MiB ({memory.describe()})",
        ))  # fmt: skip
        if self.memory_one is None or count < 2:
            return
        per_worker = (memory.total_mib - self.memory_one.total_mib) / (count - 1)
        self.add(Section.MEMORY, Row(
            f"PSS per additional worker ((total with {count} - with 1) / {count - 1})",
            f"{per_worker:.1f} MiB", f"≤ {TARGET_WORKER_MIB:.0f} MiB", per_worker <= TARGET_WORKER_MIB,
        ))  # fmt: skip

    async def _stop(self, proxy: Proxy, count: int) -> None:
        processes = proxy.processes()
        upstreams = processes[Role.UPSTREAM]
        others = [pid for role, pids in processes.items() if role is not Role.UPSTREAM for pid in pids]
        started = time.perf_counter()
        proxy.tree.signal_leader(signal.SIGTERM)
        with trio.fail_after(STOP_DEADLINE_S):
            await proxy.tree.process.wait()
        stop_s = time.perf_counter() - started
        left_upstreams, left_others = alive(upstreams), alive(others)
        left = f"{len(left_upstreams)} of {len(upstreams)} echo servers left"
        if left_others:
            left += f", {len(left_others)} proxy processes left"
        self.add(Section.STOP, Row(
            f"SIGTERM to `mcpproxy serve` until it exits, {count} polite upstreams", f"{stop_s:.2f} s; {left}",
            f"≤ {TARGET_STOP_S:.1f} s, none left",
            stop_s <= TARGET_STOP_S and not left_upstreams and not left_others,
        ))  # fmt: skip

    async def search_stage(self) -> None:
        embedder = StaticEmbedder.load()
        mode = "BM25F + embeddings" if embedder is not None else "BM25F only, embeddings unavailable"
        for size in self.counts.search_sizes:
            # In-process and CPU-bound; in a thread so that Ctrl-C is not held up for its duration.
            figures = await trio.to_thread.run_sync(
                search_speed.measure, size, self.counts.search_queries, embedder, abandon_on_cancel=True
            )
            has_target = size == TARGET_SEARCH_TOOLS
            self.add(Section.SEARCH, Row(
                f"retrieve_tools search p50 / p99, {size:,} tools ({mode}), {self.counts.search_queries} queries",
                f"{figures['p50']:.2f} / {figures['p99']:.2f} ms (CPU p99 {figures['cpu p99']:.2f})",
                f"p99 ≤ {TARGET_SEARCH_P99_MS:.0f} ms" if has_target else "—",
                figures["p99"] <= TARGET_SEARCH_P99_MS if has_target else None,
            ))  # fmt: skip

    async def peer_stage(self, peer: Peer) -> None:
        published_p50 = (
            f"published {peer.published_added_p50_ms:+.1f} ms p50" if peer.published_added_p50_ms else "—"
        )
        published_rate = f"published {peer.published_rate:.0f} calls/s"
        try:
            installed = await install(peer)
        except NotInstalledError as exc:
            self.add(
                Section.PEERS,
                Row(f"peer {peer.name} ({peer.surface})", f"not installed: {exc}", published_rate),
            )
            return
        sessions = TARGET_RATE_SESSIONS
        result = await measure_peer(
            peer, installed, self.scratch / peer.name, self.counts.calls, sessions, self.counts.session_calls
        )
        added_p50, added_p99 = result.latency.added_over(self._require_baseline())
        self.add(Section.PEERS, Row(
            f"peer {peer.name} {result.version} ({peer.surface}): added p50 / p99",
            f"{_ms(added_p50)} / {_ms(added_p99)} (p50 {result.latency.p50_ms:.2f} ms)", published_p50,
        ))  # fmt: skip
        self.add(Section.PEERS, Row(
            f"peer {peer.name}: {sessions} sessions × {self.counts.session_calls} calls at once",
            f"{result.rate:.0f} calls/s", published_rate,
        ))  # fmt: skip
