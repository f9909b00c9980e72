"""On-demand servers (issue 23): the proxy's memory with a fleet of them idle, and cold calls.

A first run of the proxy learns each server's tools (each starts once, then goes idle); a second
run, on the same data dir, starts none of them and lists them from the cache. That run gives the
rows: the proxy's PSS with none started, the tools `/mcp/all` lists and `retrieve_tools` finds
then, and the latency of a cold call (the first call to an idle server: start and answer) beside a
warm one to the same server.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio
from mcp.client import Client

from bench.clients import ECHO, MESSAGE
from bench.memory import ProxyMemory, measure_proxy
from bench.proxy import Proxy, open_proxy

IDLE_DEADLINE_S: Final = 300.0
"""A first run starts every server once to learn its tools; on a busy 2-core machine 40 take a while."""
IDLE_POLL_S: Final = 0.2
SETTLE_S: Final = 1.0
COLD_CALLS: Final = 5
"""Cold calls, each to a different idle server (a server stays running after its first call)."""


def on_demand_servers(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"lazy{number:02d}", "command": sys.executable, "args": [str(ECHO)], "start": "on_demand"}
        for number in range(1, count + 1)
    ]


@dataclass(frozen=True)
class OnDemandFigures:
    learn_s: float
    """First run: launch until every server has learned its tools and is idle again."""
    memory: ProxyMemory
    """Second run, none started."""
    tools_listed: int
    servers_found: int
    """Servers whose `echo` tool `retrieve_tools` found, none started."""
    cold_ms: list[float]
    warm_ms: list[float]


async def wait_idle(proxy: Proxy, count: int) -> float:
    """Seconds from launch until `count` servers are `idle`."""
    states: dict[str, int] = {}
    with trio.move_on_after(IDLE_DEADLINE_S):
        while proxy.tree.running:
            states = {}
            for server in await proxy.servers():
                states[server["state"]] = states.get(server["state"], 0) + 1
            if states.get("idle", 0) >= count:
                return proxy.tree.since_launch()
            await trio.sleep(IDLE_POLL_S)
        raise proxy.failure(f"the proxy exited with code {proxy.tree.process.returncode}")
    raise proxy.failure(f"{count} servers not idle within {IDLE_DEADLINE_S:.0f}s; states: {states}")


async def measure(directory: Path, count: int) -> OnDemandFigures:
    servers = on_demand_servers(count)
    async with open_proxy(directory, servers) as proxy:
        await proxy.wait_ready()
        learn_s = await wait_idle(proxy, count)
    async with open_proxy(directory, servers) as proxy:
        await proxy.wait_ready()
        await wait_idle(proxy, count)
        await trio.sleep(SETTLE_S)
        memory = measure_proxy(proxy)
        async with Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client:
            tools_listed = len((await client.list_tools()).tools)
        async with Client(f"{proxy.base_url}/mcp", mode="legacy", cache=None) as client:
            found = await client.call_tool("retrieve_tools", {"query": "echo a message back", "limit": count})
            text = "".join(getattr(block, "text", "") for block in found.content)
        servers_found = sum(f"{server['name']}:echo" in text for server in servers)
        cold_ms, warm_ms = [], []
        async with Client(f"{proxy.base_url}/mcp/all", mode="legacy", cache=None) as client:
            for server in servers[:COLD_CALLS]:
                for times in (cold_ms, warm_ms):
                    started = time.perf_counter()
                    result = await client.call_tool(f"{server['name']}__echo", MESSAGE)
                    times.append((time.perf_counter() - started) * 1000)
                    if result.is_error:
                        raise proxy.failure(f"a call to {server['name']} failed: {result.content}")
    return OnDemandFigures(learn_s, memory, tools_listed, servers_found, cold_ms, warm_ms)


def median_text(samples: list[float]) -> str:
    each = ", ".join(f"{sample:.0f}" for sample in samples)
    return f"{statistics.median(samples):.0f} ms (median of {len(samples)}: {each})"
