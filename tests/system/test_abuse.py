"""Reliability under abuse, seen from outside: connection churn at a low descriptor limit, idle and
dripping clients, and malformed input answered with its proper status as JSON.

Each test starts a real `mcpproxy serve` from its CLI (under `prlimit` where the descriptor limit
matters) and drives it with raw sockets and real HTTP and MCP clients on 127.0.0.1. The server
closing its end of a connection shows as EOF (or a reset) on ours.
"""

from __future__ import annotations

import json
import math
import os
import resource
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from gateway._hypercorn_internals import FIRST_REQUEST_TIMEOUT_S
from gateway.frontdoor import BODY_TIMEOUT_S, MAX_BODY_BYTES
from tests.proxyctl import echo_server, running_proxy

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
SURFACES = ("/mcp", "/mcp/all", "/api/v1/servers")
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
BAD_IDS: list[Any] = [None, 1.5, 2.0, {"n": 1}, ["x"], True, math.nan]
"""JSON-RPC ids MCP does not allow: it takes a string or an integer, never null."""


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
        gateway = proxy.child("gateway")
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
        gateway = proxy.child("gateway")
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


def post_head(path: str, length: int, api_key: str) -> bytes:
    headers = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Length: {length}",
        f"X-API-Key: {api_key}",
    ]
    headers += [f"{name}: {value}" for name, value in MCP_HEADERS.items()]
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


async def test_dripping_and_stalled_bodies_are_answered_408_as_json_within_the_total_bound(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, []) as proxy:
        answers: dict[str, tuple[int, bytes]] = {}

        async def slow_body(path: str, drip: bool) -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            await stream.send_all(post_head(path, 1000, proxy.api_key) + b"{")

            async def drip_body() -> None:
                while drip:
                    await trio.sleep(DRIP_EVERY_S)
                    try:
                        await stream.send_all(b" ")
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip_body)
                answers[f"{path} {'drip' if drip else 'stall'}"] = await read_answer(stream)
                assert await closed_by_server(stream)
                nursery.cancel_scope.cancel()
            await stream.aclose()

        with trio.fail_after(BODY_TIMEOUT_S + EXCHANGE_DEADLINE_S):
            async with trio.open_nursery() as nursery:
                for path in SURFACES:
                    nursery.start_soon(slow_body, path, True)
                    nursery.start_soon(slow_body, path, False)
        assert len(answers) == 2 * len(SURFACES)
        for case, (status, body) in answers.items():
            error = json.loads(body)
            assert status == 408, case
            assert error["success"] is False and "not received within" in error["error"], case
            assert error["request_id"], case
        assert (await proxy.get("/healthz")).status_code == 200


async def test_a_chunked_body_over_4_mib_is_answered_413_as_json_on_every_surface(tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        for _ in range(MAX_BODY_BYTES // 2**20 + 1):
            yield b" " * 2**20
        yield b'"}'

    async with (
        running_proxy(tmp_path, []) as proxy,
        httpx2.AsyncClient(base_url=proxy.base_url, timeout=EXCHANGE_DEADLINE_S) as client,
    ):
        for path in SURFACES:
            answer = await client.post(path, content=chunks(), headers={**proxy.headers, **MCP_HEADERS})
            assert answer.status_code == 413, (path, answer.text)
            assert answer.headers["content-type"] == "application/json"
            error = answer.json()
            assert error["success"] is False and "over" in error["error"] and error["request_id"]


async def test_rest_answers_json_nested_100000_deep_and_an_offset_beyond_sqlite_with_400(
    tmp_path: Path,
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    async with running_proxy(tmp_path, []) as proxy:
        for path in ("/api/v1/servers", "/api/v1/tools/call", "/api/v1/config/validate"):
            answer = await proxy.post(path, content=deep, headers={**proxy.headers, **MCP_HEADERS})
            assert answer.status_code == 400, (path, answer.text)
            error = answer.json()
            assert error["success"] is False and "invalid JSON" in error["error"] and error["request_id"]
        answer = await proxy.get("/api/v1/activity?offset=99999999999999999999999")
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("offset:")


class Recorder:
    """An httpx2 event hook: the JSON-RPC requests a real MCP client sent, by method."""

    def __init__(self) -> None:
        self.sent: dict[str, httpx2.Request] = {}

    async def __call__(self, request: httpx2.Request) -> None:
        if request.method == "POST":
            message = json.loads(request.content)
            if isinstance(message, dict) and "id" in message:
                self.sent.setdefault(message["method"], request)


async def replay(http: httpx2.AsyncClient, request: httpx2.Request, request_id: Any) -> httpx2.Response:
    """`request` again, exactly as the client sent it but for its id."""
    message = {**json.loads(request.content), "id": request_id}
    headers = {k: v for k, v in request.headers.items() if k not in ("content-length", "host")}
    return await http.post(str(request.url), content=json.dumps(message), headers=headers)


async def assert_invalid_request(http: httpx2.AsyncClient, request: httpx2.Request, case: str) -> None:
    for bad in BAD_IDS:
        answer = await replay(http, request, bad)
        assert answer.status_code == 400, (case, bad, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/json", (case, bad)
        error = answer.json()
        assert error["jsonrpc"] == "2.0" and error["id"] is None, (case, bad, error)
        assert error["error"]["code"] == -32600, (case, bad, error)


@pytest.mark.parametrize(
    ("path", "tool", "arguments"),
    [
        ("/mcp", "retrieve_tools", {"query": "echo"}),
        ("/mcp/all", "echo__echo", {"message": "hi"}),
    ],
)
async def test_requests_whose_id_is_not_a_string_or_an_integer_are_invalid_requests_in_both_eras(
    tmp_path: Path, path: str, tool: str, arguments: dict[str, Any]
) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        for mode in ("legacy", "2026-07-28"):
            recorder = Recorder()
            async with httpx2.AsyncClient(
                timeout=EXCHANGE_DEADLINE_S, event_hooks={"request": [recorder]}
            ) as http:
                transport = streamable_http_client(f"{proxy.base_url}{path}", http_client=http)
                with trio.fail_after(4 * EXCHANGE_DEADLINE_S):
                    async with Client(transport, mode=mode, cache=None) as client:
                        assert not (await client.call_tool(tool, arguments)).is_error
                        await client.list_tools()
                        # With the session still open: a 2025-era tools/call is the fast lane's, the
                        # rest the SDK's. First the call as sent, with a new id: it is answered.
                        again = await replay(http, recorder.sent["tools/call"], f"again-{mode}")
                        assert again.status_code == 200, again.text
                        for method in ("tools/call", "tools/list", "initialize"):
                            if method in recorder.sent:
                                await assert_invalid_request(http, recorder.sent[method], f"{mode} {method}")
            assert "tools/call" in recorder.sent and "tools/list" in recorder.sent
            assert ("initialize" in recorder.sent) == (mode == "legacy")
