"""Reliability under abuse, seen from outside: connection churn at a low descriptor limit, idle and
dripping clients.

Each test starts a real `mcpproxy serve` from its CLI (under `prlimit` where the descriptor limit
matters) and drives it with raw sockets and real HTTP and MCP clients on 127.0.0.1. The server
closing its end of a connection shows as EOF (or a reset) on ours.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import httpx2
import pytest
import trio

from gateway._idle_connections import FIRST_REQUEST_TIMEOUT_S
from gateway.frontdoor import BODY_TIMEOUT_S
from tests.proxyctl import Proxy, running_proxy

pytestmark = pytest.mark.system

DESCRIPTOR_LIMIT = 1024
CONNECTIONS = 2000
PER_SECOND = 100
LINGER_S = 0.2
"""Each short connection stays open this long after its answer, as a pooling client's does: its FIN
then reaches an idle kept-alive connection (the case that used to sit in CLOSE-WAIT)."""
EXCHANGE_DEADLINE_S = 15.0
STEADY_PAUSE_S = 0.05
DRIP_EVERY_S = 5.0
"""Well under the old per-read timeout (30 s), which such a body never met."""
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def child_pid(proxy: Proxy, module: str) -> int:
    """The pid of serve's child `python -m <module>`."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == proxy.process.pid and b"-m" in argv and module.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"serve has no {module} child")


async def read_answer(stream: trio.SocketStream) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a Content-Length: its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(fields["content-length"]):
        chunk = await stream.receive_some()
        assert chunk, f"closed inside the body: {body!r}"
        body += chunk
    return int(lines[0].split()[1]), body


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """True once the server's FIN (or reset) arrives; False if it sends anything."""
    try:
        return await stream.receive_some() == b""
    except trio.BrokenResourceError:
        return True


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_a_gateway_held_to_1024_descriptors_serves_2000_connections_and_a_steady_client(
    tmp_path: Path,
) -> None:
    limit = f"--nofile={DESCRIPTOR_LIMIT}:{DESCRIPTOR_LIMIT}"
    async with running_proxy(tmp_path, [], launcher=("prlimit", limit, "--")) as proxy:
        gateway = child_pid(proxy, "gateway")
        assert resource.prlimit(gateway, resource.RLIMIT_NOFILE) == (DESCRIPTOR_LIMIT, DESCRIPTOR_LIMIT)
        statuses: list[int] = []
        failures: list[str] = []
        steady_calls = 0
        most_descriptors = descriptors(gateway)
        churn_done = trio.Event()

        async def short_connection(index: int) -> None:
            try:
                with trio.fail_after(EXCHANGE_DEADLINE_S):
                    stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
                    try:
                        await stream.send_all(HEALTHZ)
                        statuses.append((await read_answer(stream))[0])
                        await trio.sleep(LINGER_S)
                    finally:
                        await stream.aclose()
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, AssertionError) as exc:
                failures.append(f"connection {index}: {exc!r}")

        async def churn() -> None:
            start = trio.current_time()
            async with trio.open_nursery() as connections:
                for index in range(CONNECTIONS):
                    await trio.sleep_until(start + index / PER_SECOND)
                    connections.start_soon(short_connection, index)
            churn_done.set()

        async def steady_mcp_client() -> None:
            # The SDK's client opens a new connection for most requests: it needs accept to work too.
            nonlocal steady_calls
            try:
                async with proxy.mcp() as session:
                    while not churn_done.is_set():
                        with trio.fail_after(EXCHANGE_DEADLINE_S):
                            await session.list_tools()
                        steady_calls += 1
                        await trio.sleep(STEADY_PAUSE_S)
            except Exception as exc:  # any failure of the legitimate client is the finding
                failures.append(f"steady MCP client after {steady_calls} calls: {exc!r}")

        async def watch_descriptors() -> None:
            nonlocal most_descriptors
            while not churn_done.is_set():
                most_descriptors = max(most_descriptors, descriptors(gateway))
                await trio.sleep(STEADY_PAUSE_S)

        with trio.fail_after(CONNECTIONS / PER_SECOND + 4 * EXCHANGE_DEADLINE_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(churn)
                nursery.start_soon(steady_mcp_client)
                nursery.start_soon(watch_descriptors)

        print(f"gateway descriptors at most {most_descriptors}; steady MCP calls {steady_calls}")
        assert failures == []
        assert statuses == [200] * CONNECTIONS
        assert steady_calls > 0
        log = (tmp_path / "proxy.log").read_text()
        assert "EMFILE" not in log and "Too many open files" not in log


async def test_the_gateway_raises_its_soft_descriptor_limit_to_the_hard_one(tmp_path: Path) -> None:
    launcher = ("prlimit", f"--nofile={DESCRIPTOR_LIMIT}:{4 * DESCRIPTOR_LIMIT}", "--")
    async with running_proxy(tmp_path, [], launcher=launcher) as proxy:
        gateway = child_pid(proxy, "gateway")
        soft, hard = resource.prlimit(gateway, resource.RLIMIT_NOFILE)
        assert (soft, hard) == (4 * DESCRIPTOR_LIMIT, 4 * DESCRIPTOR_LIMIT)


async def test_connections_that_send_nothing_or_drip_their_head_are_closed_within_seconds(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, []) as proxy:
        silent = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        dripping = await trio.open_tcp_stream("127.0.0.1", proxy.port)

        async def drip_head() -> None:
            for byte in HEALTHZ:
                try:
                    await dripping.send_all(bytes([byte]))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # closed on us: what this test waits for
                await trio.sleep(1.0)

        with trio.fail_after(2 * FIRST_REQUEST_TIMEOUT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip_head)
                assert await closed_by_server(silent)
                assert await closed_by_server(dripping)
                nursery.cancel_scope.cancel()
        await silent.aclose()
        await dripping.aclose()
        # and the gateway still answers a client that asks
        assert (await proxy.get("/healthz")).status_code == 200


async def test_a_body_dripping_a_byte_every_few_seconds_is_answered_408_within_the_total_bound(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, []) as proxy:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        await stream.send_all(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        answer: list[tuple[int, bytes]] = []

        async def drip_body() -> None:
            while True:
                try:
                    await stream.send_all(b" ")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                await trio.sleep(DRIP_EVERY_S)

        with trio.fail_after(BODY_TIMEOUT_S + EXCHANGE_DEADLINE_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip_body)
                answer.append(await read_answer(stream))
                nursery.cancel_scope.cancel()
            status, body = answer[0]
            assert status == 408
            error = json.loads(body)
            assert error["success"] is False and "not received within" in error["error"]
            assert error["request_id"]
            assert await closed_by_server(stream)
        await stream.aclose()
        async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=10) as client:
            assert (await client.get("/healthz")).status_code == 200
