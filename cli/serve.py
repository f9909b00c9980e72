"""`mcpproxy serve`: watch the supervisor and the gateway, stop both cleanly on Ctrl-C or SIGTERM.

`cli.serve_launch` has started them before this module (trio, httpx2) was imported.

The same two processes run as separate Procfile lines under honcho. Here we
play honcho's part: if either process ends, the other is stopped too.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Final

import httpx2
import trio

from cli.serve_launch import Launched
from cli.serve_progress import report_servers
from services import process
from services.config import API_KEY_ENV, ProxyConfig

logger = logging.getLogger(__name__)

READY_TIMEOUT_S: Final = 30.0
READY_POLL_S: Final = 0.05
STOP_MARGIN_S: Final = 5.0


async def _wait_ready(base_url: str) -> bool:
    async with httpx2.AsyncClient(timeout=1.0) as client:
        with trio.move_on_after(READY_TIMEOUT_S):
            while True:
                try:
                    if (await client.get(f"{base_url}/readyz")).status_code == 200:
                        return True
                except httpx2.HTTPError:
                    pass
                await trio.sleep(READY_POLL_S)
    return False


async def run_serve(config: ProxyConfig, config_path: Path, launched: Launched, listen: str | None) -> int:
    """Watch the launched children: announce readiness, stop both on a signal or when either ends."""
    listen_addr = listen or config.listen
    host, _, port = listen_addr.rpartition(":")
    shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    base_url = f"http://{shown_host}:{port}"
    env = launched.env
    children = {name: process.Child(popen) for name, popen in launched.children.items()}
    stop_budget = config.close_timeout_s() + config.kill_timeout_s() + STOP_MARGIN_S
    exit_code = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            first_exit = trio.Event()
            ended: list[tuple[str, int]] = []

            async def watch(name: str, child: process.Child) -> None:
                code = await child.wait()
                ended.append((name, code))
                first_exit.set()

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
                if await _wait_ready(base_url):
                    print(
                        f"mcpproxy ready: MCP endpoint {base_url}/mcp  (all tools: {base_url}/mcp/all)",
                        flush=True,
                    )
                    print(f"  REST API {base_url}/api/v1  (API key in {config_path})", flush=True)
                    await report_servers(base_url, env.get(API_KEY_ENV) or config.api_key, config)

            for name, child in children.items():
                nursery.start_soon(watch, name, child)
            nursery.start_soon(on_signal)
            nursery.start_soon(announce)
            await first_exit.wait()
            for name, code in ended:
                if code != 0:
                    print(f"mcpproxy: the {name} process exited with code {code}; stopping", file=sys.stderr)
                    exit_code = 1
            for child in children.values():
                if child.running:
                    child.signal_group(signal.SIGTERM)
            with trio.move_on_after(stop_budget):
                for child in children.values():
                    await child.wait()
            for name, child in children.items():
                if child.running:
                    print(
                        f"mcpproxy: the {name} process did not stop in {stop_budget:.0f}s; killing it",
                        file=sys.stderr,
                    )
                    child.signal_group(signal.SIGKILL)
                    await child.wait()
            nursery.cancel_scope.cancel()
    return exit_code
