"""Putting an upstream's questions to the client whose call caused them.

An upstream may ask, while it serves a call, for an answer from the user
(`elicitation/create`), a completion from the client's model
(`sampling/createMessage`) or the client's roots (`roots/list`). The worker
relays each question with the call it belongs to (services/worker/asks.py);
here it reaches that call's client, in the client's own era:

- **2025-11-25** (a session): as a server-initiated request on the call's own
  response stream (`session_asking`), answered by the client like any request.
- **2026-07-28** (no session, no server-initiated requests): the call answers
  `InputRequiredResult` with the questions and a `requestState` of ours; the
  client retries the call with its `inputResponses`, and the retry delivers
  them to the call still running behind it (`InputRounds`). Each round's
  `requestState` is a fresh random token, good for one retry.

A client asked for something it did not declare is never asked: the worker
refuses that question at once. A `requestState` that is not ours belongs to a
2026-era upstream and is passed to it with the client's answers, unchanged.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import mcp.types as types
import trio
import trio.lowlevel
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import INVALID_PARAMS, INVALID_REQUEST
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from bus.messages import AskMethod

STATE_PREFIX: Final = "mcpproxy."
"""Marks a `requestState` minted here (any other is an upstream's, passed on as it is)."""
HELD_TTL_S: Final = 300.0
"""How long a finished call whose client has not come back for its result is kept."""

ToolAnswer = types.CallToolResult | types.InputRequiredResult


class AskRefusedError(Exception):
    """The client declined, failed or could not be asked; the upstream gets this JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Asking:
    """What a caller can be asked (`methods`), and how to ask it."""

    methods: tuple[AskMethod, ...]
    ask: Callable[[AskMethod, dict[str, Any]], Awaitable[dict[str, Any]]]
    """Returns the client's result (a JSON object) or raises AskRefusedError."""


def offered(capabilities: types.ClientCapabilities | None) -> tuple[AskMethod, ...]:
    """The questions a client declared it can answer."""
    if capabilities is None:
        return ()
    methods: list[AskMethod] = []
    if capabilities.elicitation is not None:
        methods.append("elicitation/create")
    if capabilities.sampling is not None:
        methods.append("sampling/createMessage")
    if capabilities.roots is not None:
        methods.append("roots/list")
    return tuple(methods)


def refusal(
    capabilities: types.ClientCapabilities | None, method: AskMethod, params: dict[str, Any]
) -> str | None:
    """Why this client cannot take this question even though it declared the method, if it cannot."""
    if capabilities is None:
        return None
    if method == "elicitation/create" and params.get("mode") == "url":
        elicitation = capabilities.elicitation
        if elicitation is not None and elicitation.url is None:
            return "the calling client does not support URL-mode elicitation"
    if method == "sampling/createMessage" and params.get("tools"):
        sampling = capabilities.sampling
        if sampling is not None and sampling.tools is None:
            return "the calling client does not support sampling with tools"
    return None


def _models(method: AskMethod, params: dict[str, Any]) -> tuple[type[BaseModel], type[BaseModel]]:
    if method == "elicitation/create":
        return types.ElicitRequest, types.ElicitResult
    if method == "sampling/createMessage":
        result = types.CreateMessageResultWithTools if params.get("tools") else types.CreateMessageResult
        return types.CreateMessageRequest, result
    return types.ListRootsRequest, types.ListRootsResult


def is_modern(ctx: Any) -> bool:
    """The request speaks the 2026-07-28 era (no session; questions go in the result)."""
    return getattr(ctx, "protocol_version", None) in MODERN_PROTOCOL_VERSIONS


def session_asking(ctx: Any) -> Asking | None:
    """A 2025-era client: each question is a server-initiated request on the call's response stream."""
    session = ctx.session
    capabilities = session.client_capabilities
    methods = offered(capabilities)
    if not methods:
        return None

    async def ask(method: AskMethod, params: dict[str, Any]) -> dict[str, Any]:
        if (reason := refusal(capabilities, method, params)) is not None:
            raise AskRefusedError(INVALID_REQUEST, reason)
        request_type, result_type = _models(method, params)
        request = request_type.model_validate({"method": method, "params": params or None})
        try:
            result = await session.send_request(
                request, result_type, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
            )
        except MCPError as exc:
            raise AskRefusedError(exc.code, exc.message) from exc
        dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped

    return Asking(methods, ask)


@dataclass
class Question:
    """An upstream's question waiting for a 2026-era client, who answers it in a later request."""

    method: AskMethod
    params: dict[str, Any]
    done: trio.Event = field(default_factory=trio.Event)
    answer: dict[str, Any] | None = None
    error: str | None = None

    def as_input_request(self) -> dict[str, Any]:
        """The entry of `inputRequests` that asks it."""
        return {"method": self.method, "params": self.params} if self.params else {"method": self.method}


class _HeldCall:
    """A 2026-era client's call, kept running between the client's rounds."""

    def __init__(self, name: str, capabilities: types.ClientCapabilities | None) -> None:
        self.name = name
        self.capabilities = capabilities
        self.token = ""
        self._keys = itertools.count(1)
        self._asked: dict[str, Question] = {}
        """Questions waiting for the client, by their `inputRequests` key."""
        self._unsent: list[str] = []
        self._changed = trio.Event()
        self.result: ToolAnswer | None = None
        self.failure: BaseException | None = None
        self.finished = trio.Event()
        self.collected = trio.Event()

    async def ask(self, method: AskMethod, params: dict[str, Any]) -> dict[str, Any]:
        if (reason := refusal(self.capabilities, method, params)) is not None:
            raise AskRefusedError(INVALID_REQUEST, reason)
        key = f"{method.partition('/')[0]}-{next(self._keys)}"
        question = Question(method, params)
        self._asked[key] = question
        self._unsent.append(key)
        self._changed.set()
        try:
            await question.done.wait()  # the call's deadline (the worker's) ends this wait
        finally:
            self._asked.pop(key, None)
        if question.answer is None:
            raise AskRefusedError(INVALID_REQUEST, question.error or "the client did not answer")
        return question.answer

    def answer(self, responses: dict[str, Any]) -> None:
        """The client's retry: its answers go to the questions it was sent; any it left out are refused."""
        for key, question in list(self._asked.items()):
            if key in self._unsent:
                continue
            response = responses.get(key)
            if isinstance(response, dict):
                question.answer = response
            else:
                question.error = "the client's retry carried no answer to this question"
            question.done.set()

    async def run(self, start: Callable[[], Awaitable[ToolAnswer]]) -> None:
        try:
            self.result = await start()
        except Exception as exc:  # task boundary: the client's next round raises it
            self.failure = exc
        finally:
            self.finished.set()
            self._changed.set()

    async def next_step(self) -> ToolAnswer | None:
        """The call's result, or None once questions wait to be sent (`pending_requests`)."""
        while True:
            if self.finished.is_set():
                self.collected.set()
                if self.failure is not None:
                    raise self.failure
                assert self.result is not None
                return self.result
            if self._unsent:
                await trio.lowlevel.checkpoint()  # questions asked together go out together
                return None
            await self._changed.wait()
            self._changed = trio.Event()

    def pending_requests(self) -> dict[str, Any]:
        requests = {key: self._asked[key].as_input_request() for key in self._unsent if key in self._asked}
        self._unsent.clear()
        return requests


class Background:
    """Calls that outlive the request that started them run in `run`'s nursery (the gateway's
    lifespan runs it): held input rounds here, extension tasks (gateway/ext_tasks.py)."""

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()


class InputRounds(Background):
    """2026-era calls whose upstream asks something, held between the client's rounds.

    Shared by both MCP endpoints; a call outlives the HTTP request that returned its first
    `InputRequiredResult`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[str, _HeldCall] = {}

    async def call(
        self,
        ctx: Any,
        params: types.CallToolRequestParams,
        context: Any,
        run: Callable[[Any], Awaitable[ToolAnswer]],
    ) -> ToolAnswer:
        """One `tools/call` from the SDK's handler: `run(context)` makes the call, with `context`
        (a CallContext) told how to ask this client."""
        if not is_modern(ctx):
            return await run(replace(context, asking=session_asking(ctx)))
        state = params.request_state
        if state is not None and state.startswith(STATE_PREFIX):
            held = self._held.pop(state, None)
            if held is None or held.name != params.name:
                raise MCPError(
                    INVALID_PARAMS,
                    "requestState is unknown or was used already: call the tool again without it",
                )
            held.answer(
                {
                    key: value.model_dump(mode="json", by_alias=True, exclude_none=True)
                    for key, value in (params.input_responses or {}).items()
                }
            )
            return await self._step(held)
        context = replace(
            context,
            input_required=True,
            request_state=state,
            input_responses=_responses_json(params.input_responses),
        )
        capabilities = ctx.session.client_capabilities
        methods = offered(capabilities)
        if not methods or self._nursery is None:
            return await run(context)
        held = _HeldCall(params.name, capabilities)
        self._nursery.start_soon(self._keep, held, run, replace(context, asking=Asking(methods, held.ask)))
        return await self._step(held)

    async def _step(self, held: _HeldCall) -> ToolAnswer:
        outcome = await held.next_step()
        if outcome is not None:
            return outcome
        held.token = STATE_PREFIX + secrets.token_urlsafe(32)
        self._held[held.token] = held
        return types.InputRequiredResult.model_validate(
            {"inputRequests": held.pending_requests(), "requestState": held.token}
        )

    async def _keep(self, held: _HeldCall, run: Callable[[Any], Awaitable[ToolAnswer]], context: Any) -> None:
        await held.run(lambda: run(context))
        with trio.move_on_after(HELD_TTL_S):
            await held.collected.wait()
        if held.token:
            self._held.pop(held.token, None)


def _responses_json(responses: types.InputResponses | None) -> bytes | None:
    if responses is None:
        return None
    return json.dumps(
        {
            key: value.model_dump(mode="json", by_alias=True, exclude_none=True)
            for key, value in responses.items()
        }
    ).encode()
