"""The whole benchmark in one run, as one markdown table against targets and a same-run baseline.

    .venv/bin/python bench/run.py [--quick]

Measures, on this machine and in this run: echo-call latency directly over
stdio (the baseline) and through the proxy's /mcp/all and /mcp
(call_tool_read), with the MCP SDK client (also its `Client` in both protocol
eras) and with one minimal keep-alive JSON-RPC client used for ours and every
HTTP peer alike (the proxy's own cost, client cost out of the comparison);
CPU per call of each process on the path (client, gateway, worker, each
peer's process, the echo server); concurrent throughput (10 and 50 sessions); PSS of the
proxy's processes with 1 and with 50 upstreams; launch to ready; time to
run 50 stdio upstreams; stop time with 50 upstreams; `retrieve_tools` search
at 1,000 and 10,000 tools; tokens per `retrieve_tools` answer, compact vs full,
and per `/mcp/all` listing, deferred vs full (bench/context_tokens.py, with the
seven reference servers of the public eval set). The peers mcp-proxy, mcp-hub and mcpo run in front
of the same echo server, side by side with the proxy: baseline, proxy and
peers are measured in interleaved rounds, so that load from other work on the
machine weighs on all of them alike. Peers are installed on first use under
/tmp/mcpproxy-bench-peers (outside the repo's venv) and reused afterwards; a
peer that does not install gets a "not installed: reason" row.

`--quick` is a smoke run with small counts (5 upstreams instead of 50).
Progress goes to stderr, the table to stdout. Every process the bench starts
is stopped before it exits, also on failure or Ctrl-C. Exit code 1 when a
stage could not be measured (a target missed is not an error).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import trio

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.processes import LEFT_BEHIND  # noqa: E402
from bench.report import machine_line, markdown_table  # noqa: E402
from bench.suite import FULL, QUICK, Suite  # noqa: E402


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope, got: list[int]) -> None:
    async for signum in signals:
        print(f"bench: {signal.Signals(signum).name}: stopping every process it started", file=sys.stderr)
        got.append(signum)
        scope.cancel()
        return


async def main(quick: bool) -> int:
    started = time.perf_counter()
    header = machine_line("--quick" if quick else "full run")
    got: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="mcpproxy-bench-") as scratch,
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        suite = Suite(QUICK if quick else FULL, Path(scratch))
        # Shutdown is cancellation: every process tree's teardown is shielded and bounded.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope, got)
            await suite.run()
            nursery.cancel_scope.cancel()
    left = f"{len(LEFT_BEHIND)} left behind: {sorted(LEFT_BEHIND)}" if LEFT_BEHIND else "none left behind"
    if got:
        print(f"bench: interrupted; processes it started: {left}", file=sys.stderr)
        return 128 + got[0]
    print(header)
    print()
    print(markdown_table(suite.table_rows()))
    print()
    print(f"bench took {time.perf_counter() - started:.0f} s; processes started by the bench: {left}")
    return 1 if suite.failures or LEFT_BEHIND else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run with small counts")
    sys.exit(trio.run(main, parser.parse_args().quick))
