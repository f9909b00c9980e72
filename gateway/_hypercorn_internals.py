"""hypercorn's internals, in the one module allowed to touch them (pinned to WRITTEN_FOR in pyproject).

Two changes hypercorn 0.18 offers no setting or hook for, each a subclass
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
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Final

import h11
import hypercorn.protocol
import hypercorn.trio.run
import trio
from hypercorn.events import Event, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.typing import H11SendableEvent

from bus.errors import IncompatibleLibraryError

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
            await super()._read_data()
        finally:
            self._reading_done = True
            if self._idle_wait is not None:
                self._idle_wait.cancel()
            if self._idle_again is not None:
                self._idle_again.set()

    async def _idle_timeout(self) -> None:
        # Started once, with the connection; a connection whose reading has ended closes at once.
        if self._idle_since is None:
            self._idle_since = trio.current_time()
        while not self._reading_done:
            if self._busy:  # came due during a request: wait for its end, then count from there
                self._idle_again = trio.Event()
                await self._idle_again.wait()
                self._idle_again = None
                continue
            timeout = self.config.keep_alive_timeout if self._asked else self.first_request_timeout_s
            deadline = self._idle_since + timeout
            if trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline) as self._idle_wait:
                await self.context.terminated.wait()
                break
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


def install(first_request_timeout_s: float = FIRST_REQUEST_TIMEOUT_S) -> None:
    """Both changes, or IncompatibleLibraryError naming what of hypercorn changed."""
    install_coalescing()
    install_idle_closing(first_request_timeout_s)


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
    }
    return [what for what, present in expected.items() if not present]


def problems(module: ModuleType = hypercorn.protocol, protocol: type[H11Protocol] = H11Protocol) -> list[str]:
    """Each hypercorn internal `install` relies on that `module` and `protocol` lack (none: all there)."""
    send = getattr(protocol, "_send_h11_event", None)
    expected = {
        "hypercorn.protocol.H11Protocol is the HTTP/1.1 protocol class": getattr(module, "H11Protocol", None)
        in (protocol, CoalescingH11Protocol),
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


def _uses(cls: object, method: str, *names: str) -> bool:
    """Whether `cls.method` exists and its code (past decorators) reads or writes each name in `names`."""
    function = getattr(cls, method, None)
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    return code is not None and set(names) <= set(code.co_names)
