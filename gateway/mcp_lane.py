"""The MCP fast lane's calls, answered inside the HTTP/1.1 protocol instead of through the ASGI app.

Every `tools/call` the fast lane answers (gateway/fastpath.py) used to pass
hypercorn's per-request machinery (an HTTPStream, a new task, ASGI message
dicts) and Starlette's routing and middleware before reaching it. Here a POST
to an MCP path is answered in the connection's own task
(`LaneH11Protocol`, gateway/_hypercorn_internals.py), with the same parts in
the same order as the app:

1. the front door's checks (`FrontDoor.admit_quietly`: Host, Origin, body
   size, key or credential, lockout, the profile of a `/mcp/p/<name>` path);
2. the endpoint of the path, as the app's routes map it;
3. its fast lane (`FastPath.try_answer`): quarantine, pinning, tiers,
   redaction and the activity log are in the call it makes, as on every path;
4. `X-Request-Id`, as the front door adds it.

Anything one of them would not answer itself (a refusal, a handshake, a
client that can be asked, a stream) is declined before anything was done, and
hypercorn gives the request to the app as if it had never been held: what a
client sees does not depend on which way its request went.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote

from starlette.types import Scope

from gateway.access import NOBODY, serving
from gateway.fastpath import Answer, FastPath
from gateway.frontdoor import MCP_PREFIX, REQUEST_ID_HEADER, FrontDoor, error_body
from gateway.http_lane import LaneAnswer, LaneRequest

logger = logging.getLogger(__name__)

_MCP_PREFIX: Final = MCP_PREFIX.encode()


class McpLane:
    """The gateway's `Lane`: POSTs to the MCP paths, answered by their endpoint's fast lane."""

    def __init__(self, door: FrontDoor, endpoints: Mapping[str, FastPath]) -> None:
        self.door = door
        self.endpoints = endpoints
        """Each MCP path the app routes to a fast-lane endpoint (after a profile's prefix is taken off)."""
        self.max_body_bytes = door.max_body_bytes
        self.answered = 0
        self.declined = 0

    def counts(self) -> dict[str, int]:
        return {"answered": self.answered, "declined": self.declined}

    def wants(self, method: bytes, target: bytes) -> bool:
        return method == b"POST" and target.startswith(_MCP_PREFIX)

    async def answer(self, request: LaneRequest) -> LaneAnswer | None:
        # A target that is not ASCII goes to hypercorn, which refuses it and says why.
        answer = await self._answer(request) if request.target.isascii() else None
        if answer is None:
            self.declined += 1
        else:
            self.answered += 1
        return answer

    async def _answer(self, request: LaneRequest) -> LaneAnswer | None:
        request_id = uuid.uuid4().hex
        scope = _scope(request, request_id)
        if not self.door.admit_quietly(scope):
            return None
        try:
            endpoint = self.endpoints.get(scope["path"])
            answer = await endpoint.try_answer(scope, request.body) if endpoint is not None else None
        except Exception:  # the app's error boundary, as the front door would see it: logged, a 500
            logger.exception("POST %s failed", scope["path"])
            body = error_body("internal error", request_id)
            answer = Answer(500, [(b"content-type", b"application/json")], body)
        finally:
            serving(NOBODY)  # the connection's task goes on to other requests: the identity was this one's
        if answer is None:
            return None
        headers = [*answer.headers, (REQUEST_ID_HEADER, request_id.encode())]
        return LaneAnswer(answer.status, headers, answer.body)


def _scope(request: LaneRequest, request_id: str) -> Scope:
    """The ASGI scope hypercorn would give the app for `request` (what the front door and the fast
    lane read of it)."""
    path, _, query = request.target.partition(b"?")
    return {
        "type": "http",
        "http_version": request.http_version,
        "method": request.method.decode("ascii"),
        "scheme": "http",
        "path": unquote(path.decode("ascii")),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": request.headers,
        "client": request.client,
        "server": request.server,
        "state": {"request_id": request_id},
    }
