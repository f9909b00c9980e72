"""The attach stream of a container: Docker's frame multiplexing, bounded lines, why a container ended."""

from __future__ import annotations

import struct

from services.worker.docker_stdio import STDERR, STDOUT, FrameDecoder, exit_description
from services.worker.stdio import LineBuffer


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def joined(pieces: list[tuple[int, bytes]]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for stream, payload in pieces:
        out[stream] = out.get(stream, b"") + payload
    return out


def test_frames_are_demultiplexed_whatever_the_chunk_boundaries() -> None:
    data = frame(STDOUT, b'{"jsonrpc":"2.0"}\n') + frame(STDERR, b"warming up\n") + frame(STDOUT, b"tail")
    expected = {STDOUT: b'{"jsonrpc":"2.0"}\ntail', STDERR: b"warming up\n"}
    for size in (1, 3, 7, 8, 9, 64, len(data)):
        decoder = FrameDecoder()
        pieces = []
        for start in range(0, len(data), size):
            pieces += decoder.feed(data[start : start + size])
        assert joined(pieces) == expected, size


def test_a_frame_claiming_gigabytes_is_passed_on_as_it_arrives_not_buffered() -> None:
    decoder = FrameDecoder()
    pieces = decoder.feed(struct.pack(">BxxxL", STDOUT, 4 * 1024**3 - 1) + b"x" * 1000)
    assert pieces == [(STDOUT, b"x" * 1000)]
    assert decoder.feed(b"y" * 10) == [(STDOUT, b"y" * 10)]


def test_empty_frames_are_skipped() -> None:
    assert FrameDecoder().feed(frame(STDOUT, b"") + frame(STDOUT, b"a")) == [(STDOUT, b"a")]


def test_lines_are_split_and_an_overlong_line_is_dropped_whole() -> None:
    lines = LineBuffer(max_bytes=10)
    assert lines.feed(b"one\ntw") == [b"one"]
    assert lines.feed(b"o\n") == [b"two"]
    assert lines.feed(b"x" * 11) == []
    assert lines.feed(b"yyy\nfour\n") == [b"four"]
    assert lines.dropped == 1


def test_why_a_container_ended_is_read_from_its_state() -> None:
    assert exit_description({"Running": False, "ExitCode": 3}) == "upstream exited with code 3"
    assert "out of memory" in exit_description({"Running": False, "ExitCode": 137, "OOMKilled": True})
    assert exit_description(None) == "the container was removed outside the proxy"
    assert exit_description({"Running": True}) == "upstream closed its output streams"


def test_an_overlong_answer_becomes_an_error_for_its_request_id() -> None:
    lines = LineBuffer(max_bytes=50, runaway_bytes=1000)
    assert lines.feed(b'{"jsonrpc":"2.0","id":7,"result":{"t":"' + b"a" * 100) == []
    answered = lines.feed(b'"}}\nnext\n')
    assert answered[0].startswith(b'{"jsonrpc":"2.0","id":7,"error":') and answered[1] == b"next"
    node_order = b'{"result":{"t":"' + b"a" * 100 + b'"},"jsonrpc":"2.0","id":"r-9"}\n'
    assert lines.feed(node_order)[0].startswith(b'{"jsonrpc":"2.0","id":"r-9","error":')
    assert lines.dropped == 2 and lines.unanswered == 0 and not lines.runaway


def test_an_overlong_line_with_no_id_or_no_end_is_flagged() -> None:
    lines = LineBuffer(max_bytes=50, runaway_bytes=1000)
    assert lines.feed(b'{"method":"n","params":{"t":"' + b"a" * 100 + b'"}}\n') == []
    assert lines.unanswered == 1
    lines.feed(b"z" * 2000)
    assert lines.runaway
