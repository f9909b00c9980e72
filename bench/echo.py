"""The echo upstream on its own: what it costs to start and to stop, the yardstick for a fleet of them."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Final

import trio

from bench.clients import ECHO_ARGV, open_stdio_session

DEADLINE_S: Final = 30.0
INITIALIZE: Final = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}  # fmt: skip
INITIALIZED: Final = {"jsonrpc": "2.0", "method": "notifications/initialized"}


async def start_s(repeats: int) -> float:
    """Median seconds from spawning the echo server to a completed `initialize`, with the SDK client."""
    samples = []
    for _ in range(repeats):
        with trio.fail_after(DEADLINE_S):
            started = time.perf_counter()
            async with open_stdio_session() as session:
                await session.initialize()
                samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def exit_cpu_s(repeats: int) -> float:
    """Median CPU seconds an initialized echo server spends from stdin EOF (the polite stop) to its exit.

    The process is ours alone here, so the CPU our reaped children used grows by exactly its
    lifetime's CPU; less what it had used before EOF, that is its exit.
    """
    samples = []
    for _ in range(repeats):
        with trio.fail_after(DEADLINE_S):
            before = _children_cpu_s()
            process = await trio.lowlevel.open_process(
                list(ECHO_ARGV), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send_all(json.dumps(INITIALIZE).encode() + b"\n")
            answer = b""
            while b"\n" not in answer:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise RuntimeError("the echo server closed stdout before answering initialize")
                answer += chunk
            await process.stdin.send_all(json.dumps(INITIALIZED).encode() + b"\n")
            used_before_eof = _cpu_s(process.pid)
            await process.stdin.aclose()
            await process.wait()
            samples.append(_children_cpu_s() - before - used_before_eof)
    return statistics.median(samples)
