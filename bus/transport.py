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

Across hosts the bus runs over tcp://, and only with CurveZMQ (`open_bus_security`):
every connecting socket pins the bus server key, every bound socket accepts only
allow-listed client keys (a ZAP handler served by a trio task of this process),
and ZMTP heartbeats drop a connection whose peer went silent, which a bound
ROUTER reports through `RouterChannel.disconnected`. ipc:// is unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Generic, TypeVar

import trio
import zmq
from zmq.utils import z85

from bus.codec import Decoder, encode
from bus.errors import BusError, ConfigError, PeerGoneError
from bus.messages import Message

T = TypeVar("T")
logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
HIGH_WATER_MARK: Final = 100_000
TCP_HEARTBEAT_IVL_S: Final = 1.0
"""A ZMTP PING on every tcp:// connection each second, so a silent one is noticed."""
TCP_HEARTBEAT_TIMEOUT_S: Final = 3.0
"""No traffic for this long after a PING: the connection is dropped (and a DEALER redials). A cut
link therefore fails the calls in flight over it within IVL + TIMEOUT = 4 s."""
ZAP_ENDPOINT: Final = "inproc://zeromq.zap.01"
"""Where libzmq asks a context's authenticator (RFC 27, ZAP) about each CURVE handshake."""
ZAP_DOMAIN: Final = b"mcpproxy"


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

    def send_nowait(self, frames: Sequence[bytes]) -> bool:
        """Send if the message can go at once; False if not now. PeerGoneError for an unroutable peer.
        Never a pass through trio's scheduler: for a caller that waits for something next anyway."""
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno == errno.EHOSTUNREACH:
                raise PeerGoneError("bus peer is not connected") from exc
            raise BusError(f"bus send failed: {exc}") from exc
        if self._wake is not None and self._events() & zmq.POLLIN:  # as in `send`
            self._wake.cancel()
        return True

    async def send_soon(self, frames: Sequence[bytes]) -> None:
        """`send`, without a pass through trio's scheduler when the message can go at once: for a task
        that ends, or waits for something, right after."""
        if not self.send_nowait(frames):
            await self.send(frames)

    async def receive(self) -> list[bytes]:
        """Wait for one multipart message. A schedule point: it waited for the message, or it passes
        through trio's scheduler once after taking it (a busy socket starves no other task)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                waited = await self._wait_for(zmq.POLLIN) or waited
                continue
            if self._send_waiters and self._events() & zmq.POLLOUT:
                self._writable.set()
            if not waited:
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

    async def _wait_for(self, flag: int) -> bool:
        """Until EVENTS has `flag`; whether that took a wait (a schedule point)."""
        waited = False
        while True:
            events = self._events()
            if self._send_waiters and events & zmq.POLLOUT:
                self._writable.set()
            if events & flag:
                return waited
            with trio.CancelScope() as scope:
                self._wake = scope
                try:
                    await trio.lowlevel.wait_readable(self._sock.FD)
                finally:
                    self._wake = None
            waited = True

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


@dataclass(frozen=True)
class CurveKeys:
    """One process's CurveZMQ keys for tcp:// bus endpoints, Z85 text (40 characters each).

    `server_public` is pinned by every socket this process connects; `public`/`secret` are the
    keypair it connects with. A process that binds also has `server_secret` and the client keys
    it accepts (`allowed`).
    """

    server_public: str
    public: str = ""
    secret: str = ""
    server_secret: str = ""
    allowed: frozenset[str] = frozenset()


_curve: CurveKeys | None = None


def new_curve_keypair() -> tuple[str, str]:
    """A fresh CurveZMQ keypair, (public, secret), in Z85 text."""
    public, secret = zmq.curve_keypair()
    return public.decode("ascii"), secret.decode("ascii")


def curve_key_problem(key: str) -> str | None:
    """Why `key` is not a Z85 CurveZMQ key, or None."""
    try:
        decoded = z85.decode(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        decoded = b""
    return None if len(key) == 40 and len(decoded) == 32 else "a CurveZMQ key is 40 characters of Z85 text"


_authenticator: Socket | None = None
_accepted: frozenset[bytes] = frozenset()


def _zap_socket() -> Socket:
    """The process's ZAP socket, bound once and kept: libzmq releases an inproc name and its sessions'
    pipes to it on its own threads, so a ZAP socket closed and bound again in one process can leave
    new handshakes asking the old one (and hanging). Between uses it is bound but unserved, which
    holds every handshake: closed, not open."""
    global _authenticator
    if _authenticator is None:
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        _authenticator = Socket(sock)
    return _authenticator


@contextlib.asynccontextmanager
async def open_bus_security(keys: CurveKeys) -> AsyncIterator[None]:
    """Let this process's bus sockets use tcp://, with `keys`; serve its ZAP authenticator meanwhile.

    libzmq asks the authenticator about every handshake on a bound CURVE socket; without one it
    would accept any client key, so a process that binds runs it before it binds anything.
    """
    global _curve, _accepted
    if _curve is not None:
        raise BusError("bus security is already configured in this process")
    _curve = keys
    _accepted = frozenset(z85.decode(key.encode("ascii")) for key in keys.allowed)
    try:
        async with trio.open_nursery() as nursery:
            if keys.server_secret:
                nursery.start_soon(_serve_zap, _zap_socket())
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    finally:
        _curve = None
        _accepted = frozenset()


async def _serve_zap(socket: Socket) -> None:
    while True:
        frames = await socket.receive()
        # [peer, "", version, request id, domain, address, routing id, mechanism, credentials...]
        if len(frames) < 8:
            continue
        peer, _, version, request_id, domain, address, _, mechanism, *credentials = frames
        key = credentials[0] if credentials else b""
        ok = mechanism == b"CURVE" and domain == ZAP_DOMAIN and key in _accepted
        if not ok:
            shown = z85.encode(key).decode("ascii") if len(key) == 32 else "none"
            logger.warning(
                "bus: refused a %s connection from %s: client key %s is not allowed",
                mechanism.decode("ascii", "replace"),
                address.decode("ascii", "replace"),
                shown,
            )
        status = (b"200", b"OK") if ok else (b"400", b"client key not allowed")
        await socket.send((peer, b"", version, request_id, *status, b"", b""))


def _is_tcp(endpoint: str) -> bool:
    return endpoint.startswith("tcp://")


def _configure(sock: zmq.Socket[bytes], endpoint: str = "", *, server: bool = False) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    if not _is_tcp(endpoint):
        return
    if _curve is None or not (_curve.server_secret if server else _curve.secret):
        role = "bind" if server else "connect"
        raise ConfigError(
            f"the bus endpoint {endpoint} is tcp:// but this process has no CurveZMQ keys to {role} "
            "it with; run `mcpproxy keys generate` (or set the MCPPROXY_BUS_* key variables)"
        )
    if server:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, _curve.server_secret.encode("ascii"))
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
    else:
        sock.setsockopt(zmq.CURVE_SERVERKEY, _curve.server_public.encode("ascii"))
        sock.setsockopt(zmq.CURVE_PUBLICKEY, _curve.public.encode("ascii"))
        sock.setsockopt(zmq.CURVE_SECRETKEY, _curve.secret.encode("ascii"))
    sock.setsockopt(zmq.HEARTBEAT_IVL, int(TCP_HEARTBEAT_IVL_S * 1000))
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(TCP_HEARTBEAT_TIMEOUT_S * 1000))
    sock.setsockopt(zmq.HEARTBEAT_TTL, int(TCP_HEARTBEAT_TIMEOUT_S * 1000))


class RouterChannel(Generic[T]):
    """A bound ROUTER: many peers, each known by its routing id; receives messages of `T`."""

    def __init__(self, socket: Socket, decoder: Decoder[T], monitor: Socket | None = None) -> None:
        self._socket = socket
        self._decoder = decoder
        self._monitor = monitor

    async def send(self, peer: bytes, message: Message) -> None:
        await self._socket.send((peer, encode(message)))

    async def send_soon(self, peer: bytes, message: Message) -> None:
        """`send`, with no pass through trio's scheduler when it can go at once (Socket.send_soon)."""
        await self._socket.send_soon((peer, encode(message)))

    def probe_nowait(self, peer: bytes, message: Message) -> bool:
        """Send `message` if it can go at once; False only when `peer` has no route (it is gone)."""
        try:
            self._socket.send_nowait((peer, encode(message)))  # not sent: full, or the route is going
        except PeerGoneError:
            return False
        return True

    async def disconnected(self) -> None:
        """Wait until a peer's connection drops (closed, or silent past the tcp:// heartbeat).

        The event does not say which peer, and libzmq removes the peer's route a moment after it
        reports the drop: a caller with requests in flight probes their peers (`probe_nowait`) for
        a short while after it. One task calls this.
        """
        await _next_event(self._monitor, zmq.EVENT_DISCONNECTED)

    async def receive(self) -> tuple[bytes, T]:
        """Next (peer id, message). A malformed message raises ProtocolError; the channel stays usable."""
        while True:
            frames = await self._socket.receive()
            if len(frames) == 2:
                return frames[0], self._decoder.decode(frames[1])

    def close(self, linger_ms: int = 0) -> None:
        _stop_monitor(self._socket, self._monitor)
        self._socket.close(linger_ms)


class DealerChannel(Generic[T]):
    """A connected DEALER with a fixed routing id; receives messages of `T`."""

    def __init__(self, socket: Socket, decoder: Decoder[T], monitor: Socket | None = None) -> None:
        self._socket = socket
        self._decoder = decoder
        self._monitor = monitor

    async def send(self, message: Message) -> None:
        await self._socket.send((encode(message),))

    async def send_soon(self, message: Message) -> None:
        """`send`, with no pass through trio's scheduler when it can go at once (Socket.send_soon)."""
        await self._socket.send_soon((encode(message),))

    async def connected(self) -> None:
        """Wait until a connection to the ROUTER is (re)established, handshake done: the first, and each
        redial after the peer went away (restarted, moved, or silent past the heartbeat). Only for a
        tcp:// DEALER made with `watch_connects`; otherwise never returns. One task calls this."""
        await _next_event(self._monitor, zmq.EVENT_HANDSHAKE_SUCCEEDED)

    async def receive(self) -> T:
        while True:
            frames = await self._socket.receive()
            if len(frames) == 1:
                return self._decoder.decode(frames[0])

    def close(self, linger_ms: int = 0) -> None:
        _stop_monitor(self._socket, self._monitor)
        self._socket.close(linger_ms)


def _stop_monitor(socket: Socket, monitor: Socket | None) -> None:
    # Stop the events first: libzmq's I/O thread writes them to a PAIR with a blocking send, so an
    # event for a monitor already closed would hang that thread, and with it every socket.
    if monitor is not None and not monitor._closed:
        socket._sock.disable_monitor()
        monitor.close()


async def _next_event(monitor: Socket | None, event: int) -> None:
    if monitor is None:
        await trio.sleep_forever()
    assert monitor is not None
    while True:
        frames = await monitor.receive()
        if frames and int.from_bytes(frames[0][:2], "little") == event:
            return


def bind_router(endpoint: str, decoder: Decoder[T]) -> RouterChannel[T]:
    """Bind a ROUTER that refuses to drop messages for unknown peers silently."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        _configure(sock, endpoint, server=True)
    except ConfigError:
        sock.close(linger=0)
        raise
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    # A restarted peer reusing a routing id takes the route over.
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.bind(endpoint)
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED) if _is_tcp(endpoint) else None
    return RouterChannel(Socket(sock), decoder, Socket(monitor) if monitor is not None else None)


def connect_dealer(
    endpoint: str, identity: bytes, decoder: Decoder[T], *, watch_connects: bool = False
) -> DealerChannel[T]:
    """Connect a DEALER that presents `identity` to the ROUTER it talks to."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    try:
        _configure(sock, endpoint)
    except ConfigError:
        sock.close(linger=0)
        raise
    sock.setsockopt(zmq.ROUTING_ID, identity)
    monitor = None
    if watch_connects and _is_tcp(endpoint):
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    sock.connect(endpoint)
    return DealerChannel(Socket(sock), decoder, Socket(monitor) if monitor is not None else None)


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
