"""Rows of a fair comparison: one minimal client for every proxy, the SDK client in both eras, CPU per call.

The latency rounds (`bench/rounds.py`) measure every target side by side; this
module turns their figures into rows against the targets of issue 20:

- minimal client: ours adds at most 0.5 ms p50 over the direct stdio call (made
  with the same minimal client), and less p50 and p99 than every HTTP peer;
- SDK client: ours adds less p50 than mcp-proxy and mcp-hub, in both eras;
- gateway + worker CPU per call at most the best peer's single process.

CPU rows name every process on a target's path (ours also by thread: main,
ZeroMQ's I/O thread, trio's worker threads), the client, the echo server, and
our processes off the path, so that a reader sees where a call's time goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bench.cpu import CLIENT, ECHO_SERVER, MAIN_THREAD
from bench.proxy import Role
from bench.report import Row
from bench.samples import Latency

TARGET_MINIMAL_ADDED_P50_MS: Final = 0.5
SDK_RIVALS: Final = ("mcp-proxy", "mcp-hub")
"""The peers an MCP client reaches with the SDK, whom ours must beat at p50 in both eras."""

SPLIT: Final = ("gateway", "worker")
"""Our processes on the call path, whose CPU is also shown by thread."""
ZMQ_IO_THREAD: Final = "ZMQbg/IO/"
"""libzmq names its I/O threads so (its reaper thread, `ZMQbg/Reaper`, counts with the others)."""
TRIO_THREAD: Final = "Trio thread"
"""trio names the threads of `trio.to_thread` so."""
SHOWN_MS: Final = 0.005

OFF_PATH_ROLES: Final = (Role.SERVE, Role.SUPERVISOR, Role.ZYGOTE)
"""Our processes that a call does not pass through: shown, to prove it, but not in the per-call sum."""
OFF_PATH: Final = tuple(role.value for role in OFF_PATH_ROLES)

MINIMAL_BASELINE: Final = "direct stdio, minimal client"
MINIMAL_SESSION: Final = "proxy /mcp/all, minimal client, 2025-11-25 session"
MINIMAL_STATELESS: Final = "proxy /mcp/all, minimal client, 2026-07-28 stateless"
CLIENT_LEGACY: Final = 'proxy /mcp/all, SDK Client(url, mode="legacy")'
CLIENT_MODERN: Final = 'proxy /mcp/all, SDK Client(url, mode="2026-07-28")'
OUR_MINIMAL: Final = {
    MINIMAL_SESSION: "Mcp-Session-Id",
    MINIMAL_STATELESS: "`_meta` envelope; Mcp-Protocol-Version, Mcp-Method, Mcp-Name headers",
}


def minimal_name(peer: str) -> str:
    """The latency target of a peer under the minimal client."""
    return f"{peer}, minimal client"


@dataclass(frozen=True)
class PeerShown:
    """What the rows say of a peer: its name and version, and how the minimal client talks to it."""

    name: str
    version: str
    wire: str


def _ms(value: float) -> str:
    return f"{value:+.2f} ms"


def _added(measured: Latency, baseline: Latency) -> str:
    added_p50, added_p99 = measured.added_over(baseline)
    return f"{_ms(added_p50)} / {_ms(added_p99)} (p50 {measured.p50_ms:.2f} ms, p99 {measured.p99_ms:.2f} ms)"


def minimal_rows(
    figures: Mapping[str, Latency], peers: Sequence[PeerShown], calls: int, rounds: int
) -> list[Row]:
    """The proxy's own cost: ours and every peer under one minimal client, over its direct stdio call."""
    baseline = figures.get(MINIMAL_BASELINE)
    if baseline is None:
        return []
    rows = [
        Row(
            f"direct stdio echo call, minimal client (baseline of the minimal-client rows): p50 / p99, {calls} calls in {rounds} rounds",
            f"{baseline.p50_ms:.2f} / {baseline.p99_ms:.2f} ms ({baseline.rate:.0f} calls/s back to back)",
        )
    ]
    rivals = [
        (peer, figures[minimal_name(peer.name)]) for peer in peers if minimal_name(peer.name) in figures
    ]
    best_p50 = min((latency.added_over(baseline)[0] for _, latency in rivals), default=None)
    best_p99 = min((latency.added_over(baseline)[1] for _, latency in rivals), default=None)
    target = f"≤ +{TARGET_MINIMAL_ADDED_P50_MS:.1f} ms p50; p50 and p99 below every peer's"
    if best_p50 is not None and best_p99 is not None:
        target += f" ({_ms(best_p50)} / {_ms(best_p99)})"
    for name, wire in OUR_MINIMAL.items():
        measured = figures.get(name)
        if measured is None:
            continue
        added_p50, added_p99 = measured.added_over(baseline)
        met = added_p50 <= TARGET_MINIMAL_ADDED_P50_MS and all(
            added_p50 < peer.added_over(baseline)[0] and added_p99 < peer.added_over(baseline)[1]
            for _, peer in rivals
        )
        rows.append(Row(f"{name} ({wire}): added p50 / p99", _added(measured, baseline), target, met))
    for peer, latency in rivals:
        rows.append(
            Row(
                f"peer {peer.name} {peer.version}, minimal client ({peer.wire}): added p50 / p99",
                _added(latency, baseline),
            )
        )
    return rows


def sdk_era_rows(figures: Mapping[str, Latency], baseline: Latency | None) -> list[Row]:
    """The SDK's `Client` against ours in both eras, over the SDK's direct stdio call; the rivals' p50 beside."""
    if baseline is None:
        return []
    rivals = {name: figures[name].added_over(baseline)[0] for name in SDK_RIVALS if name in figures}
    target = "p50 below " + (
        ", ".join(f"{name}'s ({_ms(added)})" for name, added in rivals.items()) or "mcp-proxy's and mcp-hub's"
    )
    rows = []
    for name in (CLIENT_LEGACY, CLIENT_MODERN):
        measured = figures.get(name)
        if measured is None:
            continue
        added_p50 = measured.added_over(baseline)[0]
        met = bool(rivals) and all(added_p50 < rival for rival in rivals.values())
        rows.append(Row(f"{name}: added p50 / p99", _added(measured, baseline), target, met))
    return rows


def _own_ms(used: Mapping[str, float]) -> dict[str, float]:
    """The processes a call passes through, the client and the echo server apart (ours: gateway, worker)."""
    return {name: ms for name, ms in used.items() if name not in (CLIENT, ECHO_SERVER, *OFF_PATH)}


def _threads(threads: Mapping[str, float]) -> str:
    """` (main 1.40, ZeroMQ I/O 0.30, trio worker threads 0.10)`: where a process's CPU went."""
    if not threads:
        return ""
    groups = {MAIN_THREAD: 0.0, "ZeroMQ I/O": 0.0, "trio worker threads": 0.0, "other threads": 0.0}
    for name, ms in threads.items():
        if name == MAIN_THREAD:
            groups[MAIN_THREAD] += ms
        elif name.startswith(ZMQ_IO_THREAD):
            groups["ZeroMQ I/O"] += ms
        elif name.startswith(TRIO_THREAD):
            groups["trio worker threads"] += ms
        else:
            groups["other threads"] += ms
    shown = [f"{group} {ms:.2f}" for group, ms in groups.items() if group == MAIN_THREAD or ms >= SHOWN_MS]
    return f" ({', '.join(shown)})"


def _processes(used: Mapping[str, float], threads: Mapping[str, Mapping[str, float]]) -> str:
    """`gateway 0.80 (main 0.60, ZeroMQ I/O 0.20) + worker 0.40 (...) = 1.20 ms; client 0.30; echo server 0.20; ...`."""
    own = _own_ms(used)
    text = " + ".join(f"{name} {ms:.2f}{_threads(threads.get(name, {}))}" for name, ms in own.items())
    if len(own) > 1:
        text += f" = {sum(own.values()):.2f}"
    parts = [f"{text} ms"] if own else []
    parts += [f"{name} {used[name]:.2f}" for name in (CLIENT, ECHO_SERVER, *OFF_PATH) if name in used]
    return "; ".join(parts) + ("" if own else " ms")


def cpu_rows(
    cpu_ms: Mapping[str, Mapping[str, float]],
    threads_ms: Mapping[str, Mapping[str, Mapping[str, float]]],
    peers: Sequence[PeerShown],
) -> list[Row]:
    """CPU per call of every process on each target's path (ours by thread too); ours under the minimal
    client against the best peer."""
    best = min(
        (
            (sum(_own_ms(cpu_ms[minimal_name(peer.name)]).values()), peer.name)
            for peer in peers
            if minimal_name(peer.name) in cpu_ms
        ),
        default=None,
    )
    rows = []
    for target, used in cpu_ms.items():
        row = Row(f"CPU per call, {target}", _processes(used, threads_ms.get(target, {})))
        if target in OUR_MINIMAL and best is not None:
            own = _own_ms(used)
            row = Row(
                row.what,
                row.figure,
                f"{' + '.join(own)} ≤ the best peer's ({best[1]} {best[0]:.2f} ms, minimal client)",
                sum(own.values()) <= best[0],
            )
        rows.append(row)
    return rows
