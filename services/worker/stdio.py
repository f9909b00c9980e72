"""The stdio transport to an upstream: we spawn it, we own its process group, its pipes and its stderr.

Differences from the SDK's `stdio_client`, each on purpose:
- the upstream inherits only an allow-list of our environment plus its own `env`;
- stdout lines are bounded (MAX_LINE_BYTES): an over-long answer is dropped
  and its request gets a JSON-RPC error instead, so the session lives on; a
  line that never ends costs at most MAX_LINE_BYTES of memory and fails only
  this server;
- non-JSON lines and invalid JSON-RPC are logged and skipped, not fatal;
- stderr is drained continuously into the server's rotating log file, so a
  burst never blocks the upstream;
- the stop is the staged one: stdin EOF, wait `close_timeout`, SIGTERM the
  whole tree, poll, SIGKILL after `kill_timeout`.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Final

import anyio
import mcp.types as types
import pydantic
import trio
from mcp.shared.message import SessionMessage

from bus.values import ResourceLimits
from services import process
from services.limits import Confinement
from services.upstream_log import RotatingLog
from services.worker.raw_calls import Outbox, RawCalls

logger = logging.getLogger(__name__)

MAX_LINE_BYTES: Final = 32 * 1024 * 1024
READ_CHUNK_BYTES: Final = 256 * 1024
EXIT_REASON_GRACE_S: Final = 0.5
INHERITED_ENV: Final = ("PATH", "HOME", "LANG", "TMPDIR", "USER", "SHELL", "TERM", "LOGNAME")
NETWORK_ENV: Final = (
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"),
    *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"),
    *("http_proxy", "https_proxy", "all_proxy", "no_proxy"),
)
"""Behind a corporate proxy or TLS inspection, no upstream reaches the network without these."""
INHERITED_ENV_PREFIXES: Final = ("LC_", "XDG_")
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b-\x1f]")


def upstream_environment(own: Mapping[str, str], parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of the proxy's environment, overlaid with the server's own `env`."""
    parent = os.environ if parent is None else parent
    env = {
        key: value
        for key, value in parent.items()
        if key in INHERITED_ENV or key in NETWORK_ENV or key.startswith(INHERITED_ENV_PREFIXES)
    }
    env.update(own)
    return env


RUNAWAY_LINE_BYTES: Final = 4 * MAX_LINE_BYTES
"""A stdout line still unfinished after this much is not an answer that will end: fail the server."""
ID_SEARCH_BYTES: Final = 256
"""How much of an over-long line's start and end is kept to find its JSON-RPC id."""
_ID_VALUE: Final = rb'(-?\d+|"(?:[^"\\]|\\.)*")'
_HEAD_ID_RE: Final = re.compile(rb'^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*' + _ID_VALUE)
_TAIL_ID_RE: Final = re.compile(rb'[,{]\s*"id"\s*:\s*' + _ID_VALUE + rb"\s*\}\s*$")


def overlong_answer(head: bytes, tail: bytes, size: int, limit: int = MAX_LINE_BYTES) -> bytes | None:
    """The JSON-RPC error line that stands for an over-long answer, if its request id can be found.

    The id is looked for where serializers put it: first after `"jsonrpc"` (Python SDK) or last
    before the closing brace (JSON.stringify of `{result, jsonrpc, id}`), never inside the result.
    """
    found = _HEAD_ID_RE.match(head) or _TAIL_ID_RE.search(tail)
    if found is None:
        return None
    message = f"the upstream's answer was {size} bytes, over the {limit}-byte line limit; dropped"
    error = b'{"code":-32603,"message":"' + message.encode() + b'"}'
    return b'{"jsonrpc":"2.0","id":' + found.group(1) + b',"error":' + error + b"}"


class LineBuffer:
    """Splits a byte stream into lines, bounding each line at `max_bytes`.

    An over-long line is dropped (counted in `dropped`); when it ends, a JSON-RPC error answer for
    its request id takes its place, so the call that asked for it fails and the session lives on.
    `unanswered` counts over-long lines whose id could not be found, and `runaway` is set once a
    line has gone on past `runaway_bytes`: both leave a request waiting, so the server must fail.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES, runaway_bytes: int = RUNAWAY_LINE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.runaway_bytes = runaway_bytes
        self.dropped = 0
        self.unanswered = 0
        self.runaway = False
        self._buffer = bytearray()
        self._discarding = False
        self._head = b""
        self._tail = b""
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._take(chunk[start:end])
            lines.extend(self._end_line())
            start = end + 1
        self._take(chunk[start:])
        return lines

    def _take(self, piece: bytes) -> None:
        if self._discarding:
            self._size += len(piece)
            self._tail = (self._tail + piece)[-ID_SEARCH_BYTES:]
        else:
            self._buffer += piece
            if len(self._buffer) > self.max_bytes:
                self.dropped += 1
                self._head = bytes(self._buffer[:ID_SEARCH_BYTES])
                self._tail = bytes(self._buffer[-ID_SEARCH_BYTES:])
                self._size = len(self._buffer)
                self._buffer.clear()
                self._discarding = True
        self.runaway = self.runaway or (self._discarding and self._size > self.runaway_bytes)

    def _end_line(self) -> list[bytes]:
        if not self._discarding:
            line = bytes(self._buffer)
            self._buffer.clear()
            return [line]
        self._discarding = False
        answer = overlong_answer(self._head, self._tail, self._size, self.max_bytes)
        if answer is None:
            self.unanswered += 1
            return []
        return [answer]


def encode_line(message: SessionMessage) -> bytes:
    """One message from the session as a stdin line (raw calls arrive as ready-made lines)."""
    return message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


def parse_line(line: bytes, log: RotatingLog) -> SessionMessage | None:
    """One stdout line as a JSON-RPC message; blank lines are nothing, anything else is logged and skipped."""
    if not line.strip():
        return None
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except (pydantic.ValidationError, ValueError):
        shown = _CONTROL_RE.sub("?", line[:200].decode("utf-8", errors="replace"))
        log.note(f"ignored non-JSON-RPC stdout line: {shown}")
        return None


class StdoutRelay:
    """An upstream's stdout, line by line, to its session (or the raw lane); local and Docker alike.

    `feed` returns why the server must fail when a line can be neither relayed nor answered for
    (see LineBuffer), else None.
    """

    def __init__(
        self, raw: RawCalls, log: RotatingLog, send: Callable[[SessionMessage], Awaitable[None]]
    ) -> None:
        self.lines = LineBuffer()
        self.raw = raw
        self.log = log
        self.send = send
        self._dropped = 0

    async def feed(self, chunk: bytes) -> str | None:
        for line in self.lines.feed(chunk):
            if self.raw.take(line):
                continue
            message = parse_line(line, self.log)
            if message is not None:
                await self.send(message)
        if self.lines.dropped != self._dropped:
            self._dropped = self.lines.dropped
            self.log.note(f"stdout line over {MAX_LINE_BYTES} bytes dropped")
        if self.lines.runaway or self.lines.unanswered:
            how = "never ended" if self.lines.runaway else "had no request id we could answer"
            reason = f"upstream wrote a stdout line over {MAX_LINE_BYTES} bytes that {how}"
            self.log.note(reason)
            return reason
        return None


class StdinLines:
    """A local upstream's `Outbox` for raw calls: straight into the pipe while the stdin pump waits with
    nothing queued (no pass through the pump's task and trio's scheduler), queued behind the rest else."""

    def __init__(self, upstream: StdioUpstream) -> None:
        self.upstream = upstream

    def send_nowait(self, line: bytes) -> None:
        if rest := self.upstream.write_now(line):
            self.upstream.write_stream.send_nowait(rest)

    async def send(self, line: bytes) -> None:
        await self.upstream.write_stream.send(line)


@asynccontextmanager
async def running(
    pumps: tuple[Callable[[], Awaitable[None]], ...], stop: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """An upstream's pumps running while the block runs; `stop` (the staged stop) after it, whatever
    ends it, shielded, then the pumps are cancelled."""
    async with trio.open_nursery() as nursery:
        for pump in pumps:
            nursery.start_soon(pump)
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                await stop()
            nursery.cancel_scope.cancel()


class PipedUpstream:
    """An upstream spoken to over its stdin and stdout, local or in a container: the two in-memory
    streams an MCP ClientSession reads and writes, the raw lane beside it, and why it ended."""

    def __init__(self, log: RotatingLog) -> None:
        self.log = log
        self.closed = trio.Event()
        self.exit_reason: str | None = None
        self.read_send, self.read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        self.write_stream, self.write_receive = anyio.create_memory_object_stream[SessionMessage | bytes](16)
        self.raw = RawCalls()
        self.raw_lines: Outbox = self.write_stream
        """Where raw calls write their lines (services/worker/raw_calls.py)."""

    async def pump_stdin(self) -> None:
        """session -> stdin: each message (raw calls' ready-made lines as they are) one line."""
        try:
            async with self.write_receive:
                async for message in self.write_receive:
                    if not await self._write_stdin(
                        message if isinstance(message, bytes) else encode_line(message)
                    ):
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError, anyio.ClosedResourceError, OSError):
            self.exit_reason = self.exit_reason or "upstream stdin closed"
            self.closed.set()

    async def _write_stdin(self, data: bytes) -> bool:
        """Write `data` to the upstream's stdin; False when stdin was closed on purpose (stop pumping)."""
        raise NotImplementedError


class StdioUpstream(PipedUpstream):
    """A running stdio upstream and the two in-memory streams an MCP ClientSession reads and writes."""

    def __init__(self, child: process.Child, log: RotatingLog) -> None:
        super().__init__(log)
        self.child = child
        self.confinement = Confinement()
        popen = child.popen
        # Our own spawn (never an adopted process), with a pipe for each of the three streams.
        assert popen is not None and popen.stdin is not None
        assert popen.stdout is not None and popen.stderr is not None
        self._stdin_fd = os.dup(popen.stdin.fileno())
        self._stdin: trio.lowlevel.FdStream | None = trio.lowlevel.FdStream(self._stdin_fd)
        self.raw_lines = StdinLines(self)
        self._stdout = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
        self._stderr = trio.lowlevel.FdStream(os.dup(popen.stderr.fileno()))
        for pipe in (popen.stdin, popen.stdout, popen.stderr):
            pipe.close()

    async def pump_stdout(self) -> None:
        """stdout -> session, one JSON-RPC message per line, every line bounded."""
        relay = StdoutRelay(self.raw, self.log, self.read_send.send)
        try:
            async with self.read_send:
                while chunk := await self._stdout.receive_some(READ_CHUNK_BYTES):
                    if reason := await relay.feed(chunk):
                        self.exit_reason = reason  # a request waits for a line we cannot relay
                        return
            # stdout reached EOF: the process is usually exiting; its exit code says more than EOF does.
            with trio.move_on_after(EXIT_REASON_GRACE_S):
                await self.child.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.exit_reason = self.exit_reason or "upstream closed stdout"
            self.raw.close(self.exit_reason)
            self.closed.set()

    async def _write_stdin(self, data: bytes) -> bool:
        if self._stdin is None:
            return False
        await self._stdin.send_all(data)
        return True

    def write_now(self, line: bytes) -> bytes:
        """Write `line` to stdin at once if the stdin pump is idle with nothing queued (else the line would
        overtake what the session sent); what was not written, to be queued."""
        queue = self.write_receive.statistics()
        if self._stdin is None or queue.current_buffer_used or not queue.tasks_waiting_receive:
            return line
        try:
            written = os.write(self._stdin_fd, line)  # non-blocking (FdStream made it so)
        except OSError:  # full, or broken: the pump writes it, or finds out and says why
            return line
        return line[written:]

    async def pump_stderr(self) -> None:
        """stderr -> log file, continuously, whatever the volume."""
        try:
            while chunk := await self._stderr.receive_some(READ_CHUNK_BYTES):
                self.log.write(chunk)
        except (trio.ClosedResourceError, OSError):
            pass

    async def watch_exit(self) -> None:
        code = await self.child.wait()
        self.exit_reason = self.confinement.exit_reason() or (
            f"upstream exited with code {code}" if code >= 0 else f"upstream killed by signal {-code}"
        )
        self.log.note(self.exit_reason)
        self.closed.set()

    async def close_stdin(self) -> None:
        if self._stdin is not None:
            stdin, self._stdin = self._stdin, None
            await stdin.aclose()

    async def stop(self, close_timeout_s: float, kill_timeout_s: float) -> None:
        """The staged stop: stdin EOF, wait, SIGTERM the tree, poll, SIGKILL."""
        await self.close_stdin()
        tree_alive = True
        with trio.move_on_after(close_timeout_s):
            await self.child.wait()
            # The leader is gone; its group or adopted orphans may linger a moment.
            tree_alive = bool(await process.wait_all_gone(self._tree(), close_timeout_s))
        if tree_alive:
            self.log.note(
                f"no exit {close_timeout_s:g}s after stdin EOF: SIGTERM, SIGKILL after {kill_timeout_s:g}s"
            )
            survivors = await process.terminate_tree([self.child.pid], [self.child.pgid], kill_timeout_s)
            if survivors:
                logger.error("processes survived SIGKILL: %s", sorted(pid for pid, _ in survivors))
        for stream in (self._stdout, self._stderr):
            await stream.aclose()

    def _tree(self) -> set[process.ProcKey]:
        return process.live_tree([self.child.pid], [self.child.pgid], adopted_except=())


@asynccontextmanager
async def open_stdio_upstream(
    command: str,
    args: list[str],
    env: Mapping[str, str],
    working_dir: str | None,
    log: RotatingLog,
    close_timeout_s: float,
    kill_timeout_s: float,
    on_spawn: Callable[[process.Child], None] = lambda child: None,
    limits: ResourceLimits | None = None,
) -> AsyncIterator[StdioUpstream]:
    """Spawn the upstream in its cgroup and run its pipes; on exit, stop it with the staged stop and
    remove the cgroup."""
    confinement = Confinement.prepare(limits)
    try:
        child = process.spawn(
            [command, *args],
            env=upstream_environment(env),
            cwd=working_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=confinement.preexec,
        )
    except BaseException:
        with trio.CancelScope(shield=True):
            await confinement.release()
        raise
    confinement.spawned()
    upstream = StdioUpstream(child, log)
    upstream.confinement = confinement
    log.note(f"started pid {child.pid}" + (f" ({confinement.describe()})" if limits is not None else ""))
    on_spawn(child)

    async def stop() -> None:
        await upstream.stop(close_timeout_s, kill_timeout_s)
        await confinement.release()

    pumps = (upstream.pump_stdout, upstream.pump_stdin, upstream.pump_stderr, upstream.watch_exit)
    async with running(pumps, stop):
        yield upstream
