"""`mcpproxy serve`: watch the supervisor and the gateway, stop both cleanly on Ctrl-C or SIGTERM.

`cli.serve_launch` has started them before this module (trio, httpx2) was imported.

Once the proxy has been ready, a child that dies is started again with
backoff (`Backoff`): a crashed gateway alone, while the supervisor, the
workers and their upstreams keep running (the workers reconnect to the new
gateway's socket by themselves); a crashed supervisor together with a new
gateway, since the gateway knows servers only through its subscription to
one supervisor run. A child that dies before the proxy was ever ready (a bad
config, a port in use) stops `serve`, as it would under honcho, which stops
every Procfile line when one ends and restarts nothing.
"""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx2
import trio

from cli.serve_launch import LAUNCH_ORDER, Launched
from cli.serve_progress import report_servers
from services import process
from services.config import API_KEY_ENV, ProxyConfig
from services.run_file import read_run_record, remove_run_record

logger = logging.getLogger(__name__)

READY_TIMEOUT_S: Final = 30.0
READY_POLL_S: Final = 0.05
STOP_MARGIN_S: Final = 5.0
SUPERVISOR_STOP_EXTRA_S: Final = 28.0
"""What the supervisor's bounded stop adds to close_timeout + 2 x kill_timeout (supervisor/runner.py
`_stop_worker` per server, then supervisor/control.py): 2 s of margin on the worker's staged stop, 2 s to
reap a worker it SIGKILLed, 2 s to reap what the upstream group's sweep killed, 2 s to reap the zygote,
and with Docker isolation 10 s per container sweep (the server's, then the instance's)."""
EXIT_CHILD_SAID_WHY: Final = 2
"""A child's exit code after it printed, in one line, why it cannot run (a config error, an address
in use, a data dir taken): `serve` adds nothing to that line."""
RESTART_FIRST_S: Final = 0.5
RESTART_MAX_S: Final = 30.0
RESTART_STABLE_S: Final = 60.0
"""A child that ran this long before it died is restarted after RESTART_FIRST_S again."""
RESTARTS_WITH: Final = {"gateway": ("gateway",), "supervisor": ("gateway", "supervisor")}
"""What a crash of each child restarts (see the module docstring)."""


@dataclass
class Backoff:
    """Restart delays of one child: RESTART_FIRST_S, doubling to RESTART_MAX_S, reset by stability."""

    delay_s: float = 0.0

    def next_delay(self, ran_s: float) -> float:
        if self.delay_s == 0.0 or ran_s >= RESTART_STABLE_S:
            self.delay_s = RESTART_FIRST_S
        else:
            self.delay_s = min(self.delay_s * 2, RESTART_MAX_S)
        return self.delay_s


def stop_budget_s(close_timeout_s: float, kill_timeout_s: float) -> float:
    """How long a stop waits for the children before SIGKILL: longer than the supervisor's own bound."""
    return close_timeout_s + 2 * kill_timeout_s + SUPERVISOR_STOP_EXTRA_S + STOP_MARGIN_S


async def _wait_ready(data_dir: Path, gateway: process.Child) -> str | None:
    """The base URL of `gateway` once its /readyz answers 200; None after READY_TIMEOUT_S.

    The address comes from the run file that gateway wrote after binding, never from the config
    alone: another program (another mcpproxy) listening there must not pass for ours.
    """
    async with httpx2.AsyncClient(timeout=1.0) as client:
        with trio.move_on_after(READY_TIMEOUT_S):
            while True:
                record = read_run_record(data_dir)
                if record is not None and record.pid == gateway.pid:
                    try:
                        if (await client.get(f"{record.url}/readyz")).status_code == 200:
                            return record.url
                    except httpx2.HTTPError:
                        pass
                await trio.sleep(READY_POLL_S)
    return None


async def _stop(children: dict[str, process.Child], budget_s: float) -> list[str]:
    """SIGTERM each child's group, wait up to `budget_s` for all, SIGKILL the rest; the names killed."""
    for child in children.values():
        if child.running:
            child.signal_group(signal.SIGTERM)
    with trio.move_on_after(budget_s):
        for child in children.values():
            await child.wait()
    killed = []
    for name, child in children.items():
        if child.running:
            killed.append(name)
            child.signal_group(signal.SIGKILL)
            await child.wait()
    return killed


async def run_serve(config: ProxyConfig, launched: Launched, data_dir: Path) -> int:
    """Watch the launched children: announce readiness, restart a crashed one, stop both on a signal."""
    env = launched.env
    children = {name: process.Child(popen) for name, popen in launched.children.items()}
    started_at = dict.fromkeys(children, trio.current_time())
    backoff = {name: Backoff() for name in children}
    stopped_by_us: set[int] = set()
    stop_budget = stop_budget_s(config.close_timeout_s(), config.kill_timeout_s())
    exit_code = 0
    ready = trio.Event()
    crashes_send, crashes_receive = trio.open_memory_channel[tuple[str, int]](len(LAUNCH_ORDER))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            first_exit = trio.Event()
            ended: list[tuple[str, int]] = []

            async def watch(name: str, child: process.Child) -> None:
                code = await child.wait()
                if child.pid in stopped_by_us or first_exit.is_set():
                    return
                if ready.is_set():
                    await crashes_send.send((name, code))
                    return
                ended.append((name, code))
                first_exit.set()

            async def restart_crashed() -> None:
                async for name, code in crashes_receive:
                    group: list[str] = [n for n in LAUNCH_ORDER if n in RESTARTS_WITH[name]]
                    delay = backoff[name].next_delay(trio.current_time() - started_at[name])
                    print(
                        f"mcpproxy: the {name} process exited with code {code}; starting "
                        f"{' and '.join(group)} again in {delay:.1f}s",
                        file=sys.stderr,
                        flush=True,
                    )
                    others = {n: children[n] for n in group if n != name and children[n].running}
                    stopped_by_us.update(child.pid for child in others.values())
                    await _stop(others, stop_budget)
                    await trio.sleep(delay)
                    if first_exit.is_set():
                        return
                    for member in group:  # no checkpoint in here: a stop sees every new child
                        children[member] = process.Child(launched.respawn(member))
                        started_at[member] = trio.current_time()
                        nursery.start_soon(watch, member, children[member])
                    nursery.start_soon(announce_again, group)

            async def announce_again(group: list[str]) -> None:
                if await _wait_ready(data_dir, children["gateway"]):
                    print(f"mcpproxy: ready again ({' and '.join(group)} restarted)", flush=True)

            async def on_signal() -> None:
                async for signum in signals:
                    print(
                        f"mcpproxy: {signal.Signals(signum).name}: stopping (this may take up to "
                        f"{stop_budget:.0f}s if an upstream is slow to exit)",
                        file=sys.stderr,
                    )
                    first_exit.set()
                    return

            async def announce() -> None:
                if base_url := await _wait_ready(data_dir, children["gateway"]):
                    ready.set()
                    print(
                        f"mcpproxy ready: MCP endpoint {base_url}/mcp  (all tools: {base_url}/mcp/all)",
                        flush=True,
                    )
                    print(f"  REST API {base_url}/api/v1  ({launched.api_key_origin})", flush=True)
                    await report_servers(base_url, env.get(API_KEY_ENV) or config.api_key, config)

            for name, child in children.items():
                nursery.start_soon(watch, name, child)
            nursery.start_soon(on_signal)
            nursery.start_soon(announce)
            nursery.start_soon(restart_crashed)
            await first_exit.wait()
            for name, code in ended:
                if code == EXIT_CHILD_SAID_WHY:
                    exit_code = 1
                elif code != 0:
                    print(f"mcpproxy: the {name} process exited with code {code}; stopping", file=sys.stderr)
                    exit_code = 1
            for name in await _stop(children, stop_budget):
                print(
                    f"mcpproxy: the {name} process did not stop in {stop_budget:.0f}s; killed it",
                    file=sys.stderr,
                )
            nursery.cancel_scope.cancel()
    remove_run_record(data_dir, children["gateway"].pid)  # a gateway we had to kill left it
    return exit_code
