"""What an upstream asks while it serves a call: elicitation, sampling and roots.

The worker declares all three to its upstream (the `ClientSession` callbacks
below). Each question is put to the client of the call that caused it: the
worker sends it to the gateway (`UpstreamAsked`), which asks that client and
sends the answer back (`AskAnswered`).

Which call caused a question: the MCP wire does not say (a server-initiated
request carries no link to the request being served, and over stdio nothing
else does either), so a question belongs to the upstream's one call in
flight. With none in flight (roots/list at start-up, say) or several, no
client is asked: `roots/list` is answered with the server's configured
`roots` (default none) and elicitation and sampling are refused at once with
an error. A question never reaches a client other than the caller.

A 2026-era upstream asks inside its result instead (`InputRequiredResult`);
`answer_input_requests` puts those questions to the caller the same way, for
callers of the 2025 era, which the worker then retries the call for.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import mcp.types as types
import trio
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST
from pydantic import BaseModel, TypeAdapter

from bus.errors import UpstreamError
from bus.messages import AskAnswered, AskMethod, CallTool, UpstreamAsked
from services.worker.traces import upstream_meta

KIND: Final[dict[AskMethod, str]] = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}
INPUT_REQUIRED_MAX_ROUNDS: Final = 10
"""A 2026-era upstream that keeps asking past this many rounds of one call fails the call."""
STATE_ONLY_WAIT_S: Final = 0.05
"""An `InputRequiredResult` with no questions (only `requestState`) is retried after this long."""
_RESPONSES: Final = TypeAdapter[types.InputResponses](types.InputResponses)


@dataclass
class _Call:
    asks: tuple[AskMethod, ...]
    open: set[int] = field(default_factory=set)


@dataclass
class _Question:
    call_id: int
    done: trio.Event = field(default_factory=trio.Event)
    answer: AskAnswered | None = None


class AskRelay:
    """Attributes an upstream's questions to calls and relays them to the gateway."""

    def __init__(self, roots: list[str], send: Callable[[UpstreamAsked], Awaitable[None]]) -> None:
        self.roots = types.ListRootsResult.model_validate({"roots": [{"uri": uri} for uri in roots]})
        """The server's configured roots: the answer when no single caller can be asked."""
        self._send = send
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._questions: dict[int, _Question] = {}

    @contextmanager
    def serving(self, request_id: int, asks: tuple[AskMethod, ...]) -> Iterator[None]:
        """A call in flight; when it ends (answered, timed out, cancelled), its open questions end too."""
        call = _Call(asks)
        self._calls[request_id] = call
        try:
            yield
        finally:
            del self._calls[request_id]
            for ask_id in call.open:
                question = self._questions.get(ask_id)
                if question is not None and question.answer is None:
                    question.answer = AskAnswered(
                        ask_id=ask_id,
                        error="the call this question belongs to has ended",
                        code=INVALID_REQUEST,
                    )
                    question.done.set()

    def only_call(self) -> int | None:
        """The one call in flight, if exactly one is: what an unattributed message belongs to."""
        return next(iter(self._calls)) if len(self._calls) == 1 else None

    def answered(self, answer: AskAnswered) -> None:
        """The gateway's answer to one question (an unknown or late answer is dropped)."""
        question = self._questions.get(answer.ask_id)
        if question is not None and question.answer is None:
            question.answer = answer
            question.done.set()

    async def ask(
        self, method: AskMethod, params: dict[str, Any] | None, call_id: int | None = None
    ) -> dict[str, Any] | types.ErrorData:
        """Put one question to the caller of `call_id` (default: the one call in flight)."""
        if call_id is None:
            if len(self._calls) != 1:
                reason = "no call is in flight" if not self._calls else "several calls are in flight"
                return self._unattributed(method, reason)
            call_id = next(iter(self._calls))
        call = self._calls.get(call_id)
        if call is None:
            return types.ErrorData(
                code=INVALID_REQUEST, message="the call this question belongs to has ended"
            )
        if method not in call.asks:
            if method == "roots/list":
                return self.roots.model_dump(mode="json", by_alias=True, exclude_none=True)
            return types.ErrorData(
                code=INVALID_REQUEST, message=f"the calling client does not support {KIND[method]}"
            )
        ask_id = next(self._ids)
        question = _Question(call_id)
        self._questions[ask_id] = question
        call.open.add(ask_id)
        try:
            body = json.dumps(params or {}).encode()
            await self._send(UpstreamAsked(request_id=call_id, ask_id=ask_id, method=method, params=body))
            await question.done.wait()  # the call's own deadline ends the wait (`serving`)
        finally:
            del self._questions[ask_id]
            call.open.discard(ask_id)
        answer = question.answer
        assert answer is not None
        if answer.result is None:
            return types.ErrorData(
                code=answer.code if answer.code is not None else INVALID_REQUEST,
                message=answer.error or "the client did not answer",
            )
        result = json.loads(answer.result)
        if not isinstance(result, dict):
            return types.ErrorData(code=INVALID_REQUEST, message="the client's answer is not an object")
        return result

    def _unattributed(self, method: AskMethod, reason: str) -> dict[str, Any] | types.ErrorData:
        if method == "roots/list":
            return self.roots.model_dump(mode="json", by_alias=True, exclude_none=True)
        return types.ErrorData(
            code=INVALID_REQUEST,
            message=f"mcpproxy cannot tell which client to ask ({reason}), so it asks none",
        )

    # --- ClientSession callbacks -------------------------------------------

    async def on_sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        answer = await self.ask("sampling/createMessage", _dump(params))
        if isinstance(answer, types.ErrorData):
            return answer
        if params.tools:
            return types.CreateMessageResultWithTools.model_validate(answer)
        return types.CreateMessageResult.model_validate(answer)

    async def on_elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        answer = await self.ask("elicitation/create", _dump(params))
        return answer if isinstance(answer, types.ErrorData) else types.ElicitResult.model_validate(answer)

    async def on_list_roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        answer = await self.ask("roots/list", None)
        return answer if isinstance(answer, types.ErrorData) else types.ListRootsResult.model_validate(answer)

    async def answer_input_requests(
        self, call_id: int, requests: dict[str, types.InputRequest]
    ) -> dict[str, Any] | types.ErrorData:
        """A 2026-era upstream's `inputRequests`, put to the caller; its `inputResponses`, or an error."""
        responses: dict[str, Any] = {}
        refused: list[types.ErrorData] = []

        async def one(key: str, request: types.InputRequest) -> None:
            params = (
                request.params.model_dump(mode="json", by_alias=True, exclude_none=True)
                if request.params
                else None
            )
            answer = await self.ask(request.method, params, call_id)
            if isinstance(answer, types.ErrorData):
                refused.append(answer)
            else:
                responses[key] = answer

        async with trio.open_nursery() as nursery:
            for key, request in requests.items():
                nursery.start_soon(one, key, request)
        return refused[0] if refused else responses


async def call_answering(
    session: ClientSession, call: CallTool, asks: AskRelay, progress: ProgressFnT | None
) -> BaseModel:
    """`tools/call` upstream, with the 2026 era's questions-in-the-result handled for the caller.

    A caller of the 2026-07-28 era gets an `InputRequiredResult` as the upstream wrote it, and
    its retry (`inputResponses`, `requestState`) reaches the upstream as it sent it. For a caller
    of the 2025 era the worker puts the questions to it (as server-initiated requests, through
    the gateway) and retries the call with the answers until the upstream has its result.
    """
    arguments = json.loads(call.arguments) if call.arguments else None
    responses = _RESPONSES.validate_json(call.input_responses) if call.input_responses else None
    state = call.request_state
    for _ in range(INPUT_REQUIRED_MAX_ROUNDS + 1):
        result = await session.call_tool(
            call.tool,
            arguments,
            progress_callback=progress,
            input_responses=responses,
            request_state=state,
            allow_input_required=True,
            allow_claimed=True,
            meta=upstream_meta(call),
        )
        if not isinstance(result, types.InputRequiredResult) or call.input_required:
            return result
        responses = None
        if result.input_requests:
            answered = await asks.answer_input_requests(call.request_id, result.input_requests)
            if isinstance(answered, types.ErrorData):
                raise MCPError.from_error_data(answered)
            responses = _RESPONSES.validate_python(answered)
        else:
            await trio.sleep(STATE_ONLY_WAIT_S)
        state = result.request_state
    raise UpstreamError(
        f"the upstream asked for input more than {INPUT_REQUIRED_MAX_ROUNDS} times in one call"
    )


def _dump(params: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = params.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped
