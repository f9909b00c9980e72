"""Peer proxies in front of the same echo server, measured the same way as ours in the same run.

- mcp-proxy (PyPI, sparfenyuk): stdio server -> streamable HTTP at /mcp/.
- mcp-hub (npm, ravitemer): a hub whose unified endpoint /mcp speaks the
  legacy HTTP+SSE transport; tools are named `server__tool`.
- mcpo (PyPI, open-webui): stdio server -> OpenAPI REST, one POST route per tool.

Each is driven twice: with the MCP SDK client (mcpo: an httpx REST client), and
with the bench's minimal client (`bench/minimal_client.py`) over the same
transport, which takes the client's cost out of the comparison. Every peer runs
at WARNING where it has the option, as the proxy does here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx2
import trio

from bench import minimal_client
from bench.clients import ECHO, ECHO_ARGV, MESSAGE, CallOpener, Transport, open_mcp_call, open_rest_call
from bench.cpu import ECHO_SERVER
from bench.peer_install import Installed, NpmPackage, PythonPackage, ensure_npm, ensure_python
from bench.processes import cmdline, open_tree
from tests.proxyctl import free_port

READY_DEADLINE_S: Final = 60.0
READY_POLL_S: Final = 0.1
LOG_TAIL_CHARS: Final = 1500


class PeerError(RuntimeError):
    """A peer did not start or answer; the message carries the end of its log."""


@dataclass(frozen=True)
class Peer:
    """How to install, start, await and call one peer proxy."""

    name: str
    package: PythonPackage | NpmPackage
    surface: str
    published_added_p50_ms: float | None
    published_rate: float
    arguments: Callable[[int, Path], list[str]]
    """(port, scratch directory) -> command-line arguments; may write a config file there."""
    ready: Callable[[httpx2.Response], bool]
    ready_path: str
    caller: Callable[[str], CallOpener]
    """base URL -> opener of an echo call with the SDK client (mcpo: a REST client)."""
    minimal: Callable[[str], CallOpener]
    """base URL -> opener of the same echo call with the minimal client."""
    minimal_wire: str
    """How the minimal client talks to it, for the table."""
    env: Callable[[Path], dict[str, str]] = lambda directory: {}


def _stdio_front_arguments(port: int, directory: Path) -> list[str]:
    """mcp-proxy and mcpo take the same options, then the stdio server's command line."""
    return ["--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING", "--", *ECHO_ARGV]


def _mcp_hub_arguments(port: int, directory: Path) -> list[str]:
    config = directory / "mcp-hub.json"
    config.write_text(
        json.dumps({"mcpServers": {"echo": {"command": ECHO_ARGV[0], "args": list(ECHO_ARGV[1:])}}})
    )
    return ["--port", str(port), "--config", str(config)]


def _mcp_hub_ready(response: httpx2.Response) -> bool:
    body: dict[str, Any] = response.json() if response.status_code == 200 else {}
    servers = body.get("servers") or []
    return (
        body.get("state") == "ready"
        and bool(servers)
        and all(s.get("status") == "connected" for s in servers)
    )


def _mcpo_ready(response: httpx2.Response) -> bool:
    return response.status_code == 200 and "/echo" in response.json().get("paths", {})


PEERS: Final = (
    Peer(
        name="mcp-proxy",
        package=PythonPackage("mcp-proxy", ("mcp-proxy",), "mcp-proxy"),
        surface="stdio -> streamable HTTP",
        published_added_p50_ms=2.8,
        published_rate=330,
        arguments=_stdio_front_arguments,
        ready=lambda response: response.status_code == 200,
        ready_path="/status",
        caller=lambda base: partial(open_mcp_call, f"{base}/mcp/", "echo", MESSAGE),
        minimal=lambda base: partial(minimal_client.open_session_call, f"{base}/mcp/", "echo"),
        minimal_wire="2025 session, answers application/json",
    ),
    Peer(
        name="mcp-hub",
        package=NpmPackage("mcp-hub", "mcp-hub", "mcp-hub"),
        surface="hub /mcp, HTTP+SSE",
        published_added_p50_ms=1.5,
        published_rate=368,
        arguments=_mcp_hub_arguments,
        ready=_mcp_hub_ready,
        ready_path="/api/health",
        caller=lambda base: partial(open_mcp_call, f"{base}/mcp", "echo__echo", MESSAGE, Transport.SSE),
        # It has no streamable HTTP: the answer to each POST (202) comes on the GET event stream.
        minimal=lambda base: partial(minimal_client.open_sse_call, f"{base}/mcp", "echo__echo"),
        minimal_wire="HTTP+SSE: POST /messages, answer on the GET /mcp stream",
        # Its state and logs go under XDG dirs: keep them in the scratch directory.
        env=lambda directory: {
            "XDG_STATE_HOME": str(directory / "state"),
            "XDG_CONFIG_HOME": str(directory / "config"),
            "XDG_DATA_HOME": str(directory / "data"),
        },
    ),
    Peer(
        name="mcpo",
        # mcpo 0.0.20 does not cap its dependencies, and today's releases break it: it imports
        # `streamablehttp_client`, gone in mcp 2, and passes ssl_certfile= to FastAPI(), which
        # FastAPI 0.165 refuses with TypeError (0.139 still accepted unknown keywords).
        package=PythonPackage("mcpo", ("mcpo", "mcp<2", "fastapi<0.140"), "mcpo"),
        surface="stdio -> OpenAPI REST",
        published_added_p50_ms=None,
        published_rate=402,
        arguments=_stdio_front_arguments,
        ready=_mcpo_ready,
        ready_path="/openapi.json",
        caller=lambda base: partial(open_rest_call, f"{base}/echo", MESSAGE),
        minimal=lambda base: partial(minimal_client.open_rest_call, f"{base}/echo"),
        minimal_wire="REST POST /echo",
    ),
)


async def install(peer: Peer) -> Installed:
    """The installed peer (installing it on first use); NotInstalledError says why not."""
    if isinstance(peer.package, PythonPackage):
        return await ensure_python(peer.package)
    return await ensure_npm(peer.package)


async def _wait_ready(peer: Peer, base: str, running: Callable[[], bool], log_path: Path) -> None:
    async with httpx2.AsyncClient(timeout=5.0) as http:
        with trio.move_on_after(READY_DEADLINE_S):
            while running():
                try:
                    if peer.ready(await http.get(f"{base}{peer.ready_path}")):
                        return
                except (httpx2.HTTPError, ValueError):
                    pass
                await trio.sleep(READY_POLL_S)
    tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    what = "exited" if not running() else f"not ready within {READY_DEADLINE_S:.0f}s"
    raise PeerError(f"{peer.name} {what}; end of its log:\n{tail}")


@dataclass(frozen=True)
class RunningPeer:
    """A started peer: openers of an echo call through it, and its processes by name."""

    sdk: CallOpener
    minimal: CallOpener
    processes: dict[str, int]
    """The peer's own process, and the echo server it runs."""


@asynccontextmanager
async def open_peer(peer: Peer, installed: Installed, directory: Path) -> AsyncIterator[RunningPeer]:
    """Start the peer in front of one echo server; once it is ready, yield what calls through it."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [*installed.command, *peer.arguments(port, directory)]
    log_path = directory / f"{peer.name}.log"
    async with open_tree(argv, log_path, env=peer.env(directory), cwd=directory) as tree:
        await _wait_ready(peer, base, lambda: tree.running, log_path)
        processes = {peer.name: tree.pid}
        for pid in sorted(tree.remember()):
            # A helper process of the peer's own (none today) counts as the peer's cost too.
            processes[ECHO_SERVER if str(ECHO) in cmdline(pid) else f"{peer.name} {pid}"] = pid
        yield RunningPeer(peer.caller(base), peer.minimal(base), processes)
