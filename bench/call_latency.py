"""Call latency: an echo tool called directly over stdio vs through the proxy, in one run.

    .venv/bin/python bench/call_latency.py [--calls 1000]

Prints p50/p99 latency and sequential calls/s for (a) the mcp SDK client
talking to the echo server over stdio, (b) the same server through the
proxy's /mcp/all (direct mode) and (c) through /mcp with call_tool_read, plus
what the proxy adds over (a). `bench/run.py` reports the same figures among
all the others.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import date
from functools import partial
from pathlib import Path
from typing import Final

import trio

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.clients import MESSAGE, CallOpener, open_mcp_call, open_stdio_call  # noqa: E402
from bench.proxy import echo_servers, open_proxy  # noqa: E402
from bench.rounds import WARMUP, interleaved_latency  # noqa: E402

BASELINE: Final = "direct stdio (baseline)"
ROUNDS: Final = 10


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_proxy(Path(tmp), echo_servers(1)) as proxy:
            await proxy.wait_ready()
            await proxy.wait_running(1)
            read_tool = {"name": "echo:echo", "args": MESSAGE}
            openers: dict[str, CallOpener] = {
                BASELINE: open_stdio_call,
                "proxy /mcp/all (direct mode)": partial(
                    open_mcp_call, f"{proxy.base_url}/mcp/all", "echo__echo", MESSAGE
                ),
                "proxy /mcp call_tool_read": partial(
                    open_mcp_call, f"{proxy.base_url}/mcp", "call_tool_read", read_tool
                ),
            }
            outcome = await interleaved_latency(openers, calls, ROUNDS)
    if outcome.failures:
        raise SystemExit(f"call_latency: {outcome.failures}")
    rows = outcome.figures
    base_row = rows[BASELINE]
    print(
        f"call latency, {calls} sequential echo calls after {WARMUP} warm-up, in {ROUNDS} interleaved rounds; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today()}"
    )
    print(
        f"| {'path':<30} | {'p50 ms':>7} | {'p99 ms':>7} | {'calls/s':>8} | {'added p50':>9} | {'added p99':>9} |"
    )
    print(f"|{'-' * 32}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 11}|")
    for name, row in rows.items():
        added50, added99 = ("", "") if row is base_row else (f"{d:+.2f}" for d in row.added_over(base_row))
        print(
            f"| {name:<30} | {row.p50_ms:>7.2f} | {row.p99_ms:>7.2f} | {row.rate:>8.0f} | {added50:>9} | {added99:>9} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    trio.run(main, parser.parse_args().calls)
