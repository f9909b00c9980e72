"""Scale-out by simulation (docs/scale-out.md): two gateway replicas and one supervisor as local
processes over a CurveZMQ tcp:// bus, behind a round-robin HTTP front.

The front (`Front`, below) sends each request to the next replica, except a request that carries
an `Mcp-Session-Id`: it goes to the replica whose response issued that id. A 2026-07-28 client
(no sessions) is then served by both replicas, tool calls included — so the worker serves both
gateways — and a 2025-era client (`mode="legacy"`) stays on the replica that took its initialize.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx2
import pytest
import trio
from mcp.client import Client

from services.bus_keys import NEEDS, env_var, generate
from services.runtime import CALLS_BIND_ENV, CALLS_ENV, CONTROL_ENV, GATEWAY_ID_ENV
from tests.proxyctl import (
    API_KEY,
    PYTHON,
    START_TIMEOUT_S,
    alive,
    descendants,
    echo_server,
    free_port,
    write_config,
)
from tests.system.test_supervision import text_of

pytestmark = pytest.mark.system

REPLICAS: Final = 2
STOP_S: Final = 20.0
HEAD_END: Final = b"\r\n\r\n"
MAX_HEAD: Final = 64 * 1024


@dataclass
class Routed:
    backend: int
    method: str
    session: str | None


@dataclass
class Front:
    """A tiny HTTP/1.1 front: one request per connection to a backend, round-robin unless a session
    id says where to go; it learns session ids from the responses that issue them."""

    backends: list[int]
    sessions: dict[str, int] = field(default_factory=dict)
    log: list[Routed] = field(default_factory=list)
    turn: itertools.cycle[int] = field(init=False)

    def __post_init__(self) -> None:
        self.turn = itertools.cycle(range(len(self.backends)))

    async def serve(self, listener: trio.SocketListener) -> None:
        await trio.serve_listeners(self._handle, [listener])

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            head, body = await _read_head(client)
            length = int(_headers(head).get("content-length", "0"))
            while len(body) < length:
                chunk = await client.receive_some()
                if not chunk:
                    return
                body += chunk
            session = _headers(head).get("mcp-session-id")
            backend = self.sessions[session] if session in self.sessions else next(self.turn)
            method = json.loads(body).get("method", "?") if body[:1] == b"{" else head.split(b" ")[0].decode()
            self.log.append(Routed(backend, method, session))
            upstream = await trio.open_tcp_stream("127.0.0.1", self.backends[backend])
            async with upstream:
                await upstream.send_all(_close_after(head) + body)
                reply, rest = await _read_head(upstream)
                if issued := _headers(reply).get("mcp-session-id"):
                    self.sessions[issued] = backend
                await client.send_all(_close_after(reply) + rest)
                while chunk := await upstream.receive_some():
                    await client.send_all(chunk)


async def _read_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    data = b""
    while HEAD_END not in data:
        chunk = await stream.receive_some()
        if not chunk or len(data) > MAX_HEAD:
            raise ConnectionError("no complete HTTP head")
        data += chunk
    head, _, rest = data.partition(HEAD_END)
    return head + HEAD_END, rest


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)
    }


def _close_after(head: bytes) -> bytes:
    """The same head with `Connection: close`: the front then knows a message ends at EOF."""
    lines = [
        line for line in head[: -len(HEAD_END)].split(b"\r\n") if not line.lower().startswith(b"connection:")
    ]
    return b"\r\n".join([*lines, b"Connection: close"]) + HEAD_END


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
async def two_replicas(tmp_path: Path) -> AsyncIterator[list[int]]:
    """A supervisor and two gateways over tcp:// on the loopback; yields the gateways' HTTP ports
    once both are ready and each has served a call (so the worker is attached to both)."""
    keys = generate()
    config = write_config(tmp_path, [echo_server("echo")])
    control = f"tcp://127.0.0.1:{free_port()}"
    calls = [f"tcp://127.0.0.1:{free_port()}" for _ in range(REPLICAS)]
    http = [free_port() for _ in range(REPLICAS)]
    base = {k: v for k, v in os.environ.items() if not k.startswith("MCPPROXY_BUS_")}

    def role(name: str) -> dict[str, str]:
        return {**base, CONTROL_ENV: control, **{env_var(k): keys[k] for k in NEEDS[name]}}  # type: ignore[index]

    processes: list[subprocess.Popen[bytes]] = []
    seen: set[int] = set()

    def start(argv: list[str], env: dict[str, str], log: str) -> None:
        with (tmp_path / log).open("wb") as out:
            processes.append(
                subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            )

    try:
        start(
            [PYTHON, "-P", "-m", "supervisor", "--config", str(config), "--data-dir", str(tmp_path / "data")],
            {**role("supervisor"), CALLS_ENV: ",".join(calls)},
            "supervisor.log",
        )
        for i in range(REPLICAS):
            argv = [
                PYTHON,
                "-P",
                "-m",
                "gateway",
                "--config",
                str(config),
                "--data-dir",
                str(tmp_path / f"gw{i}"),
            ]
            env = {**role("gateway"), CALLS_BIND_ENV: calls[i], GATEWAY_ID_ENV: str(i)}
            start([*argv, "--listen", f"127.0.0.1:{http[i]}"], env, f"gateway{i}.log")
        with trio.fail_after(START_TIMEOUT_S):
            for port in http:
                await _served_a_call(port, processes, tmp_path)
        seen = {p.pid for p in processes} | descendants(processes[0].pid)
        yield http
    finally:
        seen |= descendants(processes[0].pid) if processes else set()
        for process in reversed(processes):
            stop(process)
        with trio.move_on_after(10):
            while alive(seen):
                await trio.sleep(0.05)
        left = alive(seen)
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes outlived the split proxy: {sorted(left)}"


async def _served_a_call(port: int, processes: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    """Poll one gateway's REST until a call through it to the echo worker succeeds."""
    url = f"http://127.0.0.1:{port}/api/v1/tools/call"
    body = {"name": "echo:echo", "args": {"message": "up"}}
    async with httpx2.AsyncClient(timeout=10.0, headers={"X-API-Key": API_KEY}) as http:
        while True:
            if any(p.poll() is not None for p in processes):
                logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
                raise AssertionError(f"a process exited early: {logs}")
            with suppress(httpx2.HTTPError):
                response = await http.post(url, json=body)
                if response.status_code == 200 and "up" in response.text:
                    return
            await trio.sleep(0.1)


async def test_a_2026_client_is_served_by_both_replicas_and_a_2025_session_stays_on_one(
    tmp_path: Path,
) -> None:
    async with two_replicas(tmp_path) as ports, trio.open_nursery() as nursery:
        front = Front(ports)
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        nursery.start_soon(front.serve, listener)
        url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}/mcp/all"
        with trio.fail_after(60):
            async with Client(url, cache=None) as client:  # negotiates 2026-07-28: no session
                for n in range(4):
                    result = await client.call_tool("echo__echo", {"message": f"new {n}"})
                    assert text_of(result) == f"new {n}"
            new_era = list(front.log)
            assert all(r.session is None for r in new_era)
            assert {r.backend for r in new_era if r.method == "tools/call"} == {0, 1}

            front.log.clear()
            async with Client(url, mode="legacy", cache=None) as client:
                for n in range(4):
                    result = await client.call_tool("echo__echo", {"message": f"old {n}"})
                    assert text_of(result) == f"old {n}"
            old_era = list(front.log)
        nursery.cancel_scope.cancel()
    (session,) = {r.session for r in old_era if r.session is not None}
    (home,) = {r.backend for r in old_era if r.method == "initialize"}
    assert {r.backend for r in old_era if r.session == session} == {home}, old_era
    assert sum(r.method == "tools/call" for r in old_era if r.session == session) == 4
