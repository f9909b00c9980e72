"""What a lane is: a way for requests to be answered inside hypercorn's HTTP/1.1 protocol, without the
ASGI app (the hook: `LaneH11Protocol`, gateway/_hypercorn_internals.py; the gateway's lane:
gateway/mcp_lane.py). A lane names the requests it wants by their head, sees each whole, and answers or
declines it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol


@dataclass(frozen=True)
class LaneRequest:
    """A whole HTTP/1.1 request, as a lane sees it."""

    method: bytes
    target: bytes
    """The request target as sent: path and query string."""
    headers: list[tuple[bytes, bytes]]
    """Names in lower case, as h11 gives them."""
    http_version: str
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    body: bytes


@dataclass(frozen=True)
class LaneAnswer:
    """A sized answer: the content-length and hypercorn's `date` and `server` headers are added to it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Lane(Protocol):
    max_body_bytes: int
    """A request is held only with a Content-Length of at most this (a held body is kept in memory;
    a chunked or longer one goes to the app, which reads and bounds it as it comes)."""

    def wants(self, method: bytes, target: bytes) -> bool:
        """Whether to hold a request with this head for `answer` (called for every request: be quick)."""
        ...

    async def answer(self, request: LaneRequest) -> LaneAnswer | None:
        """The answer, or None to give the request to the ASGI app instead (before acting on it)."""
        ...


INTERNAL_ERROR: Final = LaneAnswer(
    500, [(b"content-type", b"application/json")], b'{"success": false, "error": "internal error"}'
)
"""What a lane that raised answers: logged here; the connection and the server carry on."""
