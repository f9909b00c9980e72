"""Idle HTTP connections: closed as soon as their client has gone, and soon if they never ask anything.

hypercorn 0.18 (trio) keeps a connection's socket open until its keep-alive
timer fires, even after the client has closed its end: the read loop sees EOF
and returns, but `TCPServer.run` closes the socket only once the connection's
task group is done, and that group still holds the idle timer task. For
`keep_alive_timeout` seconds the descriptor sits in CLOSE-WAIT; with 75 s and
a 1,024 descriptor limit, 14 short-lived connections a second were enough to
make accept fail with EMFILE. The same timer is also all the time a new
connection gets to send its first request head.

`install` swaps in a subclass of hypercorn's trio `TCPServer` (hypercorn offers
no setting for either) that

- ends the idle timer as soon as reading has ended (EOF, reset, or our own
  close), so the socket is closed at once;
- gives a connection `first_request_timeout_s` to send its first complete
  request head, and `keep_alive_timeout` between later requests.

While a request is in progress hypercorn stops the idle timer, and a client
that closes then already ends the request (hypercorn reads on and takes EOF
as a disconnect), so neither change touches a request being answered.
`install` does nothing if hypercorn's internals are not the ones this was
written against; `tests/gateway/test_idle_connections.py` fails loudly then.
"""

from __future__ import annotations

import logging
from typing import Final

import hypercorn.trio.run
import trio
from hypercorn.events import Event, Updated
from hypercorn.trio.tcp_server import TCPServer

logger = logging.getLogger(__name__)

FIRST_REQUEST_TIMEOUT_S: Final = 5.0
"""A new connection must send its first complete request head within this."""
KEEP_ALIVE_S: Final = 15.0
"""hypercorn's keep_alive_timeout for the gateway: an idle kept-alive connection, and the next request
head on it, get this long. Longer than the idle expiry of common clients (httpx 5 s, undici 4 s), so
the client closes an unused connection first and never sends a request into our close."""
CHECKED_AGAINST: Final = "0.18"
"""The hypercorn release whose `trio/tcp_server.py` this was checked against."""
_OVERRIDDEN: Final = ("_read_data", "_idle_timeout", "protocol_send", "_initiate_server_close")


class IdleClosingTCPServer(TCPServer):
    """hypercorn's trio connection, closed at once when its reading ends and soon if it never asks."""

    first_request_timeout_s: float = FIRST_REQUEST_TIMEOUT_S
    _reading_done = False
    _asked = False
    _idle_wait: trio.CancelScope | None = None

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Updated) and not event.idle:  # a complete request head has arrived
            self._asked = True
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            self._reading_done = True
            if self._idle_wait is not None:
                self._idle_wait.cancel()

    async def _idle_timeout(self) -> None:
        # Restarted after every response: a timer started once reading has ended closes at once.
        if not self._reading_done:
            timeout = self.config.keep_alive_timeout if self._asked else self.first_request_timeout_s
            with trio.move_on_after(timeout) as self._idle_wait:
                await self.context.terminated.wait()
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


def install(first_request_timeout_s: float = FIRST_REQUEST_TIMEOUT_S) -> bool:
    """Make hypercorn's trio server use `IdleClosingTCPServer`; False if its internals differ."""
    if getattr(hypercorn.trio.run, "TCPServer", None) is not TCPServer or not all(
        callable(getattr(TCPServer, name, None)) for name in _OVERRIDDEN
    ):
        logger.warning("hypercorn internals changed: closed connections wait out their keep-alive")
        return False
    IdleClosingTCPServer.first_request_timeout_s = first_request_timeout_s
    setattr(hypercorn.trio.run, "TCPServer", IdleClosingTCPServer)  # noqa: B010 (worker_serve reads it at call time)
    return True
