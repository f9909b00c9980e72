"""One socket write per small HTTP/1.1 response: hypercorn sends a response's head and body as two.

Every MCP call answered as JSON is a head plus one short body. hypercorn 0.18
writes the head the moment the app starts the response and the body when it
arrives, so the client wakes up twice and the gateway makes two send calls
per call. Measured on hypercorn serving a one-line JSON answer: -10-20 % CPU
on both sides and -0.1 to -0.3 ms p50 when both go out together.

Only a response that declares its Content-Length is held back, and only until
its first body bytes (or its end): its body is about to follow. Streams (SSE,
chunked) still get their head at once. hypercorn offers no hook for this, so
`install` swaps in a subclass of its HTTP/1.1 protocol. This is the one module
that touches hypercorn's internals (`_send_h11_event`, the module global
`hypercorn.protocol.H11Protocol`, the protocol's `connection` and `send`):
`install` first checks each is there in the shape this was written against
(WRITTEN_FOR, which pyproject.toml pins) and raises IncompatibleLibraryError
naming what changed otherwise.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Final

import h11
import hypercorn.protocol
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
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


def install() -> None:
    """Make hypercorn serve HTTP/1.1 with `CoalescingH11Protocol`; IncompatibleLibraryError if it cannot."""
    IncompatibleLibraryError.require("hypercorn", WRITTEN_FOR, problems())
    setattr(hypercorn.protocol, "H11Protocol", CoalescingH11Protocol)  # noqa: B010 (ProtocolWrapper reads it at call time)


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
