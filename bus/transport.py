"""ZeroMQ sockets driven from trio. The only module that imports zmq.

pyzmq has no trio integration, so sockets are used non-blocking and the
socket's FD is awaited with `trio.lowlevel.wait_readable`. That FD is
edge-triggered: it signals *changes* of the socket's EVENTS, so a waiter must
look at EVENTS first and sleep only when the flag it needs is absent; a send
can also consume the edge that announced an inbound message. Hence:

- exactly one task receives on a socket and is the only one that waits on
  the FD (trio allows one waiter per FD);
- any task may send; a send that finds the receiver asleep while inbound
  data is pending wakes it, and a send blocked by the high-water mark waits
  for the receiver to see POLLOUT.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Generic, TypeVar

import trio
import zmq

from bus.codec import Decoder, encode
from bus.errors import BusError, PeerGoneError
from bus.messages import Message

T = TypeVar("T")

MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
HIGH_WATER_MARK: Final = 100_000


class Socket:
    """One zmq socket. One task calls `receive`; any task may call `send`."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self._sock = sock
        self._wake: trio.CancelScope | None = None
        self._writable = trio.Event()
        self._send_waiters = 0
        self._closed = False

    async def send(self, frames: Sequence[bytes]) -> None:
        """Send one multipart message; raises PeerGoneError for an unroutable ROUTER peer."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self._sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                await self._wait_writable()
                continue
            except zmq.ZMQError as exc:
                if exc.errno == errno.EHOSTUNREACH:
                    raise PeerGoneError("bus peer is not connected") from exc
                raise BusError(f"bus send failed: {exc}") from exc
            break
        # A send may have consumed the edge that announced inbound data.
        if self._wake is not None and self._events() & zmq.POLLIN:
            self._wake.cancel()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive(self) -> list[bytes]:
        """Wait for one multipart message."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                await self._wait_for(zmq.POLLIN)
                continue
            if self._send_waiters and self._events() & zmq.POLLOUT:
                self._writable.set()
            # Never lose a consumed message to a cancellation.
            await trio.lowlevel.cancel_shielded_checkpoint()
            return frames

    def close(self, linger_ms: int = 0) -> None:
        """Release the socket; outbound messages still queued get `linger_ms` to leave, then are dropped."""
        if self._closed:
            return
        self._closed = True
        trio.lowlevel.notify_closing(self._sock.FD)
        self._sock.close(linger=linger_ms)

    def _events(self) -> int:
        return int(self._sock.getsockopt(zmq.EVENTS))

    async def _wait_for(self, flag: int) -> None:
        while True:
            events = self._events()
            if self._send_waiters and events & zmq.POLLOUT:
                self._writable.set()
            if events & flag:
                return
            with trio.CancelScope() as scope:
                self._wake = scope
                try:
                    await trio.lowlevel.wait_readable(self._sock.FD)
                finally:
                    self._wake = None

    async def _wait_writable(self) -> None:
        # The receiver owns the FD; ask it to tell us when POLLOUT comes back.
        self._send_waiters += 1
        try:
            if self._wake is not None:
                self._wake.cancel()
            await self._writable.wait()
        finally:
            self._send_waiters -= 1
            if not self._send_waiters:
                self._writable = trio.Event()


def _configure(sock: zmq.Socket[bytes]) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)


class RouterChannel(Generic[T]):
    """A bound ROUTER: many peers, each known by its routing id; receives messages of `T`."""

    def __init__(self, socket: Socket, decoder: Decoder[T]) -> None:
        self._socket = socket
        self._decoder = decoder

    async def send(self, peer: bytes, message: Message) -> None:
        await self._socket.send((peer, encode(message)))

    async def receive(self) -> tuple[bytes, T]:
        """Next (peer id, message). A malformed message raises ProtocolError; the channel stays usable."""
        while True:
            frames = await self._socket.receive()
            if len(frames) == 2:
                return frames[0], self._decoder.decode(frames[1])

    def close(self, linger_ms: int = 0) -> None:
        self._socket.close(linger_ms)


class DealerChannel(Generic[T]):
    """A connected DEALER with a fixed routing id; receives messages of `T`."""

    def __init__(self, socket: Socket, decoder: Decoder[T]) -> None:
        self._socket = socket
        self._decoder = decoder

    async def send(self, message: Message) -> None:
        await self._socket.send((encode(message),))

    async def receive(self) -> T:
        while True:
            frames = await self._socket.receive()
            if len(frames) == 1:
                return self._decoder.decode(frames[0])

    def close(self, linger_ms: int = 0) -> None:
        self._socket.close(linger_ms)


def bind_router(endpoint: str, decoder: Decoder[T]) -> RouterChannel[T]:
    """Bind a ROUTER that refuses to drop messages for unknown peers silently."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    _configure(sock)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    # A restarted peer reusing a routing id takes the route over.
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.bind(endpoint)
    return RouterChannel(Socket(sock), decoder)


def connect_dealer(endpoint: str, identity: bytes, decoder: Decoder[T]) -> DealerChannel[T]:
    """Connect a DEALER that presents `identity` to the ROUTER it talks to."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    _configure(sock)
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(endpoint)
    return DealerChannel(Socket(sock), decoder)


def terminate_context() -> None:
    """End this process's ZeroMQ context: blocks until closed sockets' queued messages have left
    (or their linger ran out). A process that ends with os._exit() skips this unless called."""
    zmq.Context.instance().term()


def private_runtime_dir(base: Path) -> Path:
    """Create (or check) a 0700 directory for ipc:// endpoints; refuse one others can enter."""
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = base.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(base, 0o700)
    return base


def ipc_endpoint(runtime_dir: Path, name: str) -> str:
    """The ipc:// address of a named socket inside the private runtime directory."""
    return f"ipc://{runtime_dir / name}.sock"
