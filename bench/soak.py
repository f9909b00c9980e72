"""The soak: hours of steady, mixed traffic against one proxy, and the memory slope of each process.

    .venv/bin/python bench/soak.py [--minutes 30] [--servers 5] [--warmup-minutes 5] [--kill-every 120]

Traffic, all to 127.0.0.1 and paced (about RATE_PER_S operations a second):
calls through `/mcp/all` and `/mcp` on long-lived sessions of both protocol
eras, new sessions opened and closed, REST reads, short-lived HTTP
connections, and, every RESTART_EVERY_S, a worker killed (so restarts are
part of the soak). Every SAMPLE_EVERY_S the RSS and PSS of each process of
the proxy's tree is read from /proc. After the warm-up, a least-squares line
through each role's samples gives its slope in MB per hour; the proxy's own
processes should stay under TARGET_SLOPE_MB_H. Workers are followed as a
role (their count is fixed), since a killed one is replaced by a new pid.

Not part of CI (it runs for at least half an hour); its last figures are in
the README. Every wait has a deadline, and it stops by itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx2
import trio
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.memory import OWN_ROLES, pss_kib  # noqa: E402
from bench.proxy import API_KEY, Proxy, Role, echo_servers, open_proxy  # noqa: E402
from bench.report import machine_line  # noqa: E402

RATE_PER_S: Final = 40.0
SAMPLE_EVERY_S: Final = 30.0
RESTART_EVERY_S: Final = 120.0
CALL_TIMEOUT_S: Final = 30.0
TARGET_SLOPE_MB_H: Final = 1.0
MIB: Final = 1024 * 1024


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Samples:
    """Per role: (seconds since start, RSS MiB, PSS MiB) of the role's processes summed."""

    by_role: dict[Role, list[tuple[float, float, float]]] = field(default_factory=dict)
    operations: int = 0
    errors: list[str] = field(default_factory=list)
    kills: int = 0

    def take(self, proxy: Proxy, now: float) -> None:
        for role, pids in proxy.processes().items():
            rss = sum(rss_kib(pid) for pid in pids) / 1024
            pss = sum(pss_kib(pid) for pid in pids) / 1024
            self.by_role.setdefault(role, []).append((now, rss, pss))


def slope_mb_per_h(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) points, in MB (10^6 bytes) per hour."""
    if len(points) < 3:
        return float("nan")
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    slope_mib_per_s = statistics.linear_regression(xs, ys).slope
    return slope_mib_per_s * 3600 * MIB / 1e6


async def _calls(
    url: str, mode: str, tool: str, args: dict[str, object], samples: Samples, stop: trio.Event
) -> None:
    """One long-lived client calling `tool` at its share of the rate, reopening after any failure."""
    pause = 1.0 / (RATE_PER_S / 4)
    while not stop.is_set():
        try:
            async with Client(url, mode=mode) as client:  # type: ignore[arg-type]
                while not stop.is_set():
                    with trio.fail_after(CALL_TIMEOUT_S):
                        result = await client.call_tool(tool, args)
                    samples.operations += 1
                    if result.is_error and "went away" not in str(result.content):
                        samples.errors.append(f"{mode} {tool}: {str(result.content)[:200]}")
                    await trio.sleep(pause)
        except Exception as exc:  # a killed worker or a reconnect: count it, open a new client
            samples.errors.append(f"{mode} client: {exc!r}"[:300])
            await trio.sleep(1.0)


async def _churn(base_url: str, samples: Samples, stop: trio.Event) -> None:
    """New sessions and short connections: an initialize and a close, REST reads on fresh connections."""
    while not stop.is_set():
        try:
            async with httpx2.AsyncClient(timeout=CALL_TIMEOUT_S) as http:
                transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
                async with Client(transport, mode="legacy") as client:
                    await client.list_tools()
            async with httpx2.AsyncClient(timeout=CALL_TIMEOUT_S, headers={"X-API-Key": API_KEY}) as http:
                (await http.get(f"{base_url}/api/v1/servers")).raise_for_status()
                (await http.get(f"{base_url}/api/v1/activity", params={"limit": 20})).raise_for_status()
            samples.operations += 3
        except Exception as exc:
            samples.errors.append(f"churn: {exc!r}"[:300])
        await trio.sleep(0.5)


async def _killer(proxy: Proxy, samples: Samples, stop: trio.Event, every_s: float) -> None:
    while not stop.is_set():
        with trio.move_on_after(every_s):
            await stop.wait()
        if stop.is_set():
            return
        workers = proxy.processes()[Role.WORKER]
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            samples.kills += 1


async def soak(minutes: float, servers: int, warmup_minutes: float, kill_every_s: float) -> int:
    samples = Samples()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcpproxy-soak-") as directory:
        async with open_proxy(Path(directory), echo_servers(servers)) as proxy:
            await proxy.wait_ready()
            await proxy.wait_running(servers)
            first = "echo" if servers == 1 else "echo01"
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                all_url, menu_url = f"{proxy.base_url}/mcp/all", f"{proxy.base_url}/mcp"
                for mode in ("legacy", "2026-07-28"):
                    nursery.start_soon(
                        _calls, all_url, mode, f"{first}__echo", {"message": "soak"}, samples, stop
                    )
                    read = {"name": f"{first}:echo", "args": {"message": "soak"}}
                    nursery.start_soon(_calls, menu_url, mode, "call_tool_read", read, samples, stop)
                nursery.start_soon(_churn, proxy.base_url, samples, stop)
                if kill_every_s > 0:
                    nursery.start_soon(_killer, proxy, samples, stop, kill_every_s)
                deadline = started + minutes * 60
                while time.monotonic() < deadline:
                    samples.take(proxy, time.monotonic() - started)
                    elapsed = (time.monotonic() - started) / 60
                    print(f"soak: {elapsed:.1f} min, {samples.operations} operations", file=sys.stderr)
                    await trio.sleep(min(SAMPLE_EVERY_S, max(0.0, deadline - time.monotonic())))
                samples.take(proxy, time.monotonic() - started)
                stop.set()
                nursery.cancel_scope.cancel()
    return report(samples, minutes, servers, warmup_minutes)


def report(samples: Samples, minutes: float, servers: int, warmup_minutes: float) -> int:
    print(f"\n{machine_line('soak')}")
    print(
        f"soak: {minutes:g} min, {servers} echo upstreams, {samples.operations} operations, "
        f"{samples.kills} worker kills, {len(samples.errors)} client errors (reconnects after kills included)"
    )
    print(
        f"slope after a {warmup_minutes:g}-minute warm-up (least squares over {SAMPLE_EVERY_S:g} s samples)\n"
    )
    print("| process | RSS at end | RSS slope | PSS slope | target |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for role in (*OWN_ROLES, Role.UPSTREAM):
        points = [p for p in samples.by_role.get(role, []) if p[0] >= warmup_minutes * 60]
        if not points:
            continue
        rss = slope_mb_per_h([(t, r) for t, r, _ in points])
        pss = slope_mb_per_h([(t, p) for t, _, p in points])
        own = role in OWN_ROLES
        if own:
            worst = max(worst, pss)
        target = f"≤ {TARGET_SLOPE_MB_H:g} MB/h" if own else "(the user's servers)"
        print(f"| {role.value} | {points[-1][1]:.1f} MiB | {rss:+.2f} MB/h | {pss:+.2f} MB/h | {target} |")
    for error in samples.errors[:5]:
        print(f"  e.g. {error}", file=sys.stderr)
    return 0 if worst <= TARGET_SLOPE_MB_H else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--servers", type=int, default=5)
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument(
        "--kill-every", type=float, default=RESTART_EVERY_S, help="seconds between worker kills; 0: none"
    )
    args = parser.parse_args()
    sys.exit(trio.run(soak, args.minutes, args.servers, args.warmup_minutes, args.kill_every))


if __name__ == "__main__":
    main()
