"""Call latency: an echo tool called directly over stdio vs through the proxy, in one run.

    .venv/bin/python bench/call_latency.py [--calls 1000]

Prints p50/p99 latency and sequential calls/s for (a) the mcp SDK client
talking to the echo server over stdio, (b) the same server through the
proxy's /mcp/all (direct mode) and (c) through /mcp with call_tool_read, plus
what the proxy adds over (a).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any, Final

import httpx2
import trio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO: Final = Path(__file__).resolve().parent.parent
ECHO: Final = REPO / "tests" / "servers" / "echo_server.py"
WARMUP: Final = 50


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(call: Callable[[], Awaitable[Any]], calls: int) -> dict[str, float]:
    for _ in range(WARMUP):
        await call()
    samples = []
    started = time.perf_counter()
    for _ in range(calls):
        t0 = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - started
    return {"p50": statistics.median(samples), "p99": percentile(samples, 0.99), "rate": calls / total}


async def direct(calls: int) -> dict[str, float]:
    params = StdioServerParameters(command=sys.executable, args=[str(ECHO)])
    with open(os.devnull, "w") as devnull:
        async with (
            stdio_client(params, errlog=devnull) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await measure(lambda: session.call_tool("echo", {"message": "ping"}), calls)


async def through_proxy(url: str, calls: int, tool: str, arguments: dict[str, Any]) -> dict[str, float]:
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        streamable_http_client(url, http_client=http) as (
            read,
            write,
        ),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await measure(lambda: session.call_tool(tool, arguments), calls)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_running(base: str, key: str) -> None:
    async with httpx2.AsyncClient(timeout=5) as client:
        with trio.fail_after(60):
            while True:
                try:
                    body = (await client.get(f"{base}/api/v1/servers", headers={"X-API-Key": key})).json()
                    if body["data"]["servers"][0]["state"] == "running":
                        return
                except (httpx2.HTTPError, KeyError, IndexError, ValueError):
                    pass
                await trio.sleep(0.05)


async def main(calls: int) -> None:
    rows: dict[str, dict[str, float]] = {"direct stdio (baseline)": await direct(calls)}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mcp_config.json"
        key = "bench-key"
        config.write_text(
            json.dumps(
                {
                    "api_key": key,
                    "mcpServers": [{"name": "echo", "command": sys.executable, "args": [str(ECHO)]}],
                }
            )
        )
        port = free_port()
        proxy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mcpproxy"),
                "serve",
                "--config",
                str(config),
                "--data-dir",
                str(Path(tmp) / "data"),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_running(base, key)
            rows["proxy /mcp/all (direct mode)"] = await through_proxy(
                f"{base}/mcp/all", calls, "echo__echo", {"message": "ping"}
            )
            rows["proxy /mcp call_tool_read"] = await through_proxy(
                f"{base}/mcp", calls, "call_tool_read", {"name": "echo:echo", "args": {"message": "ping"}}
            )
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=60)
    base_row = rows["direct stdio (baseline)"]
    print(
        f"call latency, {calls} sequential echo calls after {WARMUP} warm-up; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today()}"
    )
    print(
        f"| {'path':<30} | {'p50 ms':>7} | {'p99 ms':>7} | {'calls/s':>8} | {'added p50':>9} | {'added p99':>9} |"
    )
    print(f"|{'-' * 32}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 11}|")
    for name, row in rows.items():
        added = "" if row is base_row else f"{row['p50'] - base_row['p50']:+.2f}"
        added99 = "" if row is base_row else f"{row['p99'] - base_row['p99']:+.2f}"
        print(
            f"| {name:<30} | {row['p50']:>7.2f} | {row['p99']:>7.2f} | {row['rate']:>8.0f} | {added:>9} | {added99:>9} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    trio.run(main, parser.parse_args().calls)
