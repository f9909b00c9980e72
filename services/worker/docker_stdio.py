"""The stdio transport inside a Docker container (isolation): the streams of stdio.py over an attach socket.

The server's command runs in a container we create with stdin open and
attached (so the engine closes the server's stdin when we half-close our
socket). Its stdout and stderr come back multiplexed on the same socket
(8-byte frame headers); we read it with trio directly, no thread:

- stdout lines are bounded (MAX_LINE_BYTES) and non-JSON-RPC lines skipped,
  as in stdio.py;
- stderr goes to the server's rotating log, continuously;
- the stop is staged: stdin EOF, wait `close_timeout`; `docker stop`
  (SIGTERM, SIGKILL after `kill_timeout`); `docker kill` if still running;
  `docker rm`. A container this worker could not remove (the engine was
  gone, or the worker was SIGKILLed) is removed by the supervisor, which
  knows it by its labels.
"""

from __future__ import annotations

import functools
import logging
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Final

import anyio
import trio

from bus.errors import UpstreamError
from bus.messages import ContainerSpec, UpstreamSpec
from services.docker_engine import Attached, DockerEngine, DockerError, DockerUnavailableError
from services.isolation import LABEL_INSTANCE, instance_labels
from services.upstream_log import RotatingLog
from services.worker.stdio import READ_CHUNK_BYTES, PipedUpstream, StdoutRelay, running

logger = logging.getLogger(__name__)

FRAME_HEADER: Final = struct.Struct(">BxxxL")
STDOUT: Final = 1
STDERR: Final = 2


class FrameDecoder:
    """Docker's multiplexed stream (header: stream id, 3 zero bytes, big-endian length), decoded
    incrementally: payload pieces come out as they arrive, so a frame claiming 4 GiB costs no memory."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._stream = 0
        self._left = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        pieces: list[tuple[int, bytes]] = []
        pos = 0
        while pos < len(data):
            if self._left == 0:
                take = min(FRAME_HEADER.size - len(self._header), len(data) - pos)
                self._header += data[pos : pos + take]
                pos += take
                if len(self._header) == FRAME_HEADER.size:
                    self._stream, self._left = FRAME_HEADER.unpack(self._header)
                    self._header.clear()
                continue
            take = min(self._left, len(data) - pos)
            pieces.append((self._stream, data[pos : pos + take]))
            pos += take
            self._left -= take
        return pieces


def exit_description(state: dict[str, object] | None) -> str:
    """Why a container's output ended, from its inspected `State`."""
    if state is None:
        return "the container was removed outside the proxy"
    if state.get("Running"):
        return "upstream closed its output streams"
    code = state.get("ExitCode")
    reason = f"upstream exited with code {code}"
    if state.get("OOMKilled"):
        reason += " (killed by the kernel at memory_limit: out of memory)"
    elif state.get("Error"):
        reason += f" ({state['Error']})"
    return reason


class DockerUpstream(PipedUpstream):
    """A running container and the two in-memory streams an MCP ClientSession reads and writes."""

    def __init__(self, engine: DockerEngine, attached: Attached, log: RotatingLog) -> None:
        super().__init__(log)
        self.engine = engine
        self.attached = attached
        self.container_id = attached.container_id
        sock = trio.socket.from_stdlib_socket(socket.socket(fileno=attached.fd))
        self._socket = trio.SocketStream(sock)
        self._send_lock = trio.Lock()
        self._stdin_open = True
        self._output_done = trio.Event()

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    async def pump_output(self) -> None:
        """Attach stream -> session (stdout) and log (stderr), until the container's streams end."""
        lost: str | None = None
        try:
            await self._read_frames()
        except (trio.BrokenResourceError, OSError) as exc:
            lost = str(exc) or type(exc).__name__
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._output_done.set()
            self.raw.close("the container's output ended")
        if self.exit_reason is None:
            self.exit_reason = await self._why_ended(lost)
            self.log.note(self.exit_reason)
        self.closed.set()

    async def _read_frames(self) -> None:
        frames = FrameDecoder()
        relay = StdoutRelay(self.raw, self.log, self.read_send.send)
        async with self.read_send:
            while chunk := await self._socket.receive_some(READ_CHUNK_BYTES):
                for stream, payload in frames.feed(chunk):
                    if stream == STDERR:
                        self.log.write(payload)
                    elif stream == STDOUT and (reason := await relay.feed(payload)):
                        self.exit_reason = reason  # a request waits for a line we cannot relay
                        return

    async def _why_ended(self, lost: str | None) -> str:
        try:
            state = await self.engine.state(self.container_id)
        except DockerUnavailableError as exc:
            return f"{exc} (the engine went away while the server was running)"
        except DockerError as exc:
            return f"the container's output ended and inspecting it failed: {exc}"
        if lost is not None and state is not None and state.get("Running"):
            return f"docker unavailable: the attach connection to the engine broke ({lost})"
        return exit_description(state)

    async def _write_stdin(self, data: bytes) -> bool:
        async with self._send_lock:
            if not self._stdin_open:
                return False
            await self._socket.send_all(data)
            return True

    async def close_stdin(self) -> None:
        """Half-close the attach socket: the engine closes the server's stdin (StdinOnce)."""
        async with self._send_lock:
            if self._stdin_open:
                self._stdin_open = False
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    await self._socket.send_eof()

    async def stop(self, close_timeout_s: float, kill_timeout_s: float) -> None:
        """The staged stop: stdin EOF, wait; docker stop (SIGTERM, SIGKILL after kill_timeout); kill; rm."""
        with trio.move_on_after(close_timeout_s):
            # A write blocked on a full socket holds the lock: the deadline covers that too.
            await self.close_stdin()
            await self._output_done.wait()
        try:
            state = await self.engine.state(self.container_id)
            if state is not None and state.get("Running"):
                self.log.note(
                    f"no exit {close_timeout_s:g}s after stdin EOF: docker stop (SIGTERM, SIGKILL after "
                    f"{kill_timeout_s:g}s)"
                )
                await self.engine.stop(self.container_id, kill_timeout_s)
                state = await self.engine.state(self.container_id)
                if state is not None and state.get("Running"):
                    self.log.note("still running after docker stop: docker kill")
                    await self.engine.kill(self.container_id)
            await self.engine.remove(self.container_id)
            self.log.note(f"removed container {self.short_id}")
        except DockerError as exc:
            self.log.note(f"could not stop or remove container {self.short_id}: {exc}")
            logger.warning(
                "container %s: %s; the supervisor removes it once the engine answers", self.short_id, exc
            )
        finally:
            await self._socket.aclose()
            self.attached.release()
            self.engine.close()


async def _start(spec: UpstreamSpec, container: ContainerSpec, log: RotatingLog) -> DockerUpstream:
    """Reach the engine, clear this server's leftovers, make sure of the image, run the container."""
    engine = await DockerEngine.connect(min(container.start_timeout_s, 10.0))
    try:
        server_labels = instance_labels(container.labels.get(LABEL_INSTANCE, ""), spec.name)
        for leftover in await engine.remove_all(server_labels):
            log.note(f"removed leftover container {leftover.id[:12]} ({leftover.name}, {leftover.state})")
        await engine.ensure_image(container.image, container.start_timeout_s, log.note)
        attached = await engine.run_attached(spec)
    except BaseException:
        engine.close()
        raise
    return DockerUpstream(engine, attached, log)


@asynccontextmanager
async def open_docker_upstream(spec: UpstreamSpec, log: RotatingLog) -> AsyncIterator[DockerUpstream]:
    """Run the server's command in its container and pump the streams; on exit, the staged stop."""
    container = spec.container
    assert container is not None and spec.command is not None
    if spec.working_dir:
        log.note("working_dir is a host path and is not used in the container; use extra_args ['-w', DIR]")
    try:
        with trio.fail_after(container.start_timeout_s):
            upstream = await _start(spec, container, log)
    except trio.TooSlowError:
        log.note(
            f"the container did not start within docker_isolation.timeout ({container.start_timeout_s:g}s)"
        )
        raise UpstreamError(
            f"docker: the container did not start within docker_isolation.timeout "
            f"({container.start_timeout_s:g}s)"
        ) from None
    except DockerError as exc:
        log.note(str(exc))
        raise
    memory = f"{container.memory_bytes // (1024 * 1024)}m" if container.memory_bytes else "unlimited"
    cpus = f"{container.nano_cpus / 1e9:g}" if container.nano_cpus else "unlimited"
    log.note(
        f"started container {upstream.short_id} ({container.name}, image {container.image}, memory {memory}, "
        f"cpus {cpus}, network {container.network_mode})"
    )
    async with running(
        (upstream.pump_output, upstream.pump_stdin),
        functools.partial(upstream.stop, spec.close_timeout_s, spec.kill_timeout_s),
    ):
        yield upstream
