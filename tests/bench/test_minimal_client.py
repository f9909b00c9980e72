"""The bench's minimal JSON-RPC client: answers as JSON or SSE, chunked bodies, idle connections, stdio."""

from __future__ import annotations

import json
import os

import pytest
import trio

from bench import minimal_client
from bench.clients import CallFailedError
from bench.processes import children

DEADLINE_S = 30.0


def test_an_answer_is_taken_from_a_json_body_or_from_the_sse_event_that_carries_its_id() -> None:
    result = {"content": [], "isError": False}
    json_body = json.dumps({"jsonrpc": "2.0", "id": 7, "result": result}).encode()
    sse_body = (
        b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n'
        b"event: message\r\ndata: " + json_body + b"\r\n\r\n"
    )
    json_headers = {b"content-type": b"application/json"}
    sse_headers = {b"content-type": b"text/event-stream"}

    assert minimal_client.http_answer(200, json_headers, json_body, 7) == result
    assert minimal_client.http_answer(200, sse_headers, sse_body, 7) == result
    with pytest.raises(minimal_client.WireError):
        minimal_client.http_answer(200, json_headers, json_body, 8)
    with pytest.raises(minimal_client.WireError):
        minimal_client.http_answer(404, json_headers, json_body, 7)


def test_a_tool_error_or_a_json_rpc_error_is_a_failed_call() -> None:
    with pytest.raises(CallFailedError):
        minimal_client.answer_of({"jsonrpc": "2.0", "id": 1, "result": {"isError": True}}, 1)
    with pytest.raises(CallFailedError):
        minimal_client.answer_of({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601}}, 1)


async def _serve_two_connections(listener: trio.SocketListener, bodies: list[dict[str, object]]) -> None:
    """Answer the first request chunked as SSE and close (a server ending an idle keep-alive), then JSON."""
    for number in range(2):
        stream = await listener.accept()
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive_some()
        head, _, body = buffer.partition(b"\r\n\r\n")
        fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:])
        length = int(fields[b"content-length"])
        while len(body) < length:
            body += await stream.receive_some()
        request = json.loads(body)
        bodies.append(request)
        answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": {"isError": False}}).encode()
        if number == 0:
            event = b"event: message\ndata: " + answer + b"\n\n"
            half = len(event) // 2
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (event[:half], event[half:]))
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            await stream.send_all(head + chunks + b"0\r\n\r\n")
        else:
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            await stream.send_all(head % len(answer) + answer)
        await stream.aclose()


async def test_a_stateless_call_reads_chunked_sse_and_reconnects_once_the_server_closed() -> None:
    bodies: list[dict[str, object]] = []
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listener.socket.getsockname()[1]
            nursery.start_soon(_serve_two_connections, listener, bodies)
            url = f"http://127.0.0.1:{port}/mcp/all"
            async with minimal_client.open_stateless_call(url, "echo__echo") as call:
                await call()
            await listener.aclose()

    first = bodies[0]
    assert first["method"] == "tools/call"
    assert first["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"  # type: ignore[index]
    assert [body["id"] for body in bodies] == [1, 2]


async def test_a_stdio_call_answers_and_its_server_is_gone_afterwards() -> None:
    before = children(os.getpid())
    with trio.fail_after(DEADLINE_S):
        async with minimal_client.open_stdio_call() as call:
            spawned = children(os.getpid()) - before
            for _ in range(3):
                await call()
    assert len(spawned) == 1
    assert not (children(os.getpid()) & spawned)
