"""`mcpproxy serve` under the bench: a temp config of echo upstreams, readiness, and its processes by role."""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import trio

from bench.clients import ECHO
from bench.processes import Tree, cmdline, open_tree
from tests.proxyctl import free_port

API_KEY: Final = "bench-key-0123456789"
LOG_LEVEL: Final = "WARNING"
READY_DEADLINE_S: Final = 30.0
RUNNING_DEADLINE_S: Final = 300.0
READY_POLL_S: Final = 0.01
"""Launch-to-ready is ~1 s: a 10 ms poll keeps the error of the figure small."""
RUNNING_POLL_S: Final = 0.1
"""Each poll lists every server: slower polling keeps the poller's own load on the gateway low."""
LOG_TAIL_CHARS: Final = 2000


class Role(enum.Enum):
    """What a process of the proxy's tree is, told by its command line (workers set their title)."""

    SERVE = "mcpproxy serve"
    SUPERVISOR = "supervisor"
    GATEWAY = "gateway"
    ZYGOTE = "zygote"
    WORKER = "worker"
    UPSTREAM = "upstream"


def role_of(command: str) -> Role:
    if "-m supervisor" in command:
        return Role.SUPERVISOR
    if "-m gateway" in command:
        return Role.GATEWAY
    if "services.worker.zygote" in command:
        return Role.ZYGOTE
    if "services.worker" in command:
        return Role.WORKER
    return Role.UPSTREAM


class ProxyError(RuntimeError):
    """The proxy exited, or did not get ready in time; the message carries the end of its log."""


def echo_servers(count: int) -> list[dict[str, Any]]:
    """`count` config entries of our stdio echo server: `echo` alone, else `echo01`, `echo02`, ..."""
    names = ["echo"] if count == 1 else [f"echo{number:02d}" for number in range(1, count + 1)]
    return [
        {"name": name, "command": sys.executable, "args": [str(ECHO)], "quarantined": False} for name in names
    ]


class Proxy:
    """A running `mcpproxy serve` and the HTTP client the bench polls it with."""

    def __init__(self, tree: Tree, port: int, log_path: Path, http: httpx2.AsyncClient) -> None:
        self.tree = tree
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._http = http

    def failure(self, what: str) -> ProxyError:
        tail = self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        return ProxyError(f"{what}; end of the proxy's log:\n{tail}")

    async def wait_ready(self) -> float:
        """Seconds from launch until GET /readyz answers 200."""
        with trio.move_on_after(READY_DEADLINE_S):
            while self.tree.running:
                try:
                    if (await self._http.get(f"{self.base_url}/readyz")).status_code == 200:
                        return self.tree.since_launch()
                except httpx2.HTTPError:
                    pass
                await trio.sleep(READY_POLL_S)
            raise self.failure(f"the proxy exited with code {self.tree.process.returncode}")
        raise self.failure(f"/readyz did not answer 200 within {READY_DEADLINE_S:.0f}s")

    async def servers(self) -> list[dict[str, Any]]:
        response = await self._http.get(f"{self.base_url}/api/v1/servers", headers={"X-API-Key": API_KEY})
        response.raise_for_status()
        servers: list[dict[str, Any]] = response.json()["data"]["servers"]
        return servers

    async def wait_running(self, count: int) -> float:
        """Seconds from launch until `count` servers are `running` (GET /api/v1/servers)."""
        states: dict[str, int] = {}
        with trio.move_on_after(RUNNING_DEADLINE_S):
            while self.tree.running:
                try:
                    servers = await self.servers()
                except (httpx2.HTTPError, KeyError, ValueError):
                    servers = []
                states = {}
                for server in servers:
                    states[server["state"]] = states.get(server["state"], 0) + 1
                if states.get("running", 0) >= count:
                    return self.tree.since_launch()
                await trio.sleep(RUNNING_POLL_S)
            raise self.failure(f"the proxy exited with code {self.tree.process.returncode}")
        raise self.failure(f"{count} servers not running within {RUNNING_DEADLINE_S:.0f}s; states: {states}")

    def processes(self) -> dict[Role, list[int]]:
        """The live processes of the proxy's tree (walked from the leader's pid), by role."""
        found: dict[Role, list[int]] = {role: [] for role in Role}
        found[Role.SERVE].append(self.tree.pid)
        for pid in sorted(self.tree.remember()):
            found[role_of(cmdline(pid))].append(pid)
        return found


@asynccontextmanager
async def open_proxy(directory: Path, servers: list[dict[str, Any]]) -> AsyncIterator[Proxy]:
    """Write a config of `servers` under `directory` and start `mcpproxy serve` on a free port."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "mcp_config.json"
    config.write_text(json.dumps({"api_key": API_KEY, "mcpServers": servers}))
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "mcpproxy"), "serve", "--config", str(config),
        "--data-dir", str(directory / "data"), "--listen", f"127.0.0.1:{port}", "--log-level", LOG_LEVEL,
    ]  # fmt: skip
    log_path = directory / "proxy.log"
    async with httpx2.AsyncClient(timeout=5.0) as http, open_tree(argv, log_path) as tree:
        yield Proxy(tree, port, log_path, http)
