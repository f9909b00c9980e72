"""The client side of 2025-11-25 tasks: an upstream may ask its client to run an elicitation or a
sampling request as a task (issue 19).

Such an upstream sends `elicitation/create` or `sampling/createMessage` with a `task` field, expects a
`CreateTaskResult` at once, then polls `tasks/get` and fetches `tasks/result` (server-everything's
`trigger-*-async` tools do). The worker is that client: it declares `tasks.requests` for both, creates
the task, and puts the question to the client whose call caused it through the same relay as a plain
question (services/worker/asks.py), in the background. The task lives as long as the upstream's
connection; when the call it belongs to ends, its question ends and the task fails, so nothing waits
forever. A question nobody can be asked (no call, or several, in flight) is not turned into a task:
the SDK's callbacks answer it with the usual error.

The 2026-07-28 era has no client-side tasks (its upstreams ask in input-required rounds).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import mcp.types as types
import trio
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bus.values import AskMethod
from services.mcp_internals import AnsweringSession
from services.worker.asks import AskRelay

TASK_REQUESTS: Final[frozenset[AskMethod]] = frozenset({"elicitation/create", "sampling/createMessage"})
POLL_INTERVAL_MS: Final = 500
KEPT: Final = 64
"""Finished tasks kept for `tasks/get` and `tasks/result`; older finished ones are forgotten first."""
CAPABILITY: Final = types.ClientTasksCapability(
    list=types.TasksListCapability(),
    cancel=types.TasksCancelCapability(),
    requests=types.ClientTasksRequestsCapability(
        elicitation=types.TasksElicitationCapability(create=types.TasksCreateElicitationCapability()),
        sampling=types.TasksSamplingCapability(create_message=types.TasksCreateMessageCapability()),
    ),
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Task:
    task_id: str
    ttl: int | None
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    status: types.TaskStatus = "input_required"
    """The question is with the calling client until it answers."""
    status_message: str | None = None
    result: dict[str, Any] | None = None
    error: types.ErrorData | None = None
    done: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def state(self) -> dict[str, Any]:
        task = types.Task(
            task_id=self.task_id,
            status=self.status,
            status_message=self.status_message,
            created_at=self.created_at,
            last_updated_at=self.updated_at,
            ttl=self.ttl,
            poll_interval=POLL_INTERVAL_MS,
        )
        return task.model_dump(mode="json", by_alias=True, exclude_none=True)

    def finish(self, status: types.TaskStatus, message: str | None = None) -> None:
        if self.done.is_set():
            return
        self.status, self.status_message, self.updated_at = status, message, _now()
        self.done.set()


class ClientTasks:
    """The tasks one upstream connection asked its client (the worker) to run."""

    def __init__(self, relay: AskRelay) -> None:
        self.relay = relay
        self.tasks: dict[str, _Task] = {}
        self._nursery: trio.Nursery | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the upstream's connection is open: its tasks run in here, and end with it."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                yield
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    async def answer(self, method: str, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The answer to an upstream's request about tasks; None: not one (the session answers it)."""
        params = dict(params or {})
        if method in TASK_REQUESTS and isinstance(params.get("task"), dict):
            return self._create(method, params)
        if method == "tasks/list":
            return {"tasks": [task.state() for task in self.tasks.values()]}
        if method not in ("tasks/get", "tasks/result", "tasks/cancel"):
            return None
        task = self.tasks.get(str(params.get("taskId", "")))
        if task is None:
            raise MCPError(code=INVALID_PARAMS, message=f"no task {params.get('taskId')!r}")
        if method == "tasks/cancel":
            task.scope.cancel()
            task.finish("cancelled", "cancelled by the server")
            return task.state()
        if method == "tasks/get":
            return task.state()
        await task.done.wait()  # tasks/result: once the task is done (the call's end ends it too)
        if task.result is not None:
            return task.result
        error = task.error or types.ErrorData(code=INVALID_PARAMS, message=task.status_message or task.status)
        raise MCPError.from_error_data(error)

    def _create(self, method: AskMethod, params: dict[str, Any]) -> dict[str, Any] | None:
        call_id = self.relay.only_call()
        if call_id is None or self._nursery is None:
            return None  # nobody to ask: the SDK's callback says so, as for a plain question
        ttl = params.pop("task").get("ttl")
        task = _Task(task_id=f"mcpproxy-{secrets.token_hex(8)}", ttl=ttl if isinstance(ttl, int) else None)
        self.tasks[task.task_id] = task
        self._forget_old()
        self._nursery.start_soon(self._ask, task, method, params, call_id)
        return {"task": task.state()}

    async def _ask(self, task: _Task, method: AskMethod, params: dict[str, Any], call_id: int) -> None:
        with task.scope:
            answer = await self.relay.ask(method, params, call_id)
            if isinstance(answer, types.ErrorData):
                task.error = answer
                task.finish("failed", answer.message)
            else:
                task.result = answer
                task.finish("completed")
        task.finish("cancelled", "the upstream's connection closed")

    def _forget_old(self) -> None:
        finished = [key for key, task in self.tasks.items() if task.done.is_set()]
        for key in finished[: max(0, len(finished) - KEPT)]:
            del self.tasks[key]


class TaskAnsweringSession(AnsweringSession):
    """The worker's session with its upstream: it also runs the tasks the upstream asks it for."""

    def __init__(self, *args: Any, client_tasks: ClientTasks | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_tasks = client_tasks

    async def answer_first(self, method: str, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if self.client_tasks is None:
            return None
        return await self.client_tasks.answer(method, params)

    def more_capabilities(
        self, capabilities: types.ClientCapabilities, version: str
    ) -> types.ClientCapabilities:
        if self.client_tasks is None or version in MODERN_PROTOCOL_VERSIONS:
            return capabilities
        return capabilities.model_copy(update={"tasks": CAPABILITY})
