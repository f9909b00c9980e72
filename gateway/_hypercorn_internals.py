"""hypercorn's internals, in the one module allowed to touch them (pinned to WRITTEN_FOR in pyproject).

Three changes hypercorn 0.18 offers no setting or hook for, each a subclass
swapped in by `install`, which first checks that every internal it relies on
is there in the shape this was written against and raises
IncompatibleLibraryError naming what changed otherwise (never a silent
fallback):

- **One socket write per small HTTP/1.1 response** (`CoalescingH11Protocol`).
  hypercorn writes a response's head the moment the app starts it and the
  body when it arrives, so every MCP call answered as JSON costs the client
  two wake-ups and the gateway two sends. A response that declares its
  Content-Length is held until its first body bytes: -10-20 % CPU on both
  sides and -0.1 to -0.3 ms p50, measured on a one-line JSON answer.
  Streams (SSE, chunked) still get their head at once.
- **Idle connections closed as soon as their client has gone, and soon if
  they never ask anything** (`IdleClosingTCPServer`). hypercorn closes a
  connection's socket only once its task group is done, and that group still
  holds the keep-alive timer: after the client closed, the descriptor sat in
  CLOSE-WAIT for `keep_alive_timeout`; with 75 s and a 1,024 descriptor limit,
  14 short connections a second made accept fail with EMFILE. The timer now
  ends when reading ends, and a new connection gets `first_request_timeout_s`
  to send its first request head. A request in progress is never cut by it.
  The timer is one task per connection that sleeps until the idle deadline
  and then looks at when the connection last went idle: hypercorn stops it at
  each request head and starts a new one after each response (a task spawned
  and one cancelled per request, ~0.1 ms of the gateway's CPU per call);
  here a request only writes two fields.
- **A lane for requests answered without the ASGI app** (`LaneH11Protocol`).
  hypercorn gives every request an `HTTPStream`, a new app task, ASGI
  message dicts and, in the gateway, Starlette's routing and middleware
  stack: ~0.4 ms of the gateway's CPU on a call that takes ~1.5 ms. A `Lane`
  (gateway/http_lane.py; the gateway's is gateway/mcp_lane.py) names the requests it may answer by
  method and target; such a request (with a Content-Length within the lane's
  `max_body_bytes`) is held while its body arrives, BODY_WAIT_S at most, and
  then handed to the lane in the connection's own task. The lane answers
  (status, headers, body) or declines; a declined request, and one whose
  body is late, is given to hypercorn's `HTTPStream` as if it had never been
  held, so it meets the app exactly as before. HTTP/1.1 answers one request
  at a time per connection, so answering in the reading task delays nothing
  but noticing a client that leaves during its call: its socket closes when
  the call ends. The lane skips what HTTPStream does for settings the
  gateway does not use: `server_names`, `root_path`, the access log, TLS.
"""

from __future__ import annotations

import inspect
import logging
import math
from types import ModuleType
from typing import ClassVar, Final

import h11
import hypercorn.protocol
import hypercorn.trio.run
import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol.events import Body, EndBody, Event as StreamEvent, Response, StreamClosed
from hypercorn.protocol.h11 import STREAM_ID, H11Protocol
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.typing import H11SendableEvent

from bus.errors import IncompatibleLibraryError
from gateway.http_lane import INTERNAL_ERROR, Lane, LaneRequest

logger = logging.getLogger(__name__)

WRITTEN_FOR: Final = "0.18"
"""The hypercorn release series whose internals this module relies on."""


class CoalescingH11Protocol(H11Protocol):
    """hypercorn's HTTP/1.1 protocol, holding a sized response's head until its body is sent with it."""

    _held = b""

    async def _send_h11_event(self, event: H11SendableEvent) -> None:
        if isinstance(event, h11.Response) and any(name == b"content-length" for name, _ in event.headers):
            try:
                self._held = self.connection.send(event) or b""
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
            return
        held, self._held = self._held, b""
        if not held:
            await super()._send_h11_event(event)
            return
        try:
            data = self.connection.send(event) or b""
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            data = b""
        await self.send(RawData(data=held + data))


class _HeldRequest:
    """Stands in for hypercorn's HTTPStream while a lane's request arrives: keeps its body."""

    def __init__(self, protocol: LaneH11Protocol, request: h11.Request) -> None:
        self.protocol = protocol
        self.request = request
        self.chunks: list[bytes] = []
        self.ended = False
        self.until: float | None = None
        """Set when a read ended with the body incomplete: the app gets the request at this time."""

    async def handle(self, event: StreamEvent) -> None:
        if isinstance(event, Body):
            self.chunks.append(event.data)
        elif isinstance(event, EndBody):
            # Inside hypercorn's event loop, which next waits for this answer (h11 pauses until then).
            self.ended = True
            await self.protocol._answer(self)
        # StreamClosed: the client went away first; nobody to answer.


def _sized_within(request: h11.Request, lane: Lane | None) -> bool:
    """`request` declares a Content-Length of at most the lane's `max_body_bytes`, and no
    Transfer-Encoding (with which h11 would frame the body as chunks, whatever its length says)."""
    length = None
    for name, value in request.headers:
        if name == b"transfer-encoding":
            return False
        if name == b"content-length":
            length = value
    return lane is not None and length is not None and length.isdigit() and int(length) <= lane.max_body_bytes


class LaneH11Protocol(CoalescingH11Protocol):
    """The coalescing HTTP/1.1 protocol, answering its lane's requests without the ASGI app."""

    lane: ClassVar[Lane | None] = None

    async def handle(self, event: Event) -> None:
        await super().handle(event)
        held = self.stream
        if isinstance(held, _HeldRequest) and held.until is None:  # the rest of its body is still to come
            held.until = trio.current_time() + BODY_WAIT_S

    @property
    def held_until(self) -> float | None:
        """When a held request whose body is still coming goes to the app (None: nothing is held)."""
        held = self.stream
        return held.until if isinstance(held, _HeldRequest) else None

    async def release_held(self) -> None:
        """The rest of the held request's body is late: the app takes it (and times the body)."""
        held = self.stream
        if isinstance(held, _HeldRequest):
            await self._release(held)

    async def _create_stream(self, request: h11.Request) -> None:
        lane = self.lane
        wanted = lane is not None and lane.wants(request.method, request.target)
        if wanted and isinstance(self.connection, h11.Connection) and _sized_within(request, lane):
            self.stream = _HeldRequest(self, request)  # type: ignore[assignment]
            return
        await super()._create_stream(request)

    async def _answer(self, held: _HeldRequest) -> None:
        lane = self.lane
        assert lane is not None
        request = held.request
        try:
            answer = await lane.answer(
                LaneRequest(
                    method=request.method,
                    target=request.target,
                    headers=list(request.headers),
                    http_version=request.http_version.decode(),
                    client=self.client,
                    server=self.server,
                    body=b"".join(held.chunks),
                )
            )
        except Exception:
            logger.exception("the lane failed on %s %r", request.method.decode(), request.target)
            answer = INTERNAL_ERROR
        if answer is None:
            await self._release(held)
            return
        self.keep_alive_requests += 1
        await self.context.mark_request()
        # Head, body and end in one write: hypercorn's stream_send would make three (each a lock and a
        # socket send, each a pass through trio's scheduler).
        headers = [
            *answer.headers,
            (b"content-length", str(len(answer.body)).encode()),
            *self.config.response_headers("h11"),
        ]
        if self.keep_alive_requests >= self.config.keep_alive_max_requests:
            headers.append((b"connection", b"close"))
        try:
            data = b"".join(
                self.connection.send(event) or b""
                for event in (
                    h11.Response(status_code=answer.status, headers=headers),
                    h11.Data(data=answer.body),
                    h11.EndOfMessage(),
                )
            )
        except h11.LocalProtocolError:  # an answer h11 will not write: this connection ends, not the server
            if self.connection.their_state != h11.ERROR:
                logger.exception("the lane's answer to %r cannot be sent", request.target)
        else:
            await self.send(RawData(data=data))
        await self.stream_send(StreamClosed(stream_id=STREAM_ID))  # recycles the connection (or closes it)

    async def _release(self, held: _HeldRequest) -> None:
        """Give `held` to hypercorn's HTTPStream, as if it had never been held."""
        self.stream = None
        await super()._create_stream(held.request)
        stream = self.stream
        assert stream is not None
        if held.chunks:  # as one: the app's queue holds ten, and an app not reading would stall us
            await stream.handle(Body(stream_id=STREAM_ID, data=b"".join(held.chunks)))
        if held.ended:
            await stream.handle(EndBody(stream_id=STREAM_ID))


BODY_WAIT_S: Final = 1.0
"""How long a lane's request waits for the rest of its body (clients often write a head and its body
apart, microseconds apart) before the app takes it, which then allows the body its own time."""
FIRST_REQUEST_TIMEOUT_S: Final = 5.0
"""A new connection must send its first complete request head within this."""
KEEP_ALIVE_S: Final = 15.0
"""hypercorn's keep_alive_timeout for the gateway: an idle kept-alive connection, and the next request
head on it, get this long. Longer than the idle expiry of common clients (httpx 5 s, undici 4 s), so
the client closes an unused connection first and never sends a request into our close."""
_OVERRIDDEN: Final = ("_read_data", "_idle_timeout", "protocol_send", "_initiate_server_close")


class IdleClosingTCPServer(TCPServer):
    """hypercorn's trio connection, closed at once when its reading ends and soon if it never asks."""

    first_request_timeout_s: float = FIRST_REQUEST_TIMEOUT_S
    _reading_done = False
    _asked = False
    _busy = False
    """A request is in progress (between its head and the end of its response)."""
    _idle_since: float | None = None
    """When the connection last went idle: its start, or the end of its last response."""
    _idle_again: trio.Event | None = None
    """Set when the request in progress ends, for a timer that came due while it ran."""
    _idle_wait: trio.CancelScope | None = None

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData) and not self.send_lock.locked():
            # hypercorn's own write, with the lock taken without a pass through trio's scheduler when
            # no other write holds it (the socket send that follows is a schedule point of its own).
            self.send_lock.acquire_nowait()
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
            finally:
                self.send_lock.release()
            return
        if not isinstance(event, Updated):
            await super().protocol_send(event)
            return
        # hypercorn would stop its idle task at a request head and start a new one after the response.
        if event.idle:
            self._busy = False
            self._idle_since = trio.current_time()
            if self._idle_again is not None:
                self._idle_again.set()
        else:  # a complete request head has arrived
            self._busy = self._asked = True

    async def _read_data(self) -> None:
        try:
            await self._read_requests()
        finally:
            self._reading_done = True
            if self._idle_wait is not None:
                self._idle_wait.cancel()
            if self._idle_again is not None:
                self._idle_again.set()

    async def _read_requests(self) -> None:
        """hypercorn's read loop (TCPServer._read_data), which also gives a lane's held request to the
        app when the rest of its body is BODY_WAIT_S late."""
        while True:
            read_until = trio.current_time() + (self.config.read_timeout or math.inf)
            held_until = getattr(self.protocol.protocol, "held_until", None) or math.inf
            with trio.move_on_at(min(read_until, held_until)) as waiting:
                try:
                    data = await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    break
            if waiting.cancelled_caught:
                if held_until > read_until:
                    break  # hypercorn's read_timeout
                await self.protocol.protocol.release_held()  # type: ignore[union-attr]
                continue
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())

    async def _idle_timeout(self) -> None:
        # Started once, with the connection; a connection whose reading has ended closes at once.
        if self._idle_since is None:
            self._idle_since = trio.current_time()
        while not self._reading_done:
            if self._busy:  # came due (or the server stopping) during a request: wait for its end
                self._idle_again = trio.Event()
                await self._idle_again.wait()
                self._idle_again = None
                continue
            if self.context.terminated.is_set():
                break
            timeout = self.config.keep_alive_timeout if self._asked else self.first_request_timeout_s
            deadline = self._idle_since + timeout
            if trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline) as self._idle_wait:
                await self.context.terminated.wait()  # then close, once a request in progress is answered
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


def install(first_request_timeout_s: float = FIRST_REQUEST_TIMEOUT_S, lane: Lane | None = None) -> None:
    """All three changes (the lane only with a `lane`: its held requests' deadline is kept by
    `IdleClosingTCPServer`), or IncompatibleLibraryError naming what of hypercorn changed."""
    if lane is not None:
        IncompatibleLibraryError.require("hypercorn", WRITTEN_FOR, lane_problems())
    install_coalescing()
    install_idle_closing(first_request_timeout_s)
    LaneH11Protocol.lane = lane
    if lane is not None:
        setattr(hypercorn.protocol, "H11Protocol", LaneH11Protocol)  # noqa: B010 (as install_coalescing)


def install_coalescing() -> None:
    """Make hypercorn serve HTTP/1.1 with `CoalescingH11Protocol`."""
    IncompatibleLibraryError.require("hypercorn", WRITTEN_FOR, problems())
    setattr(hypercorn.protocol, "H11Protocol", CoalescingH11Protocol)  # noqa: B010 (ProtocolWrapper reads it at call time)


def install_idle_closing(first_request_timeout_s: float = FIRST_REQUEST_TIMEOUT_S) -> None:
    """Make hypercorn's trio server use `IdleClosingTCPServer`."""
    IncompatibleLibraryError.require("hypercorn", WRITTEN_FOR, idle_problems())
    IdleClosingTCPServer.first_request_timeout_s = first_request_timeout_s
    setattr(hypercorn.trio.run, "TCPServer", IdleClosingTCPServer)  # noqa: B010 (worker_serve reads it at call time)


def idle_problems() -> list[str]:
    """Each internal `install_idle_closing` relies on that hypercorn lacks (none: all there)."""
    run_server = getattr(hypercorn.trio.run, "TCPServer", None)
    expected = {
        "hypercorn.trio.run.TCPServer is the trio connection class (looked up per connection)": run_server
        in (TCPServer, IdleClosingTCPServer),
        **{f"TCPServer.{name} exists": callable(getattr(TCPServer, name, None)) for name in _OVERRIDDEN},
        "TCPServer._idle_timeout waits on context.terminated, then calls _initiate_server_close": _uses(
            TCPServer, "_idle_timeout", "terminated", "_initiate_server_close"
        ),
        "TCPServer.run starts the idle task once (idle_task.restart(_idle_timeout))": _uses(
            TCPServer, "run", "idle_task", "restart", "_idle_timeout"
        ),
        "TCPServer.protocol_send turns Updated events into idle_task restarts and stops": _uses(
            TCPServer, "protocol_send", "Updated", "idle", "idle_task", "restart", "stop"
        ),
        "TCPServer._read_data: stream.receive_some(MAX_RECV) into protocol.handle(RawData), then Closed": (
            _uses(TCPServer, "_read_data", "receive_some", "MAX_RECV", "read_timeout", "RawData", "Closed")
        ),
        "ProtocolWrapper keeps the connection's protocol in `protocol`": _uses(
            hypercorn.protocol.ProtocolWrapper, "__init__", "protocol"
        ),
        "TCPServer.protocol_send writes RawData with stream.send_all under send_lock, shielded": _uses(
            TCPServer, "protocol_send", "RawData", "send_lock", "stream", "send_all", "CancelScope", "shield"
        ),
        "TCPServer.protocol_send turns a broken or closed stream into protocol.handle(Closed())": _uses(
            TCPServer,
            "protocol_send",
            "BrokenResourceError",
            "ClosedResourceError",
            "protocol",
            "handle",
            "Closed",
        ),
    }
    return [what for what, present in expected.items() if not present]


def problems(module: ModuleType = hypercorn.protocol, protocol: type[H11Protocol] = H11Protocol) -> list[str]:
    """Each hypercorn internal `install` relies on that `module` and `protocol` lack (none: all there)."""
    send = getattr(protocol, "_send_h11_event", None)
    expected = {
        "hypercorn.protocol.H11Protocol is the HTTP/1.1 protocol class": getattr(module, "H11Protocol", None)
        in (protocol, CoalescingH11Protocol, LaneH11Protocol),
        "ProtocolWrapper looks the global H11Protocol up for each connection": _uses(
            getattr(module, "ProtocolWrapper", None), "__init__", "H11Protocol"
        ),
        "H11Protocol keeps its h11 connection in `connection` and its writer in `send`": _uses(
            protocol, "__init__", "connection", "send"
        ),
        "H11Protocol sends every event through the coroutine _send_h11_event(event)": (
            inspect.iscoroutinefunction(send)
            and list(inspect.signature(send).parameters) == ["self", "event"]
            and _uses(protocol, "stream_send", "_send_h11_event")
        ),
        "H11Protocol._send_h11_event writes connection.send(event) as RawData unless the peer is in ERROR": (
            _uses(protocol, "_send_h11_event", "connection", "send", "their_state", "RawData")
        ),
    }
    return [what for what, present in expected.items() if not present]


def lane_problems(protocol: type[H11Protocol] = H11Protocol) -> list[str]:
    """Each hypercorn internal `LaneH11Protocol` relies on that `protocol` lacks (none: all there)."""
    create = getattr(protocol, "_create_stream", None)
    expected = {
        "H11Protocol keeps its client, server, context and current stream as attributes": _uses(
            protocol, "__init__", "client", "server", "context", "stream", "keep_alive_requests"
        ),
        "H11Protocol._create_stream(request) makes the HTTPStream, counts the request and marks it": (
            inspect.iscoroutinefunction(create)
            and list(inspect.signature(create).parameters) == ["self", "request"]
            and _uses(
                protocol, "_create_stream", "HTTPStream", "stream", "keep_alive_requests", "mark_request"
            )
        ),
        "H11Protocol._handle_events: h11's Request to _create_stream, Data/EndOfMessage to stream.handle": (
            _uses(
                protocol, "_handle_events", "_create_stream", "stream", "handle", "Body", "EndBody", "PAUSED"
            )
        ),
        "H11Protocol.stream_send: Response, Body, EndBody and StreamClosed to h11 events and a recycle": (
            _uses(protocol, "stream_send", "Response", "Body", "EndBody", "StreamClosed", "_maybe_recycle")
        ),
        "H11Protocol.handle gives RawData to _handle_events and Closed to _close_stream": _uses(
            protocol, "handle", "RawData", "_handle_events", "Closed", "_close_stream"
        ),
        "H11Protocol._handle_events: Updated (busy) and a protocol check before _create_stream": _uses(
            protocol, "_handle_events", "Updated", "_check_protocol", "they_are_waiting_for_100_continue"
        ),
        "H11Protocol.stream_send adds response_headers and the keep_alive_max_requests close": _uses(
            protocol, "stream_send", "response_headers", "keep_alive_requests", "keep_alive_max_requests"
        ),
        "H11Protocol._maybe_recycle closes the stream and starts h11's next cycle": _uses(
            protocol, "_maybe_recycle", "_close_stream", "start_next_cycle", "can_read", "Updated"
        ),
        "hypercorn's stream events keep their fields": (
            _fields(Response) == {"stream_id", "headers", "status_code"}
            and _fields(Body) == {"stream_id", "data"}
            and _fields(EndBody) == _fields(StreamClosed) == {"stream_id"}
        ),
    }
    return [what for what, present in expected.items() if not present]


def _fields(cls: type) -> set[str]:
    return set(getattr(cls, "__dataclass_fields__", {}))


def _uses(cls: object, method: str, *names: str) -> bool:
    """Whether `cls.method` exists and its code (past decorators) reads or writes each name in `names`."""
    function = getattr(cls, method, None)
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    return code is not None and set(names) <= set(code.co_names)
