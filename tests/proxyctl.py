"""Test harness: a real `mcpproxy serve` process on a free port, and real MCP/HTTP clients for it.

Every wait has a deadline; teardown stops the proxy with SIGTERM and then
makes sure no process it started is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx2
import trio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

REPO: Final = Path(__file__).resolve().parent.parent
FIXTURES: Final = REPO / "tests" / "fixtures"
SERVERS: Final = REPO / "tests" / "servers"
PYTHON: Final = sys.executable
EVERYTHING_JS: Final = (
    FIXTURES / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)
API_KEY: Final = "test-key-0123456789"
INITIALIZE_2025: Final = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
"""A 2025-era initialize request, for tests that speak raw JSON-RPC."""
START_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 40.0
POLL_S: Final = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def echo_server(name: str = "echo", **extra: Any) -> dict[str, Any]:
    """A config entry for our own stdio test server."""
    return {"name": name, "command": PYTHON, "args": [str(SERVERS / "echo_server.py")], **extra}


def everything_server(name: str = "everything") -> dict[str, Any]:
    """A config entry for the npm reference server `@modelcontextprotocol/server-everything` (stdio)."""
    return {"name": name, "command": "node", "args": [str(EVERYTHING_JS), "stdio"], "protocol": "stdio"}


def start_authorization_server(*flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start tests/servers/oauth_server.py on a free port (`--port 0`); return it and its base URL.

    Blocks until its `ready URL` line (a caller under trio runs this in a thread).
    """
    process = subprocess.Popen(
        [PYTHON, str(SERVERS / "oauth_server.py"), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("ready "):
        process.kill()
        raise AssertionError(f"the authorization server did not start: {line!r}")
    return process, line.split()[1]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, by /proc parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pids: Iterable[int]) -> set[int]:
    result = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rfind(")") + 2] != "Z":
            result.add(pid)
    return result


@dataclass
class Proxy:
    """A running `mcpproxy serve`."""

    process: subprocess.Popen[bytes]
    port: int
    config_path: Path
    data_dir: Path
    api_key: str = API_KEY
    seen_pids: set[int] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    async def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        async with httpx2.AsyncClient(base_url=self.base_url, timeout=10.0) as client:
            return await client.get(path, headers=kwargs.pop("headers", self.headers), **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx2.Response:
        async with httpx2.AsyncClient(base_url=self.base_url, timeout=30.0) as client:
            return await client.post(path, headers=kwargs.pop("headers", self.headers), **kwargs)

    async def servers(self) -> dict[str, dict[str, Any]]:
        response = await self.get("/api/v1/servers")
        response.raise_for_status()
        return {s["name"]: s for s in response.json()["data"]["servers"]}

    async def wait_for(
        self, name: str, state: str, timeout_s: float = START_TIMEOUT_S, **fields: Any
    ) -> dict[str, Any]:
        """Poll REST until server `name` is in `state` (and has the given field values)."""
        last: dict[str, Any] = {}
        with trio.move_on_after(timeout_s):
            while True:
                try:
                    last = (await self.servers()).get(name, {})
                except httpx2.HTTPError:
                    last = {}
                if last.get("state") == state and all(last.get(k) == v for k, v in fields.items()):
                    self.remember_pids()
                    return last
                await trio.sleep(POLL_S)
        raise AssertionError(f"server {name} did not reach {state} {fields} in {timeout_s}s; last: {last}")

    async def roots_settled(self, server: str = "everything") -> None:
        """server-everything asks its client for roots 350 ms after it starts, whoever is calling then
        (over stdio nothing ties the question to a call). One `get-roots-list` call by a client that
        declares no roots settles it — the proxy answers with the server's configured roots and the
        upstream caches them — so afterwards a test's clients are asked only their own questions."""
        async with self.mcp("/mcp/all") as session:
            with trio.fail_after(30):
                await session.call_tool(f"{server}__get-roots-list", {})

    def remember_pids(self) -> None:
        self.seen_pids |= descendants(self.process.pid)

    @asynccontextmanager
    async def mcp(
        self, path: str = "/mcp", headers: dict[str, str] | None = None
    ) -> AsyncIterator[ClientSession]:
        """A 2025-era session (initialize handshake) on `path`."""
        async with httpx2.AsyncClient(timeout=60.0, headers=headers) as http:
            async with streamable_http_client(f"{self.base_url}{path}", http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    with trio.fail_after(30):
                        await session.initialize()
                    yield session

    async def credential(self, client: str, profile: str) -> dict[str, str]:
        """Headers with a new client credential bound to `profile` (issue 21)."""
        response = await self.post("/api/v1/clients", json={"name": client, "profile": profile})
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['data']['credential']}"}

    def child(self, module: str) -> int:
        """The pid of serve's child `python -m <module>` (the gateway, the supervisor)."""
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"-m" in argv and module.encode() in argv:
                return int(entry.name)
        raise AssertionError(f"serve has no {module} child")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.remember_pids()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kill_leftovers(self) -> set[int]:
        """SIGKILL anything we saw that is still alive; return what was found (should be empty)."""
        left = alive(self.seen_pids)
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left


def write_config(directory: Path, servers: list[dict[str, Any]], **top: Any) -> Path:
    path = directory / "mcp_config.json"
    body = {"listen": "127.0.0.1:0", "api_key": API_KEY, "mcpServers": servers, **top}
    path.write_text(json.dumps(body, indent=2))
    return path


@asynccontextmanager
async def running_proxy(
    tmp_path: Path,
    servers: list[dict[str, Any]],
    *,
    wait_ready: bool = True,
    env: dict[str, str] | None = None,
    launcher: tuple[str, ...] = (),
    **top: Any,
) -> AsyncIterator[Proxy]:
    """Start `mcpproxy serve` as a subprocess; yield once /readyz answers; stop it and check for orphans.

    `launcher` is a command that execs the rest, e.g. `("prlimit", "--nofile=1024:1024", "--")`.
    """
    config_path = write_config(tmp_path, servers, **top)
    data_dir = tmp_path / "data"
    port = free_port()
    log = (tmp_path / "proxy.log").open("wb")
    process = subprocess.Popen(
        [
            *launcher,
            str(Path(PYTHON).parent / "mcpproxy"),
            "serve",
            "--config",
            str(config_path),
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    proxy = Proxy(process=process, port=port, config_path=config_path, data_dir=data_dir)
    try:
        if wait_ready:
            with trio.fail_after(START_TIMEOUT_S):
                while True:
                    if process.poll() is not None:
                        raise AssertionError(f"proxy exited early: {(tmp_path / 'proxy.log').read_text()}")
                    try:
                        if (await proxy.get("/readyz")).status_code == 200:
                            break
                    except httpx2.HTTPError:
                        pass
                    await trio.sleep(POLL_S)
        yield proxy
    finally:
        proxy.stop()
        leftovers = proxy.kill_leftovers()
        log.close()
        assert not leftovers, f"processes outlived the proxy: {sorted(leftovers)}"
