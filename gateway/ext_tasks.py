"""The 2026-07-28 Tasks extension (`io.modelcontextprotocol/tasks`): the proxy is the task's receiver.

A 2026-era client that declares the extension in its request's capabilities and calls a tool whose
`execution.taskSupport` is `optional` or `required` gets a task handle (`resultType: "task"`) at
once, while the call runs on in the gateway — through the same `call` as any call of that endpoint,
so quarantine, pinning, profiles, tiers, secret scrubbing and the activity record all apply. The
client polls `tasks/get` (the task's status, and its result, error or outstanding questions
inline), answers questions with `tasks/update` (an upstream's elicitation, sampling or roots
request while it works becomes the task's `input_required` status), and may `tasks/cancel` it.

The upstream itself is driven as it would be for any caller (a task-only tool runs as an upstream
task the worker waits on: gateway/tasks.py), so any upstream of either era works. Task ids are
random and unguessable, bound to the credential (client and profile) that created them, and kept
for `TTL_MS` after creation. Status notifications over `subscriptions/listen` are not sent (the
extension makes them optional): clients poll.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import mcp.types as types
import trio
from mcp.server.context import CallNext, HandlerResult
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, SERVER_INFO_META_KEY

from bus.messages import AskMethod
from gateway.asks import Asking, AskRefusedError, Background, Question, ToolAnswer, is_modern, offered
from gateway.call_context import CallContext, context_from_mcp
from gateway.catalog_server import TASKS_EXTENSION, CatalogServer
from gateway.registry import Registry
from gateway.tasks import now_iso

EXTENSION: Final = TASKS_EXTENSION
TTL_MS: Final = 3_600_000
"""How long a task is kept after it was created (the `ttlMs` every task states)."""
POLL_MS: Final = 500
TASK_METHODS: Final = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})
ID_PREFIX: Final = "mcpproxy-task-"

Call = Callable[[str, dict[str, Any], CallContext], Awaitable[ToolAnswer]]
"""An endpoint's `tools/call` (name, arguments, context)."""
Target = Callable[[str, Mapping[str, Any]], tuple[str, str] | None]
"""(server, tool) a `tools/call` of an endpoint reaches, by the name and arguments it was called with."""


def declares_extension(capabilities: types.ClientCapabilities | None) -> bool:
    return capabilities is not None and EXTENSION in (capabilities.extensions or {})


@dataclass
class _Task:
    task_id: str
    owner: tuple[str | None, str | None]
    """(client, profile) of the credential that created it: only it may see or steer the task."""
    expires: float
    created_at: str = field(default_factory=now_iso)
    updated_at: str = ""
    status: str = "working"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    questions: dict[str, Question] = field(default_factory=dict)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    keys: Any = field(default_factory=lambda: itertools.count(1))

    def touch(self, status: str | None = None) -> None:
        if status is not None:
            self.status = status
        self.updated_at = now_iso()

    async def ask(self, method: AskMethod, params: dict[str, Any]) -> dict[str, Any]:
        """An upstream's question while the task works: outstanding until `tasks/update` answers it."""
        key = f"{method.partition('/')[0]}-{next(self.keys)}"  # unique over the task's life
        question = Question(method, params)
        self.questions[key] = question
        self.touch("input_required")
        try:
            await question.done.wait()  # the call's own deadline (or a cancel) ends the wait
        finally:
            del self.questions[key]
            if not self.questions and self.status == "input_required":
                self.touch("working")
        if question.answer is None:
            raise AskRefusedError(INVALID_REQUEST, "the client did not answer")
        return question.answer

    def answer(self, responses: Mapping[str, Any]) -> None:
        for key, response in responses.items():  # keys not outstanding are ignored, as the spec says
            question = self.questions.get(key)
            if question is not None and isinstance(response, dict) and not question.done.is_set():
                question.answer = response
                question.done.set()

    def state(self, detailed: bool) -> dict[str, Any]:
        """The `Task` (with `detailed`: its inline `inputRequests`, `result` or `error`)."""
        body: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.updated_at or self.created_at,
            "ttlMs": TTL_MS,
            "pollIntervalMs": POLL_MS,
        }
        if not detailed:
            return body
        if self.status == "input_required":
            body["inputRequests"] = {
                key: question.as_input_request() for key, question in self.questions.items()
            }
        elif self.status == "completed":
            body["result"] = self.result
        elif self.status == "failed":
            body["error"] = self.error
        return body


class ExtTasks(Background):
    """Every extension task the proxy holds; shared by both MCP endpoints."""

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self.registry = registry
        self._tasks: dict[str, _Task] = {}

    def offered(self) -> bool:
        """Whether to advertise the extension: some visible upstream tool runs as a task."""
        return any(
            (tool.execution or {}).get("taskSupport") in ("optional", "required")
            for server in self.registry.servers
            if self.registry.visible(server)
            for tool in self.registry.tools_of(server)
        )

    def install(self, server: Server[Any], surface: str, call: Call, target: Target) -> Server[Any]:
        """Serve the extension on `server` (a middleware before the SDK's own dispatch)."""

        def envelope(body: dict[str, Any], result_type: str = "complete") -> dict[str, Any]:
            return {
                "resultType": result_type,
                **body,
                "_meta": {SERVER_INFO_META_KEY: server.server_info_stamp},
            }

        async def serve(ctx: Any, call_next: CallNext) -> HandlerResult:
            if not is_modern(ctx) or (ctx.method != "tools/call" and ctx.method not in TASK_METHODS):
                return await call_next(ctx)
            params = ctx.params if isinstance(ctx.params, Mapping) else {}
            context = context_from_mcp(ctx, surface)
            owner = (context.identity.client, context.identity.profile_name)
            if ctx.method == "tools/call":
                created = self._create(ctx, params, context, owner, call, target)
                return await call_next(ctx) if created is None else envelope(created, "task")
            task = self._find(params.get("taskId"), owner)
            if ctx.method == "tasks/update":
                responses = params.get("inputResponses")
                if not isinstance(responses, Mapping):
                    raise MCPError(INVALID_PARAMS, "tasks/update needs inputResponses (an object)")
                task.answer(responses)
                return envelope({})
            if ctx.method == "tasks/cancel":
                if task.status in ("working", "input_required"):
                    task.scope.cancel()
                return envelope({})
            return envelope(task.state(detailed=True))

        server.middleware.append(serve)
        if isinstance(server, CatalogServer):
            server.task_extension = self.offered
        return server

    def _create(
        self,
        ctx: Any,
        params: Mapping[str, Any],
        context: CallContext,
        owner: tuple[str | None, str | None],
        call: Call,
        target: Target,
    ) -> dict[str, Any] | None:
        """A task for this call, or None when it runs as a plain call (see the module doc)."""
        capabilities = ctx.session.client_capabilities
        name, arguments = params.get("name"), params.get("arguments") or {}
        if (
            self._nursery is None
            or not declares_extension(capabilities)
            or not isinstance(name, str)
            or not isinstance(arguments, dict)
            or params.get("inputResponses") is not None
            or params.get("requestState") is not None
        ):
            return None
        reached = target(name, arguments)
        tool = self.registry.find_tool(*reached) if reached is not None else None
        if (
            tool is not None
            and reached is not None
            and not self.registry.view(context.identity).has_tool(reached[0], tool)
        ):
            tool = None  # (outside the caller's profile: the plain call refuses it)
        if tool is None or (tool.execution or {}).get("taskSupport") not in ("optional", "required"):
            return None
        self._forget_expired()
        task = _Task(ID_PREFIX + secrets.token_urlsafe(24), owner, trio.current_time() + TTL_MS / 1000)
        self._tasks[task.task_id] = task
        methods = offered(capabilities)
        context = replace(context, asking=Asking(methods, task.ask) if methods else None, log=None)
        self._nursery.start_soon(self._work, task, call, name, dict(arguments), context)
        return task.state(detailed=False)

    async def _work(
        self, task: _Task, call: Call, name: str, arguments: dict[str, Any], context: CallContext
    ) -> None:
        with task.scope:
            try:
                result = await call(name, arguments, context)
            except MCPError as exc:
                task.error = {"code": exc.code, "message": exc.message}
                task.touch("failed")
            except Exception as exc:  # task boundary: the task fails with a JSON-RPC error
                task.error = {"code": INTERNAL_ERROR, "message": str(exc) or type(exc).__name__}
                task.touch("failed")
            else:
                task.result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
                task.touch("completed")  # (a tool's own isError result completes the task too)
        if task.scope.cancelled_caught:
            task.touch("cancelled")

    def _find(self, task_id: Any, owner: tuple[str | None, str | None]) -> _Task:
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.owner != owner:  # another credential's task is as unknown as none
            raise MCPError(INVALID_PARAMS, f"unknown task {task_id!r}")
        return task

    def _forget_expired(self) -> None:
        now = trio.current_time()
        for task_id in [t for t, task in self._tasks.items() if task.expires < now]:
            task = self._tasks.pop(task_id)
            task.scope.cancel()
