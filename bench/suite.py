"""Every measurement `bench/run.py` makes, in one run, each against its target and the same baseline.

Stages run one after another, never two at once: the echo server alone (the
yardstick for a fleet of them); calls, where the direct stdio baselines, the
proxy with one echo upstream and every peer are up side by side and measured
in interleaved rounds (`bench/rounds.py`), with the MCP SDK client and with
one minimal client for all (`bench/minimal_client.py`), and the CPU per call
of every process on the path (`bench/own_cost.py` makes those rows); empty
proxies (launch to ready); a proxy with a fleet of echo upstreams (all running, memory, stop); tool search;
tokens the agent reads (bench/context_tokens.py).
A stage that fails becomes a failed row; the others still run.
"""

from __future__ import annotations

import enum
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

import trio

from bench import context_tokens, echo, minimal_client, on_demand, search_speed
from bench.clients import MESSAGE, CallOpener, open_client_call, open_mcp_call, open_stdio_call
from bench.cpu import ECHO_SERVER
from bench.memory import ProxyMemory, measure_proxy
from bench.own_cost import (
    CLIENT_LEGACY,
    CLIENT_MODERN,
    MINIMAL_BASELINE,
    MINIMAL_SESSION,
    MINIMAL_STATELESS,
    OFF_PATH_ROLES,
    SPLIT,
    PeerShown,
    cpu_rows,
    minimal_name,
    minimal_rows,
    sdk_era_rows,
)
from bench.peer_install import NotInstalledError
from bench.peers import PEERS, Peer, RunningPeer, install, open_peer
from bench.processes import STOP_DEADLINE_S
from bench.proxy import Proxy, Role, echo_servers, open_proxy
from bench.report import Row
from bench.rounds import failure_text, interleaved_latency, interleaved_throughput, median_of
from bench.samples import Latency
from bench.stopwatch import StopTimes, stdin_pipes, watch_stop
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

BASELINE: Final = "direct stdio"
ALL_TOOLS: Final = "proxy /mcp/all (direct mode)"
READ_TOOL: Final = "proxy /mcp call_tool_read"


@dataclass(frozen=True)
class Counts:
    """How much each stage does: the full run, or `--quick`."""

    calls: int
    latency_rounds: int
    sessions: tuple[int, ...]
    session_calls: int
    throughput_rounds: int
    fleet: int
    startups: int
    echo_repeats: int
    search_sizes: tuple[int, ...]
    search_queries: int
    on_demand: int


FULL: Final = Counts(
    calls=1000, latency_rounds=10, sessions=(10, 50), session_calls=100, throughput_rounds=3, fleet=50,
    startups=3, echo_repeats=5, search_sizes=(1_000, 10_000), search_queries=2_000, on_demand=40,
)  # fmt: skip
QUICK: Final = Counts(
    calls=100, latency_rounds=2, sessions=(10, 50), session_calls=10, throughput_rounds=1, fleet=5,
    startups=1, echo_repeats=2, search_sizes=(1_000, 10_000), search_queries=200, on_demand=5,
)  # fmt: skip


class Section(enum.Enum):
    """The table's sections, in the order they are printed."""

    LATENCY = "call latency"
    OWN_COST = "the proxy's own cost, one minimal client for all"
    CPU = "CPU per call"
    THROUGHPUT = "throughput"
    MEMORY = "memory"
    STARTUP = "startup"
    SEARCH = "search"
    STOP = "stop"
    PEERS = "peers"


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _ms(value: float) -> str:
    return f"{value:+.2f} ms"


def _fleet_yardstick(what: str, seconds: float | None, count: int) -> str:
    """`; <what>: 1.20 s, × 50 / 2 cores = 30.0 s`: the least time `count` of them take on this machine."""
    if seconds is None:
        return ""
    cores = os.cpu_count() or 1
    return f"; {what}: {seconds:.2f} s, × {count} / {cores} cores = {seconds * count / cores:.1f} s"


class Suite:
    """Runs the stages and keeps their rows by section."""

    def __init__(self, counts: Counts, scratch: Path) -> None:
        self.counts = counts
        self.scratch = scratch
        self.rows: dict[Section, list[Row]] = {section: [] for section in Section}
        self.failures = 0
        self.echo_start_s: float | None = None
        self.echo_exit_cpu_s: float | None = None
        self.memory_one: ProxyMemory | None = None

    def add(self, section: Section, row: Row) -> None:
        self.rows[section].append(row)

    def failed(self, section: Section, what: str, reason: str) -> None:
        progress(f"{what} failed: {reason}")
        self.add(section, Row(what, f"failed: {reason}", met=False))
        self.failures += 1

    def table_rows(self) -> list[Row]:
        return [row for section in Section for row in self.rows[section]]

    async def _stage(self, section: Section, what: str, stage: Callable[[], Awaitable[None]]) -> None:
        progress(what)
        try:
            await stage()
        except Exception as exc:  # a failed stage is reported as a row; the others still run
            self.failed(section, what, failure_text(exc))

    async def run(self) -> None:
        fleet = self.counts.fleet
        await self._stage(Section.STARTUP, "echo server alone: start and exit", self.echo_stage)
        await self._stage(Section.LATENCY, "calls: baseline, proxy and peers side by side", self.calls_stage)
        await self._stage(Section.STARTUP, "launch to /readyz, no upstreams", self.startup_stage)
        await self._stage(
            Section.STOP, f"proxy with {fleet} upstreams: start, memory, stop", self.fleet_stage
        )
        await self._stage(
            Section.MEMORY,
            f"{self.counts.on_demand} on-demand upstreams: idle, cold calls",
            self.on_demand_stage,
        )
        await self._stage(Section.SEARCH, "tool search", self.search_stage)
        await self._stage(Section.SEARCH, "tokens the agent reads", self.context_stage)

    async def echo_stage(self) -> None:
        self.echo_start_s = await echo.start_s(self.counts.echo_repeats)
        self.echo_exit_cpu_s = await echo.exit_cpu_s(self.counts.echo_repeats)

    # --- calls ----------------------------------------------------------------

    async def calls_stage(self) -> None:
        async with AsyncExitStack() as stack:
            proxy = await stack.enter_async_context(open_proxy(self.scratch / "one", echo_servers(1)))
            await proxy.wait_ready()
            await proxy.wait_running(1)
            await trio.sleep(MEMORY_SETTLE_S)
            self.memory_one = measure_proxy(proxy)
            self.add(Section.MEMORY, Row(
                "PSS of the proxy's processes, 1 upstream",
                f"{self.memory_one.total_mib:.1f} MiB ({self.memory_one.describe()})",
            ))  # fmt: skip
            all_url = f"{proxy.base_url}/mcp/all"
            arguments = {"name": "echo:echo", "args": MESSAGE}
            read_tool = partial(open_mcp_call, f"{proxy.base_url}/mcp", "call_tool_read", arguments)
            openers: dict[str, CallOpener] = {
                BASELINE: open_stdio_call,
                ALL_TOOLS: partial(open_mcp_call, all_url, "echo__echo", MESSAGE),
                READ_TOOL: read_tool,
                CLIENT_LEGACY: partial(open_client_call, all_url, "echo__echo", MESSAGE, "legacy"),
                CLIENT_MODERN: partial(open_client_call, all_url, "echo__echo", MESSAGE, "2026-07-28"),
                MINIMAL_BASELINE: minimal_client.open_stdio_call,
                MINIMAL_SESSION: partial(minimal_client.open_session_call, all_url, "echo__echo"),
                MINIMAL_STATELESS: partial(minimal_client.open_stateless_call, all_url, "echo__echo"),
            }
            roles = proxy.processes()
            watched = {"gateway": Role.GATEWAY, "worker": Role.WORKER, ECHO_SERVER: Role.UPSTREAM}
            watched.update({role.value: role for role in OFF_PATH_ROLES})
            ours = {name: roles[role][0] for name, role in watched.items() if roles[role]}
            processes = {name: ours for name in openers if name not in (BASELINE, MINIMAL_BASELINE)}
            peers: dict[str, tuple[Peer, str]] = {}
            for peer in PEERS:
                started = await self._start_peer(stack, peer)
                if started is not None:
                    running, version = started
                    openers[peer.name], openers[minimal_name(peer.name)] = running.sdk, running.minimal
                    processes[peer.name] = processes[minimal_name(peer.name)] = running.processes
                    peers[peer.name] = (peer, version)
            progress(
                f"call latency: {len(openers)} targets in {self.counts.latency_rounds} interleaved rounds"
            )
            latency = await interleaved_latency(
                openers, self.counts.calls, self.counts.latency_rounds, processes, SPLIT
            )
            baseline = self._latency_rows(latency.figures, latency.failures)
            shown = [PeerShown(name, version, peer.minimal_wire) for name, (peer, version) in peers.items()]
            for row in sdk_era_rows(latency.figures, baseline):
                self.add(Section.LATENCY, row)
            for row in minimal_rows(latency.figures, shown, self.counts.calls, self.counts.latency_rounds):
                self.add(Section.OWN_COST, row)
            for row in cpu_rows(latency.cpu_ms, latency.threads_ms, shown):
                self.add(Section.CPU, row)
            for name, reason in latency.failures.items():
                if name in (CLIENT_LEGACY, CLIENT_MODERN):
                    self.failed(Section.LATENCY, f"added latency, {name}", reason)
                elif name not in (BASELINE, ALL_TOOLS, READ_TOOL, *peers):
                    self.failed(Section.OWN_COST, f"added latency, {name}", reason)
            rates = await self._throughput_rows({name: openers[name] for name in (ALL_TOOLS, *peers)})
            for name, (peer, version) in peers.items():
                self._peer_rows(peer, version, baseline, latency.figures.get(name), rates.get(name))

    async def _start_peer(self, stack: AsyncExitStack, peer: Peer) -> tuple[RunningPeer, str] | None:
        progress(f"starting peer {peer.name}")
        published = f"published {peer.published_rate:.0f} calls/s"
        try:
            installed = await install(peer)
            running = await stack.enter_async_context(open_peer(peer, installed, self.scratch / peer.name))
        except NotInstalledError as exc:
            self.add(
                Section.PEERS, Row(f"peer {peer.name} ({peer.surface})", f"not installed: {exc}", published)
            )
            return None
        except Exception as exc:  # a peer that does not start is its own row; the rest is measured
            self.failed(Section.PEERS, f"peer {peer.name} ({peer.surface})", failure_text(exc))
            return None
        return running, installed.version

    def _latency_rows(self, figures: dict[str, Latency], failures: dict[str, str]) -> Latency | None:
        baseline = figures.get(BASELINE)
        rounds = self.counts.latency_rounds
        if baseline is None:
            self.failed(
                Section.LATENCY, "direct stdio echo call (baseline)", failures.get(BASELINE, "no figure")
            )
            return None
        self.add(Section.LATENCY, Row(
            f"direct stdio echo call, SDK client (baseline): p50 / p99, {self.counts.calls} calls in {rounds} rounds",
            f"{baseline.p50_ms:.2f} / {baseline.p99_ms:.2f} ms ({baseline.rate:.0f} calls/s back to back)",
        ))  # fmt: skip
        for surface in (ALL_TOOLS, READ_TOOL):
            measured = figures.get(surface)
            if measured is None:
                self.failed(Section.LATENCY, f"added latency, {surface}", failures.get(surface, "no figure"))
                continue
            added_p50, added_p99 = measured.added_over(baseline)
            self.add(Section.LATENCY, Row(
                f"added p50, {surface}", f"{_ms(added_p50)} (p50 {measured.p50_ms:.2f} ms)",
                f"≤ {TARGET_ADDED_P50_MS:.1f} ms", added_p50 <= TARGET_ADDED_P50_MS,
            ))  # fmt: skip
            self.add(Section.LATENCY, Row(
                f"added p99, {surface}", f"{_ms(added_p99)} (p99 {measured.p99_ms:.2f} ms)",
                f"≤ {TARGET_ADDED_P99_MS:.1f} ms", added_p99 <= TARGET_ADDED_P99_MS,
            ))  # fmt: skip
        return baseline

    async def _throughput_rows(self, openers: dict[str, CallOpener]) -> dict[str, list[float]]:
        """Ours at every session count; the peers (in the same rounds) at the target's session count."""
        calls, rounds = self.counts.session_calls, self.counts.throughput_rounds
        peer_rates: dict[str, list[float]] = {}
        for sessions in self.counts.sessions:
            with_peers = sessions == TARGET_RATE_SESSIONS
            targets = openers if with_peers else {ALL_TOOLS: openers[ALL_TOOLS]}
            progress(
                f"throughput: {sessions} sessions × {calls} calls, {len(targets)} targets, {rounds} rounds"
            )
            outcome = await interleaved_throughput(targets, sessions, calls, rounds)
            what = f"proxy /mcp/all, {sessions} sessions × {calls} calls at once"
            rates = outcome.figures.get(ALL_TOOLS)
            best_peer = max(
                (statistics.median(r) for name, r in outcome.figures.items() if name != ALL_TOOLS),
                default=0.0,
            )
            if rates is None:
                self.failed(Section.THROUGHPUT, what, outcome.failures.get(ALL_TOOLS, "no figure"))
            elif with_peers:
                rate = statistics.median(rates)
                target = f"≥ {TARGET_RATE:.0f} calls/s" + (
                    f"; ≥ best peer's ({best_peer:.0f})" if best_peer else ""
                )
                self.add(Section.THROUGHPUT, Row(
                    what, median_of(rates), target, rate >= TARGET_RATE and rate >= best_peer,
                ))  # fmt: skip
            else:
                self.add(Section.THROUGHPUT, Row(what, median_of(rates)))
            if with_peers:
                peer_rates = {name: r for name, r in outcome.figures.items() if name != ALL_TOOLS}
                for name, reason in outcome.failures.items():
                    if name != ALL_TOOLS:
                        self.failed(
                            Section.PEERS, f"peer {name}: {sessions} sessions × {calls} calls", reason
                        )
        return peer_rates

    def _peer_rows(
        self,
        peer: Peer,
        version: str,
        baseline: Latency | None,
        latency: Latency | None,
        rates: list[float] | None,
    ) -> None:
        if baseline is not None and latency is not None:
            added_p50, added_p99 = latency.added_over(baseline)
            published = (
                f"published {peer.published_added_p50_ms:+.1f} ms p50" if peer.published_added_p50_ms else "—"
            )
            self.add(Section.PEERS, Row(
                f"peer {peer.name} {version} ({peer.surface}): added p50 / p99",
                f"{_ms(added_p50)} / {_ms(added_p99)} (p50 {latency.p50_ms:.2f} ms)", published,
            ))  # fmt: skip
        elif latency is None:
            self.failed(Section.PEERS, f"peer {peer.name} {version}: added latency", "no figure")
        if rates:
            self.add(Section.PEERS, Row(
                f"peer {peer.name}: {TARGET_RATE_SESSIONS} sessions × {self.counts.session_calls} calls at once",
                median_of(rates), f"published {peer.published_rate:.0f} calls/s",
            ))  # fmt: skip

    # --- startup, fleet, stop -----------------------------------------------------

    async def startup_stage(self) -> None:
        samples = []
        for attempt in range(self.counts.startups):
            async with open_proxy(self.scratch / f"empty-{attempt}", []) as proxy:
                samples.append(await proxy.wait_ready())
        median = statistics.median(samples)
        each = ", ".join(f"{sample:.2f}" for sample in samples)
        self.add(Section.STARTUP, Row(
            "launch of `mcpproxy serve` to /readyz 200, no upstreams",
            f"{median:.2f} s (median of {len(samples)}: {each})" if len(samples) > 1 else f"{median:.2f} s",
            f"≤ {TARGET_READY_S:.1f} s", median <= TARGET_READY_S,
        ))  # fmt: skip

    async def fleet_stage(self) -> None:
        count = self.counts.fleet
        async with open_proxy(self.scratch / "fleet", echo_servers(count)) as proxy:
            ready_s = await proxy.wait_ready()
            running_s = await proxy.wait_running(count)
            yardstick = _fleet_yardstick(
                "one echo server alone, spawn to initialized", self.echo_start_s, count
            )
            self.add(Section.STARTUP, Row(
                f"launch to all {count} stdio echo upstreams running",
                f"{running_s:.1f} s ({running_s - ready_s:.1f} s after /readyz){yardstick}",
            ))  # fmt: skip
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
        pipes = stdin_pipes(upstreams)
        started = time.perf_counter()
        proxy.tree.signal_leader(signal.SIGTERM)
        with trio.fail_after(STOP_DEADLINE_S):
            times = await watch_stop(proxy.tree.process, pipes, upstreams, started)
        stop_s = time.perf_counter() - started
        left_upstreams, left_others = alive(upstreams), alive(others)
        left = f"{len(left_upstreams)} of {len(upstreams)} echo servers left"
        if left_others:
            left += f", {len(left_others)} proxy processes left"
        yardstick = _fleet_yardstick(
            "CPU of one echo server from stdin EOF to exit", self.echo_exit_cpu_s, count
        )
        self.add(Section.STOP, Row(
            f"SIGTERM to `mcpproxy serve` until it exits, {count} polite upstreams",
            f"{stop_s:.2f} s; {left}{yardstick}",
            f"≤ {TARGET_STOP_S:.1f} s, none left",
            stop_s <= TARGET_STOP_S and not left_upstreams and not left_others,
        ))  # fmt: skip
        self._stop_parts_row(times, len(upstreams))

    def _stop_parts_row(self, times: StopTimes, count: int) -> None:
        what = "stop, the proxy's own parts: SIGTERM until every upstream's stdin is closed; last upstream exit until `mcpproxy serve` exits"
        if times.last_stdin_closed_s is None or times.last_upstream_exit_s is None or times.exited_s is None:
            self.failed(Section.STOP, what, f"not seen (stdins watched: {times.watched_stdins} of {count})")
            return
        self.add(Section.STOP, Row(what, (
            f"{times.last_stdin_closed_s:.2f} s; {times.exited_s - times.last_upstream_exit_s:.2f} s "
            f"(between them the upstreams exit: {times.last_upstream_exit_s - times.last_stdin_closed_s:.2f} s)"
        )))  # fmt: skip

    async def on_demand_stage(self) -> None:
        count = self.counts.on_demand
        figures = await on_demand.measure(self.scratch / "on-demand", count)
        self.add(Section.STARTUP, Row(
            f"first launch with {count} on-demand upstreams until each learned its tools and is idle",
            f"{figures.learn_s:.1f} s",
        ))  # fmt: skip
        memory = figures.memory
        self.add(Section.MEMORY, Row(
            f"PSS of the proxy's processes, {count} on-demand upstreams idle (none started)",
            f"{memory.total_mib:.1f} MiB ({memory.describe()}); listed from the cache: {figures.tools_listed} "
            f"tools on /mcp/all, retrieve_tools finds echo of {figures.servers_found} of {count}",
            f"no workers; all {count} found", memory.workers == 0 and figures.servers_found == count,
        ))  # fmt: skip
        self.add(Section.LATENCY, Row(
            "cold call: the first call to an idle on-demand server (start, initialize, answer), SDK client",
            f"{on_demand.median_text(figures.cold_ms)}; the next call: {on_demand.median_text(figures.warm_ms)}",
        ))  # fmt: skip

    # --- search -----------------------------------------------------------------

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

    async def context_stage(self) -> None:
        """Tokens per `retrieve_tools` answer and per `/mcp/all` listing (bench/context_tokens.py)."""
        problem = context_tokens.missing_inputs()
        if problem is None:
            problem = await trio.to_thread.run_sync(context_tokens.install_servers)
        if problem is not None:
            self.add(
                Section.SEARCH, Row("retrieve_tools answer tokens, compact vs full", f"not run: {problem}")
            )
            return
        tokens = await context_tokens.measure(self.scratch / "context")
        for what, figure, target, met in context_tokens.describe(tokens):
            self.add(Section.SEARCH, Row(what, figure, target, met))
