"""hypercorn with the idle-closing connection: a gone client's socket closes at once, a silent one soon.

These run a real hypercorn server on loopback and watch it from raw sockets: the server closing its
end shows as EOF on ours. If hypercorn's internals change, `install` refuses or these fail.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import hypercorn.trio.run
import pytest
import trio
from starlette.types import Receive, Scope, Send

from gateway import _hypercorn_internals
from tests.gateway.loopback_hypercorn import loopback_server

LONG_KEEP_ALIVE_S = 3600.0
"""Far longer than any deadline here: a close seen within a deadline is not the keep-alive timer's."""
FIRST_REQUEST_S = 0.5
DEADLINE_S = 10.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


SHORT_KEEP_ALIVE_S = 1.0
SLOW_S = 3 * SHORT_KEEP_ALIVE_S
SLOW_REQUEST = b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


SETTLE_S = 0.2
"""hypercorn makes a connection idle right after its answer (microseconds): a FIN sent this much later
lands on an idle connection, the case hypercorn left in CLOSE-WAIT. (A FIN that lands during the
request already ends it.)"""


@pytest.fixture(autouse=True)
def restore_hypercorn() -> Iterator[None]:
    original = hypercorn.trio.run.TCPServer  # type: ignore[attr-defined]
    yield
    hypercorn.trio.run.TCPServer = original  # type: ignore[attr-defined]


slow_started = trio.Event()
"""Set when a /slow request has begun (renewed by the test that waits for it)."""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()
    if scope["path"] == "/slow":  # a request that runs past the keep-alive timeout
        slow_started.set()
        await trio.sleep(SLOW_S)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def serving(
    first_request_s: float = FIRST_REQUEST_S,
    keep_alive_s: float = LONG_KEEP_ALIVE_S,
    stop: trio.Event | None = None,
    graceful_s: float = 1.0,
) -> AsyncIterator[int]:
    _hypercorn_internals.install_idle_closing(first_request_s)
    async with loopback_server(
        app, stop, keep_alive_timeout=keep_alive_s, graceful_timeout=graceful_s
    ) as port:
        yield port


async def ask(stream: trio.SocketStream, request: bytes = REQUEST) -> bytes:
    await stream.send_all(request)
    answer = b""
    while not answer.endswith(b"\r\n\r\nok"):
        chunk = await stream.receive_some()
        assert chunk, f"closed before the answer: {answer!r}"
        answer += chunk
    return answer


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """True once the server's FIN (or reset) arrives; False if it sends anything else."""
    try:
        return await stream.receive_some() == b""
    except trio.BrokenResourceError:
        return True


def test_the_idle_closing_change_finds_every_hypercorn_internal_it_relies_on() -> None:
    assert _hypercorn_internals.idle_problems() == []
    installed = importlib.metadata.version("hypercorn")
    assert installed.startswith(_hypercorn_internals.WRITTEN_FOR + "."), (
        f"hypercorn {installed}: re-read its trio/tcp_server.py against gateway/_hypercorn_internals.py "
        "(the CLOSE-WAIT fix), then update WRITTEN_FOR and the pin in pyproject.toml"
    )


async def test_a_connection_its_client_closes_without_asking_is_closed_at_once() -> None:
    async with serving(first_request_s=LONG_KEEP_ALIVE_S) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_eof()
        with trio.fail_after(DEADLINE_S):
            assert await closed_by_server(stream)
        await stream.aclose()


async def test_a_kept_alive_connection_its_client_closes_is_closed_at_once() -> None:
    async with serving() as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(DEADLINE_S):
            assert b" 200 " in await ask(stream)
            await trio.sleep(SETTLE_S)
            await stream.send_eof()
            assert await closed_by_server(stream)
        await stream.aclose()


async def test_a_connection_that_never_asks_is_closed_after_the_first_request_timeout() -> None:
    async with serving() as port:
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        partial = await trio.open_tcp_stream("127.0.0.1", port)
        await partial.send_all(REQUEST[:20])  # a head that never completes
        with trio.fail_after(DEADLINE_S):
            assert await closed_by_server(silent)
            assert await closed_by_server(partial)
        await silent.aclose()
        await partial.aclose()


async def test_a_kept_alive_connection_outlives_the_first_request_timeout() -> None:
    async with serving() as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(DEADLINE_S):
            assert b" 200 " in await ask(stream)
            await trio.sleep(3 * FIRST_REQUEST_S)  # past the first-request timer, far from keep-alive
            assert b" 200 " in await ask(stream)
        await stream.aclose()


async def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() -> None:
    async with serving(keep_alive_s=SHORT_KEEP_ALIVE_S) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(DEADLINE_S):
            assert b" 200 " in await ask(stream)
            assert await closed_by_server(stream)
        await stream.aclose()


async def test_a_request_running_past_the_keep_alive_timeout_is_answered_and_counts_as_activity() -> None:
    # The idle timer is not stopped during a request (it only reads a flag when it comes due), so
    # this is what keeps it from closing a connection whose answer is still being made.
    async with serving(keep_alive_s=SHORT_KEEP_ALIVE_S) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(DEADLINE_S):
            assert b" 200 " in await ask(stream, SLOW_REQUEST)
            assert b" 200 " in await ask(stream)  # still open right after the slow answer
            assert await closed_by_server(stream)  # then idle: closed after the keep-alive timeout
        await stream.aclose()


async def test_a_request_in_progress_when_the_server_stops_is_answered_then_its_connection_closed() -> None:
    global slow_started
    slow_started = trio.Event()
    stop = trio.Event()
    async with serving(stop=stop, graceful_s=DEADLINE_S) as port:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(DEADLINE_S):
            await stream.send_all(SLOW_REQUEST)
            await slow_started.wait()
            stop.set()  # hypercorn's graceful stop: no new requests, those in progress run to their end
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nok"), answer
        await stream.aclose()
