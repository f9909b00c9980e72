"""The proxy split across network namespaces over a CurveZMQ tcp:// bus (docs/scale-out.md).

The supervisor, and so every worker and upstream it starts, runs inside a namespace; the
gateway runs in ours. They meet only over the veth pair: the gateway dials the supervisor's
control socket at the namespace's address, workers dial the gateway's calls socket at ours.
Each process gets only its own role's keys, from the environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import httpx2
import pytest
import trio

from bus.transport import TCP_HEARTBEAT_IVL_S, TCP_HEARTBEAT_TIMEOUT_S
from services.bus_keys import NEEDS, env_var, generate
from services.runtime import CALLS_ENV, CONTROL_ENV
from tests.netns import Link, joined_namespace
from tests.proxyctl import PYTHON, START_TIMEOUT_S, Proxy, alive, echo_server, free_port, write_config
from tests.system.test_supervision import text_of, wait_for_log

pytestmark = [pytest.mark.system, pytest.mark.requires("netns")]

CONTROL_PORT = 7421
CALLS_PORT = 7422
STOP_S = 20.0
HEARTBEAT_DEADLINE_S = TCP_HEARTBEAT_IVL_S + TCP_HEARTBEAT_TIMEOUT_S + 1.0


@pytest.fixture
def link() -> Iterator[Link]:
    with joined_namespace() as joined:
        yield joined


def role_env(role: str, keys: dict[str, str], link: Link) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPPROXY_BUS_")}
    env[CONTROL_ENV] = f"tcp://{link.inner_ip}:{CONTROL_PORT}"
    env[CALLS_ENV] = f"tcp://{link.host_ip}:{CALLS_PORT}"
    env.update({env_var(name): keys[name] for name in NEEDS[role]})  # type: ignore[index]
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@asynccontextmanager
async def split_proxy(tmp_path: Path, link: Link) -> AsyncIterator[Proxy]:
    """The supervisor inside the namespace, the gateway here; yields once the gateway is ready."""
    keys = generate()
    config = write_config(tmp_path, [echo_server("echo")])
    data_dir = tmp_path / "data"
    port = free_port()
    common = ["--config", str(config), "--data-dir", str(data_dir)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (tmp_path / "supervisor.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    link.argv(PYTHON, "-P", "-m", "supervisor", *common),
                    env=role_env("supervisor", keys, link),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        with (tmp_path / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(
                [PYTHON, "-P", "-m", "gateway", *common, "--listen", f"127.0.0.1:{port}"],
                env=role_env("gateway", keys, link),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            processes.append(gateway)
        proxy = Proxy(process=gateway, port=port, config_path=config, data_dir=data_dir)
        with trio.fail_after(START_TIMEOUT_S):
            while True:
                for process in processes:
                    if process.poll() is not None:
                        logs = [(tmp_path / f"{n}.log").read_text() for n in ("supervisor", "gateway")]
                        raise AssertionError(f"a process exited early: {logs}")
                with suppress(httpx2.HTTPError):
                    if (await proxy.get("/readyz")).status_code == 200:
                        break
                await trio.sleep(0.05)
        yield proxy
    finally:
        seen = set()
        for process in processes:
            seen |= {process.pid}
        for process in reversed(processes):
            stop(process)
        assert not alive(seen), "a process of the split proxy outlived its stop"


async def test_the_gateway_serves_a_worker_in_another_namespace_and_a_cut_link_fails_the_call(
    tmp_path: Path, link: Link
) -> None:
    async with split_proxy(tmp_path, link) as proxy:
        status = await proxy.wait_for("echo", "running")
        assert status["worker_pid"], status
        async with proxy.mcp() as session:
            answered = await session.call_tool(
                "call_tool_read", {"name": "echo:echo", "args": {"message": "across"}}
            )
            assert text_of(answered) == "across"
            outcome: list[tuple[str, bool, float]] = []

            async def in_flight() -> None:
                result = await session.call_tool(
                    "call_tool_read", {"name": "echo:sleep", "args": {"seconds": 60}}
                )
                outcome.append((text_of(result), bool(result.is_error), time.monotonic()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(in_flight)
                await wait_for_log(proxy, "echo", "sleep started")  # the upstream has the call
                link.cut()
                cut_at = time.monotonic()
                with trio.fail_after(HEARTBEAT_DEADLINE_S + 2):
                    while not outcome:
                        await trio.sleep(0.05)
        message, is_error, failed_at = outcome[0]
        assert is_error and "bus connection to server 'echo' was lost" in message, message
        assert failed_at - cut_at <= HEARTBEAT_DEADLINE_S, f"failed {failed_at - cut_at:.1f}s after the cut"
