"""hypercorn with a lane: requests answered inside the HTTP/1.1 protocol, everything else as before.

A real hypercorn server on loopback, watched from raw sockets so that how a request's bytes arrive
(whole, or head then body) is the test's to choose. The lane here answers `POST /lane...` with what it
received; its `decline` flag sends such a request on to the app, which answers with what *it* received,
so a reply says which of the two answered and what it saw. If hypercorn's internals change, `install`
refuses (the last tests) or these fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import h11
import hypercorn.protocol
import hypercorn.trio.run
import pytest
import trio
from hypercorn.protocol.h11 import H11Protocol
from starlette.types import Receive, Scope, Send

from bus.errors import IncompatibleLibraryError
from gateway import _hypercorn_internals
from gateway._hypercorn_internals import lane_problems
from gateway.http_lane import LaneAnswer, LaneRequest
from tests.gateway.loopback_hypercorn import loopback_server

DEADLINE_S = 10.0
BIG = b"0123456789" * 100


@pytest.fixture(autouse=True)
def restore_hypercorn() -> Iterator[None]:
    protocol = hypercorn.protocol.H11Protocol  # type: ignore[attr-defined]
    server = hypercorn.trio.run.TCPServer  # type: ignore[attr-defined]
    yield
    hypercorn.protocol.H11Protocol = protocol  # type: ignore[attr-defined]
    hypercorn.trio.run.TCPServer = server  # type: ignore[attr-defined]
    _hypercorn_internals.LaneH11Protocol.lane = None


class EchoLane:
    """Answers `POST /lane...` with `lane:` and the body it got; `decline` or `fail` change that."""

    max_body_bytes = 2000

    def __init__(self, *, decline: bool = False, fail: bool = False) -> None:
        self.decline = decline
        self.fail = fail
        self.seen: list[LaneRequest] = []
        self.heads = 0
        """Request heads asked about (the server has read that far)."""
        self.release: trio.Event | None = None
        """When set: answers wait for it (a slow upstream call)."""

    def wants(self, method: bytes, target: bytes) -> bool:
        self.heads += 1
        return method == b"POST" and target.startswith(b"/lane")

    async def answer(self, request: LaneRequest) -> LaneAnswer | None:
        self.seen.append(request)
        if self.release is not None:
            await self.release.wait()
        if self.fail:
            raise RuntimeError("the lane broke")
        if self.decline:
            return None
        return LaneAnswer(200, [(b"x-answered-by", b"lane")], b"lane:" + request.body)


arrivals: list[str] = []
"""The paths of the requests the app was given, in order (emptied before each test)."""


@pytest.fixture(autouse=True)
def no_arrivals() -> None:
    arrivals.clear()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "lifespan":
        arrivals.append(scope["path"])
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while not scope["path"].endswith("/unread"):  # (an app that answers without reading the body)
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if scope["path"].endswith("/unread"):  # busy first, as the front door is with a locked-out client
        await trio.sleep(0.2)
    answer = f"app:{scope['method']} {scope['path']}:".encode() + body
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@asynccontextmanager
async def serving(lane: EchoLane, keep_alive_max_requests: int = 1000) -> AsyncIterator[int]:
    _hypercorn_internals.install(lane=lane)
    async with loopback_server(app, keep_alive_max_requests=keep_alive_max_requests) as port:
        yield port


@asynccontextmanager
async def connected(lane: EchoLane) -> AsyncIterator[Reader]:
    """A connection to a server with `lane`, for one test's requests (within DEADLINE_S)."""
    async with serving(lane) as port:
        with trio.fail_after(DEADLINE_S):
            yield await connect(port)


def post(path: str, body: bytes) -> tuple[bytes, bytes]:
    """A POST's head and body, apart."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return head, body


class Reader:
    """HTTP/1.1 answers read off one connection, in order."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.client = h11.Connection(h11.CLIENT)

    async def answer(self) -> tuple[int, dict[bytes, bytes], bytes]:
        status, headers, body = 0, {}, b""
        while True:
            event = self.client.next_event()
            if event is h11.NEED_DATA:
                self.client.receive_data(await self.stream.receive_some())
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if self.client.our_state is h11.DONE:
                    self.client.start_next_cycle()
                return status, headers, body
            else:
                raise AssertionError(f"unexpected {event!r}")

    def expect(self, path: str, method: str = "POST") -> None:
        """Tell our h11 a request was sent (its bytes are written by hand), so it reads the answer."""
        self.client.send(h11.Request(method=method, target=path, headers=[("Host", "x")]))
        self.client.send(h11.EndOfMessage())

    async def ask_in_two(self, path: str, body: bytes, then: Callable[[], bool]) -> tuple[int, bytes]:
        """POST with the head and 10 bytes of `body` first, the rest once `then()`; (status, body)."""
        head, rest = post(path, body)
        self.expect(path)
        await self.stream.send_all(head + rest[:10])
        while not then():
            await trio.sleep(0.01)
        await self.stream.send_all(rest[10:])
        status, _, answer = await self.answer()
        return status, answer

    async def ask(self, path: str, body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.expect(path)
        await self.stream.send_all(b"".join(post(path, body)))
        return await self.answer()


async def connect(port: int) -> Reader:
    return Reader(await trio.open_tcp_stream("127.0.0.1", port))


async def test_a_request_whose_body_came_with_its_head_is_answered_by_the_lane() -> None:
    lane = EchoLane()
    async with serving(lane) as port:
        with trio.fail_after(DEADLINE_S):
            reader = await connect(port)
            for n in range(3):  # kept alive: each request of the connection
                status, headers, body = await reader.ask("/lane?x=1", b'{"n": %d}' % n)
                assert (status, body) == (200, b'lane:{"n": %d}' % n)
                assert headers[b"x-answered-by"] == b"lane"
                assert headers[b"content-length"] == str(len(body)).encode()
                assert b"date" in headers and b"server" in headers  # hypercorn's own, as on every answer
    seen = lane.seen[0]
    assert (seen.method, seen.target, seen.http_version) == (b"POST", b"/lane?x=1", "1.1")
    assert (b"content-length", b"8") in seen.headers and seen.client is not None


async def test_a_declined_request_reaches_the_app_as_sent() -> None:
    lane = EchoLane(decline=True)
    async with connected(lane) as reader:
        for _ in range(2):
            status, _, body = await reader.ask("/lane/x?q=1", b"payload")
            assert (status, body) == (200, b"app:POST /lane/x:payload")
    assert [request.body for request in lane.seen] == [b"payload", b"payload"]


async def test_a_body_that_comes_after_its_head_is_waited_for() -> None:
    lane = EchoLane()
    async with serving(lane) as port:
        with trio.fail_after(DEADLINE_S):
            reader = await connect(port)
            # the rest comes once the server read the head (and what came with it)
            assert await reader.ask_in_two("/lane", BIG, lambda: lane.heads > 0) == (200, b"lane:" + BIG)
    assert lane.heads == 1 and not arrivals


async def test_a_stalled_body_goes_to_the_app_which_gets_it_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_hypercorn_internals, "BODY_WAIT_S", 0.1)
    lane = EchoLane()
    async with serving(lane) as port:
        with trio.fail_after(DEADLINE_S):
            reader = await connect(port)
            # the rest comes once the app has the request (BODY_WAIT_S later), with what came of its body
            answer = await reader.ask_in_two("/lane", BIG, lambda: bool(arrivals))
            assert answer == (200, b"app:POST /lane:" + BIG)
            # and the connection goes on: the next whole request is the lane's again
            assert (await reader.ask("/lane", b"next"))[2] == b"lane:next"
    assert [request.body for request in lane.seen] == [b"next"]


async def test_a_body_longer_than_the_lane_holds_or_of_unknown_length_goes_to_the_app() -> None:
    lane = EchoLane()
    async with connected(lane) as reader:
        long = b"x" * (lane.max_body_bytes + 1)
        assert (await reader.ask("/lane", long))[2] == b"app:POST /lane:" + long
        reader.expect("/lane")
        chunked = b"POST /lane HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        await reader.stream.send_all(chunked)
        assert (await reader.answer())[2] == b"app:POST /lane:abc"
        reader.expect("/lane")  # both: h11 takes the chunks, so the length says nothing
        both = chunked.replace(b"Host: x\r\n", b"Host: x\r\nContent-Length: 3\r\n")
        await reader.stream.send_all(both)
        assert (await reader.answer())[2] == b"app:POST /lane:abc"
        assert (await reader.ask("/lane", b"x" * lane.max_body_bytes))[2].startswith(b"lane:")
    assert [len(request.body) for request in lane.seen] == [lane.max_body_bytes]


async def test_a_declined_body_that_came_in_many_pieces_stalls_nothing_when_the_app_never_reads_it() -> None:
    lane = EchoLane(decline=True)
    async with connected(lane) as reader:
        head, body = post("/lane/unread", b"x" * 200)
        reader.expect("/lane/unread")
        await reader.stream.send_all(head)
        while not lane.heads:
            await trio.sleep(0.01)
        for piece in range(20):  # apart, so they come as many reads (hypercorn queues ten for an app)
            await reader.stream.send_all(body[piece * 10 : piece * 10 + 10])
            await trio.sleep(0.01)
        assert (await reader.answer())[::2] == (200, b"app:POST /lane/unread:")
        assert (await reader.ask("/lane/unread", b"next"))[2] == b"app:POST /lane/unread:"


async def test_other_methods_and_paths_never_meet_the_lane() -> None:
    lane = EchoLane()
    async with serving(lane) as port:
        with trio.fail_after(DEADLINE_S):
            reader = await connect(port)
            assert (await reader.ask("/elsewhere", b"x"))[2] == b"app:POST /elsewhere:x"
            stream = reader.stream
            reader.expect("/lane", "GET")
            await stream.send_all(b"GET /lane HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await reader.answer())[2] == b"app:GET /lane:"
    assert lane.seen == []


async def test_a_lane_that_fails_answers_500_and_the_connection_serves_on() -> None:
    lane = EchoLane(fail=True)
    async with connected(lane) as reader:
        status, headers, body = await reader.ask("/lane", b"x")
        assert status == 500 and headers[b"content-type"] == b"application/json"
        assert body == b'{"success": false, "error": "internal error"}'
        lane.fail = False
        assert (await reader.ask("/lane", b"again"))[:3:2] == (200, b"lane:again")


async def test_requests_sent_back_to_back_are_answered_in_order() -> None:
    lane = EchoLane()
    async with serving(lane) as port:
        with trio.fail_after(DEADLINE_S):
            reader = await connect(port)
            requests = b"".join(b"".join(post("/lane" if n % 2 else "/other", b"%d" % n)) for n in range(6))
            await reader.stream.send_all(requests)  # one write: the server reads them together
            answers = []
            for _ in range(6):
                reader.expect("/")
                answers.append((await reader.answer())[2])
    assert answers == [
        b"app:POST /other:0",
        b"lane:1",
        b"app:POST /other:2",
        b"lane:3",
        b"app:POST /other:4",
        b"lane:5",
    ]


async def test_the_last_request_hypercorn_allows_on_a_connection_is_answered_with_close() -> None:
    lane = EchoLane()
    async with serving(lane, keep_alive_max_requests=2) as port:
        with trio.fail_after(DEADLINE_S):
            reader = await connect(port)
            assert b"connection" not in (await reader.ask("/lane", b"1"))[1]
            assert (await reader.ask("/lane", b"2"))[1][b"connection"] == b"close"
            assert await reader.stream.receive_some() == b""  # and the server closed it


async def test_a_client_gone_during_its_answer_leaves_the_server_serving() -> None:
    lane = EchoLane()
    lane.release = trio.Event()
    async with serving(lane) as port:
        with trio.fail_after(DEADLINE_S):
            gone = await connect(port)
            await gone.stream.send_all(b"".join(post("/lane", b"slow")))
            while not lane.seen:
                await trio.sleep(0.01)
            await gone.stream.aclose()
            lane.release.set()  # the answer is written to a closed connection
            reader = await connect(port)
            assert (await reader.ask("/lane", b"next"))[2] == b"lane:next"


def test_the_lane_finds_every_hypercorn_internal_it_relies_on() -> None:
    assert lane_problems() == []


def test_a_hypercorn_whose_protocol_makes_streams_differently_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Changed(H11Protocol):  # what a later hypercorn might do: the stream made elsewhere
        async def _create_stream(self, request: h11.Request, state: object = None) -> None:
            pass

    assert lane_problems(Changed) == [
        "H11Protocol._create_stream(request) makes the HTTPStream, counts the request and marks it"
    ]
    before = hypercorn.protocol.H11Protocol  # type: ignore[attr-defined]
    monkeypatch.setattr(H11Protocol, "_create_stream", Changed._create_stream)
    with pytest.raises(IncompatibleLibraryError, match="_create_stream"):
        _hypercorn_internals.install(lane=EchoLane())
    assert hypercorn.protocol.H11Protocol is before  # type: ignore[attr-defined]
    assert _hypercorn_internals.LaneH11Protocol.lane is None
