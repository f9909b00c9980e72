"""A minimal JSON-RPC client, the same for every proxy, so that the client's own cost is out of the comparison.

The SDK's streamable-HTTP client spends ~1.4 ms more CPU per call than its
stdio client, and on a 2-core machine that weighs on every HTTP proxy's
figures. This one is raw trio sockets: one persistent HTTP/1.1 connection,
each request one pre-built `send_all` with a Content-Length body, and a small
response parser (Content-Length or chunked bodies; a JSON body or SSE events).
It speaks:

- streamable HTTP, 2025 era (`open_session_call`): `initialize`, then
  `notifications/initialized`, then `tools/call` with the `Mcp-Session-Id` header;
- streamable HTTP, 2026-07-28 (`open_stateless_call`): no session; every POST
  carries the `_meta` envelope and the `Mcp-Protocol-Version` / `Mcp-Method` /
  `Mcp-Name` headers, as the SDK's `_make_modern_stamp` writes them;
- the legacy HTTP+SSE transport (`open_sse_call`): a GET event stream names the
  POST endpoint; each POST is answered 202 and its result arrives on the
  stream, read on a second connection;
- REST (`open_rest_call`): POST a JSON body, a 200 JSON answer (mcpo);
- newline-delimited JSON-RPC over stdio (`open_stdio_call`): the direct baseline.

Every answer is parsed and checked (the id, no error, `isError` false), as a
real client would. A server may close a keep-alive connection that idled
(uvicorn, hypercorn and node close after 5 s); the next request then opens a
new one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Final
from urllib.parse import urlsplit

import trio

from bench.clients import ECHO_ARGV, MESSAGE, Call, CallFailedError
from bench.processes import LEFT_BEHIND

HANDSHAKE_VERSION: Final = "2025-11-25"
MODERN_VERSION: Final = "2026-07-28"
CLIENT_INFO: Final = {"name": "mcpproxy-bench-minimal", "version": "1"}
OPEN_TIMEOUT_S: Final = 60.0
STDIO_EXIT_S: Final = 5.0
"""An echo server exits within ~0.2 s of stdin EOF; after this it is killed."""
RECEIVE_BYTES: Final = 65536
CHARS_SHOWN: Final = 300


class WireError(RuntimeError):
    """The server answered something this client cannot take as a well-formed HTTP or JSON-RPC answer."""


class ConnectionDroppedError(WireError):
    """The server closed the connection before answering (it may have timed out an idle keep-alive)."""


class _Buffered:
    """A byte stream with a receive buffer: lines, exact counts and HTTP message framing."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self) -> None:
        data = await self._stream.receive_some(RECEIVE_BYTES)
        if not data:
            raise ConnectionDroppedError("the server closed the connection")
        self._buffer += data

    async def until(self, marker: bytes) -> bytes:
        """Everything up to `marker`, consumed with it."""
        while (end := self._buffer.find(marker)) < 0:
            await self._fill()
        found = bytes(self._buffer[:end])
        del self._buffer[: end + len(marker)]
        return found

    async def exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._fill()
        found = bytes(self._buffer[:count])
        del self._buffer[:count]
        return found

    async def head(self) -> tuple[int, dict[bytes, bytes]]:
        """An HTTP response's status and headers (names lower-cased)."""
        lines = (await self.until(b"\r\n\r\n")).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise WireError(f"not an HTTP/1.x status line: {lines[0][:CHARS_SHOWN]!r}")
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def chunk(self) -> bytes:
        """The next chunk of a chunked body; b"" for the last one (its trailers consumed)."""
        size = int((await self.until(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while await self.until(b"\r\n"):
                pass
            return b""
        data = await self.exactly(size + 2)
        return data[:size]

    async def body(self, headers: dict[bytes, bytes]) -> bytes:
        if (length := headers.get(b"content-length")) is not None:
            return await self.exactly(int(length))
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while part := await self.chunk():
                parts.append(part)
            return b"".join(parts)
        raise WireError(f"a response with neither Content-Length nor chunked encoding: {headers}")


class Connection:
    """One keep-alive HTTP/1.1 connection to `host:port`; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._stream: trio.SocketStream | None = None
        self.reader: _Buffered | None = None
        self.reconnects = 0

    async def _connected(self) -> tuple[trio.SocketStream, _Buffered]:
        if self._stream is None or self.reader is None:
            self._stream = await trio.open_tcp_stream(self.host, self.port)
            self.reader = _Buffered(self._stream)
        return self._stream, self.reader

    async def send(self, request: bytes) -> _Buffered:
        stream, reader = await self._connected()
        await stream.send_all(request)
        return reader

    async def request(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send a whole request; its status, headers and body. Once, on a fresh connection if needed."""
        try:
            reader = await self.send(request)
            status, headers = await reader.head()
        except (ConnectionDroppedError, trio.BrokenResourceError):
            # Closed while idle: a server may, between requests. Asking again on a new connection is
            # what every HTTP client does; a second failure is the server's.
            await self.aclose()
            self.reconnects += 1
            reader = await self.send(request)
            status, headers = await reader.head()
        body = await reader.body(headers)
        if headers.get(b"connection", b"").lower() == b"close":
            await self.aclose()
        return status, headers, body

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream, self.reader = self._stream, None, None
            await stream.aclose()


class _Poster:
    """POSTs of JSON bodies to one URL over one `Connection`, with fixed headers."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = parts.netloc
        self.connection = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
        self.headers = {"Content-Type": "application/json", **headers}

    def prebuilt(self, extra: dict[str, str] | None = None) -> tuple[bytes, bytes]:
        """The request up to its Content-Length value, and the blank line after it."""
        head = "".join(f"{name}: {value}\r\n" for name, value in {**self.headers, **(extra or {})}.items())
        start = f"POST {self.target} HTTP/1.1\r\nHost: {self.authority}\r\n{head}Content-Length: "
        return start.encode(), b"\r\n\r\n"

    async def post(
        self, body: bytes, extra: dict[str, str] | None = None
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        start, end = self.prebuilt(extra)
        return await self.connection.request(start + str(len(body)).encode() + end + body)

    def tool_call(self, body_parts: tuple[bytes, bytes], ids: _Counter, extra: dict[str, str] | None) -> Call:
        """One tools/call per await, each with the next id, answered in its HTTP response (JSON or SSE)."""
        start, end = self.prebuilt(extra)
        prefix, suffix = body_parts
        connection = self.connection

        async def call() -> None:
            request_id = ids.next()
            body = prefix + str(request_id).encode() + suffix
            answer = await connection.request(start + str(len(body)).encode() + end + body)
            http_answer(*answer, request_id)

        return call


def call_body_parts(
    tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None
) -> tuple[bytes, bytes]:
    """A tools/call request split around its id: `prefix + id + suffix`."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    suffix = json.dumps({"method": "tools/call", "params": params}, separators=(",", ":"))[1:]
    return b'{"jsonrpc":"2.0","id":', b"," + suffix.encode()


def _request(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode()


def _notification(method: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method}).encode()


def sse_data(body: bytes) -> list[bytes]:
    """The `data` of every event in an SSE body (multi-line data joined with newlines)."""
    found = []
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
        if lines:
            found.append(b"\n".join(lines))
    return found


def answer_of(message: Any, request_id: int) -> dict[str, Any]:
    """The result of a decoded JSON-RPC response to `request_id`; CallFailedError for an error or a tool error."""
    if not isinstance(message, dict) or message.get("id") != request_id:
        raise WireError(f"not the answer to request {request_id}: {str(message)[:CHARS_SHOWN]}")
    result = message.get("result")
    if "error" in message or not isinstance(result, dict) or result.get("isError"):
        raise CallFailedError(f"request {request_id} answered an error: {str(message)[:CHARS_SHOWN]}")
    return result


def is_response_to(message: Any, request_id: int) -> bool:
    """Whether a decoded JSON-RPC message answers `request_id` (else: a notification or request of the server's)."""
    return isinstance(message, dict) and message.get("id") == request_id and "method" not in message


def http_answer(status: int, headers: dict[bytes, bytes], body: bytes, request_id: int) -> dict[str, Any]:
    """The result in a streamable-HTTP answer: a JSON body, or the SSE event that carries the response."""
    if status != 200:
        raise WireError(f"HTTP {status} to request {request_id}: {body[:CHARS_SHOWN]!r}")
    if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
        for data in sse_data(body):
            if is_response_to(message := json.loads(data), request_id):
                return answer_of(message, request_id)
        raise WireError(f"no answer to request {request_id} in the event stream: {body[:CHARS_SHOWN]!r}")
    return answer_of(json.loads(body), request_id)


class _Counter:
    def __init__(self, first: int) -> None:
        self.value = first

    def next(self) -> int:
        self.value += 1
        return self.value


async def _warmed(call: Call) -> Call:
    """`call`, once it has answered a first call (within OPEN_TIMEOUT_S): connected and ready."""
    with trio.fail_after(OPEN_TIMEOUT_S):
        await call()
    return call


@asynccontextmanager
async def open_session_call(
    url: str, tool: str, arguments: dict[str, Any] = MESSAGE, version: str = HANDSHAKE_VERSION
) -> AsyncIterator[Call]:
    """tools/call on a 2025-era streamable-HTTP session (initialize + notifications/initialized first)."""
    poster = _Poster(url, {"Accept": "application/json, text/event-stream"})
    try:
        with trio.fail_after(OPEN_TIMEOUT_S):
            initialize = {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO}
            status, headers, body = await poster.post(_request(1, "initialize", initialize))
            http_answer(status, headers, body, 1)
            session = {"Mcp-Protocol-Version": version}
            if (session_id := headers.get(b"mcp-session-id")) is not None:
                session["Mcp-Session-Id"] = session_id.decode()
            status, _, body = await poster.post(_notification("notifications/initialized"), session)
            if status != 202:
                raise WireError(f"notifications/initialized answered HTTP {status}: {body[:CHARS_SHOWN]!r}")
        call = poster.tool_call(call_body_parts(tool, arguments), _Counter(1), session)
        yield await _warmed(call)
    finally:
        await poster.connection.aclose()


@asynccontextmanager
async def open_stateless_call(
    url: str, tool: str, arguments: dict[str, Any] = MESSAGE, version: str = MODERN_VERSION
) -> AsyncIterator[Call]:
    """tools/call in the 2026-07-28 era: no session; the `_meta` envelope and routing headers on every POST."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    poster = _Poster(
        url,
        {
            "Accept": "application/json, text/event-stream",
            "Mcp-Protocol-Version": version,
            "Mcp-Method": "tools/call",
            # Tool names here are printable ASCII, so the SDK's encode_header_value leaves them as they are.
            "Mcp-Name": tool,
        },
    )
    call = poster.tool_call(call_body_parts(tool, arguments, meta), _Counter(0), None)
    try:
        yield await _warmed(call)
    finally:
        await poster.connection.aclose()


@asynccontextmanager
async def open_rest_call(url: str, body: dict[str, Any] = MESSAGE) -> AsyncIterator[Call]:
    """POST `body` to a REST tool endpoint (mcpo's OpenAPI routes); a 200 JSON answer."""
    poster = _Poster(url, {"Accept": "application/json"})
    start, end = poster.prebuilt()
    payload = json.dumps(body).encode()
    request = start + str(len(payload)).encode() + end + payload
    connection = poster.connection

    async def call() -> None:
        status, _, answer = await connection.request(request)
        if status != 200:
            raise CallFailedError(f"POST {url} answered HTTP {status}: {answer[:CHARS_SHOWN]!r}")
        json.loads(answer)

    try:
        yield await _warmed(call)
    finally:
        await connection.aclose()


class _EventStream:
    """The events of a legacy-SSE GET stream, read chunk by chunk as they come."""

    def __init__(self, reader: _Buffered) -> None:
        self._reader = reader
        self._pending = b""

    async def next_data(self) -> tuple[bytes, bytes]:
        """The next event's (event name, data)."""
        while (end := self._pending.find(b"\n\n")) < 0:
            chunk = await self._reader.chunk()
            if not chunk:
                raise ConnectionDroppedError("the event stream ended")
            self._pending += chunk.replace(b"\r\n", b"\n")
        event, self._pending = self._pending[:end], self._pending[end + 2 :]
        name, data = b"message", []
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
        return name, b"\n".join(data)

    async def answer(self, request_id: int) -> dict[str, Any]:
        while True:
            name, data = await self.next_data()
            if name == b"message" and is_response_to(message := json.loads(data), request_id):
                return answer_of(message, request_id)


@asynccontextmanager
async def open_sse_call(url: str, tool: str, arguments: dict[str, Any] = MESSAGE) -> AsyncIterator[Call]:
    """tools/call over the legacy HTTP+SSE transport: POSTs on one connection, answers on the GET stream's."""
    parts = urlsplit(url)
    stream = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    poster: _Poster | None = None
    try:
        with trio.fail_after(OPEN_TIMEOUT_S):
            get = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n"
            reader = await stream.send(get.encode())
            status, headers = await reader.head()
            if status != 200 or headers.get(b"transfer-encoding", b"").lower() != b"chunked":
                raise WireError(
                    f"GET {url} answered HTTP {status} {headers} (an open chunked event stream expected)"
                )
            events = _EventStream(reader)
            name, endpoint = await events.next_data()
            if name != b"endpoint":
                raise WireError(f"the event stream began with {name!r}, not the endpoint")
            poster = _Poster(f"{parts.scheme}://{parts.netloc}{endpoint.decode()}", {})

            async def accepted(body: bytes) -> None:
                assert poster is not None
                status, _, answer = await poster.post(body)
                if status != 202:
                    raise WireError(f"POST {poster.target} answered HTTP {status}: {answer[:CHARS_SHOWN]!r}")

            initialize = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
            await accepted(_request(1, "initialize", initialize))
            await events.answer(1)
            await accepted(_notification("notifications/initialized"))
        start, end = poster.prebuilt()
        prefix, suffix = call_body_parts(tool, arguments)
        ids = _Counter(1)
        connection = poster.connection

        async def call() -> None:
            request_id = ids.next()
            body = prefix + str(request_id).encode() + suffix
            status, _, answer = await connection.request(start + str(len(body)).encode() + end + body)
            if status != 202:
                raise WireError(f"tools/call POST answered HTTP {status}: {answer[:CHARS_SHOWN]!r}")
            await events.answer(request_id)

        yield await _warmed(call)
    finally:
        if poster is not None:
            await poster.connection.aclose()
        await stream.aclose()


@asynccontextmanager
async def open_stdio_call(
    argv: tuple[str, ...] = ECHO_ARGV, tool: str = "echo", arguments: dict[str, Any] = MESSAGE
) -> AsyncIterator[Call]:
    """tools/call as newline-delimited JSON-RPC on a fresh server's stdin and stdout: the direct baseline."""
    process = await trio.lowlevel.open_process(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, lines = process.stdin, _Buffered(process.stdout)
    try:
        with trio.fail_after(OPEN_TIMEOUT_S):
            initialize = {"protocolVersion": HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
            await stdin.send_all(_request(1, "initialize", initialize) + b"\n")
            answer_of(json.loads(await lines.until(b"\n")), 1)
            await stdin.send_all(_notification("notifications/initialized") + b"\n")
        prefix, suffix = call_body_parts(tool, arguments)
        ids = _Counter(1)

        async def call() -> None:
            request_id = ids.next()
            await stdin.send_all(prefix + str(request_id).encode() + suffix + b"\n")
            while not is_response_to(message := json.loads(await lines.until(b"\n")), request_id):
                pass  # a notification of the server's: not this call's answer
            answer_of(message, request_id)

        yield await _warmed(call)
    finally:
        with trio.CancelScope(shield=True):
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stdin.aclose()
            with trio.move_on_after(STDIO_EXIT_S):
                await process.wait()
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(STDIO_EXIT_S):
                    await process.wait()
            if process.returncode is None:
                LEFT_BEHIND.add(process.pid)
            await process.stdout.aclose()
