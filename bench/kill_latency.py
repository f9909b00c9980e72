"""Worker SIGKILL: how fast an in-flight call fails, and how fast the server is back.

    .venv/bin/python bench/kill_latency.py [--kills 50]

Each round: a 30 s `sleep` call goes to the server through /mcp; once the
upstream has announced it on stderr, the worker is SIGKILLed. We time
(a) SIGKILL -> the client holds the MCP error result (the issue asks < 1 s), and
(b) SIGKILL -> the server is `running` again on its own (first backoff, ~1 s,
plus a new worker and upstream). A restart command then clears the failure
history, so every round sees the first backoff and the server never goes fatal.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Final

import mcp.types as types
import trio

REPO: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.proxyctl import PYTHON, SERVERS, Proxy, running_proxy  # noqa: E402

SERVER: Final = "victim"
ROUND_TIMEOUT_S: Final = 60.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_state(proxy: Proxy, state: str, not_worker: int | None = None) -> dict:
    with trio.fail_after(ROUND_TIMEOUT_S):
        while True:
            status = (await proxy.servers())[SERVER]
            if status["state"] == state and (
                not_worker is None or status["worker_pid"] not in (None, not_worker)
            ):
                return status
            await trio.sleep(0.01)


async def one_round(proxy: Proxy, session, token: str) -> tuple[float, float]:
    status = await wait_state(proxy, "running")
    log = proxy.data_dir / "logs" / f"server-{SERVER}.log"
    answered: list[tuple[types.CallToolResult, float]] = []

    async def in_flight() -> None:
        result = await session.call_tool(
            "call_tool_read", {"name": f"{SERVER}:sleep", "args": {"seconds": 30, "token": token}}
        )
        answered.append((result, time.perf_counter()))

    with trio.fail_after(ROUND_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_flight)
            while f"sleep {token} started" not in log.read_text(errors="replace"):
                await trio.sleep(0.005)
            killed_at = time.perf_counter()
            os.kill(status["worker_pid"], signal.SIGKILL)
    result, at = answered[0]
    assert result.is_error, result
    back = await wait_state(proxy, "running", not_worker=status["worker_pid"])
    ready = time.perf_counter() - killed_at
    # Forget the failure so the next round starts from the first backoff again.
    assert (await proxy.post(f"/api/v1/servers/{SERVER}/restart")).status_code == 200
    await wait_state(proxy, "running", not_worker=back["worker_pid"])
    return at - killed_at, ready


async def main(kills: int) -> None:
    server = {"name": SERVER, "command": PYTHON, "args": [str(SERVERS / "hostile_server.py")]}
    errors: list[float] = []
    ready: list[float] = []
    load_before = f"{os.getloadavg()[0]:.2f}"  # other work on the host inflates both figures
    with tempfile.TemporaryDirectory() as tmp:
        async with running_proxy(Path(tmp), [server], close_timeout=1, kill_timeout=1) as proxy:
            await proxy.wait_for(SERVER, "running")
            async with proxy.mcp() as session:
                for i in range(kills):
                    error_s, ready_s = await one_round(proxy, session, f"k{i}")
                    errors.append(error_s * 1000)
                    ready.append(ready_s)
                    print(
                        f"kill {i + 1:>3}: error after {error_s * 1000:6.1f} ms, running again after {ready_s:5.2f} s"
                    )
    print(
        f"\nworker SIGKILL, {kills} kills; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {date.today()}, load average at start {load_before}, "
        f"at end {os.getloadavg()[0]:.2f}"
    )
    print(
        f"in-flight call error: median {statistics.median(errors):.1f} ms, p90 {percentile(errors, 0.9):.1f} ms, "
        f"max {max(errors):.1f} ms, over 1 s: {sum(e >= 1000 for e in errors)}"
    )
    print(f"back to running:      median {statistics.median(ready):.2f} s, max {max(ready):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50)
    trio.run(main, parser.parse_args().kills)
