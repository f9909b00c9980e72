"""Tasks (MCP 2025-11-25, experimental) through both MCP endpoints, owned by the upstream that runs them.

A `tools/call` whose params carry `task` (a 2025-era client's, for a tool whose
`execution.taskSupport` is `optional` or `required`) goes through `Caller.start_task` — the same
checks and activity record as any call — and the upstream creates the task. The SDK's runner checks
every `tools/call` result against `CallToolResult`, so the endpoints take these calls in a
`Server.middleware` before it, and answer the `CreateTaskResult` themselves.

Task ids are `<server>:<upstream task id>`. A server name has no `:` (`[A-Za-z0-9_.-]`), so the
first `:` splits it off and the rest is the upstream's id, whatever it holds. `tasks/get`,
`tasks/result`, `tasks/cancel` go to the owner as forwarded requests with the upstream's id;
`tasks/result` is the result of the call, checked, recorded and scrubbed like one (`Caller`), and
an upstream's question while it waits (its `input_required` flow) is put to the client on that
request's stream. `tasks/list` shows the tasks this session created through the proxy.

The gateway remembers which worker generation created each task. When that worker is gone (it
crashed, was killed, the server stopped), its upstream and the task are gone with it: `tasks/get`
answers the task as `failed` with a status message naming the server, `tasks/result` answers what a
call to a vanished server answers (an `isError` result of kind `unavailable`), `tasks/cancel` refuses
a task in that terminal state, and a `tasks/result` waiting at that moment gets the same answer at
once. An upstream's `notifications/tasks/status` reaches the session that created the task, with the
proxy's task id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, cast

import mcp.types as types
import trio
from mcp.server.context import CallNext, HandlerResult
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND

from bus.errors import PeerGoneError, ProxyError
from bus.messages import AskMethod, ToolInfo, UpstreamNotified, worker_identity
from gateway.asks import Asking, is_modern, session_asking
from gateway.call_context import CallContext, context_from_mcp
from gateway.calling import Caller, error_result
from gateway.registry import Registry
from gateway.upstreams import UpstreamReplyError, Upstreams

logger = logging.getLogger(__name__)

SEPARATOR: Final = ":"
RELATED_TASK: Final = "io.modelcontextprotocol/related-task"
TASK_STATUS: Final = "notifications/tasks/status"
KEEP_S: Final = 86_400.0
"""A task whose upstream keeps it without limit (`ttl: null`) is remembered this long."""
MAX_TASKS: Final = 10_000
"""Tasks remembered at most; past this, the oldest are forgotten first."""
SEND_TIMEOUT_S: Final = 1.0
"""A session that cannot take a status notification within this long is skipped."""
STATUS_BUFFER: Final = 1000


def shown_id(server: str, task_id: str) -> str:
    return f"{server}{SEPARATOR}{task_id}"


def split_id(shown: str) -> tuple[str, str] | None:
    """(server, upstream task id) of a proxy task id, or None when it is not one."""
    server, separator, task_id = shown.partition(SEPARATOR)
    return (server, task_id) if separator and server and task_id else None


def now_iso() -> str:
    """Now, as task timestamps are written (ISO 8601, UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Started:
    """A task an upstream created for a call: its server, the tool, and the upstream's answer."""

    server: str
    tool: str
    created: types.CreateTaskResult


def require_task_support(tool: ToolInfo | None, shown_name: str) -> None:
    """Refuse a task-augmented call of a tool that does not run as a task (spec: -32601); an unknown
    tool is left to the call path, which names the tools there are."""
    support = (tool.execution or {}).get("taskSupport") if tool is not None else "optional"
    if support not in ("optional", "required"):
        raise MCPError(
            METHOD_NOT_FOUND,
            f"{shown_name} does not run as a task (its execution.taskSupport is {support or 'absent'}): "
            "call it without task params",
        )


StartTask = Callable[[str, dict[str, Any], CallContext, bytes], Awaitable[Started | types.CallToolResult]]
"""An endpoint's task-augmented call: (name as the client called it, arguments, context, `task`)."""


@dataclass
class _Task:
    server: str
    task_id: str
    """The upstream's own id."""
    tool: str
    worker: bytes
    """The worker identity (`w/<server>/<generation>`) whose upstream runs the task."""
    session_id: str | None
    session: Any
    """The creating 2025-era session (for status notifications), else None."""
    expires: float
    last: dict[str, Any] = field(default_factory=dict)
    """The latest task state seen, as the upstream wrote it."""
    lost: str | None = None
    """Why the task is gone with its worker, once that has been seen."""
    lost_at: str = ""


class Tasks:
    """Every task created through the proxy; shared by both MCP endpoints."""

    def __init__(self, registry: Registry, upstreams: Upstreams, caller: Caller) -> None:
        self.registry = registry
        self.upstreams = upstreams
        self.caller = caller
        self._tasks: dict[str, _Task] = {}
        self._status_send, self._status = trio.open_memory_channel[UpstreamNotified](STATUS_BUFFER)
        self._lost_send, self._lost_tasks = trio.open_memory_channel[str](STATUS_BUFFER)
        registry.listeners.append(self._on_server_change)

    def install(self, server: Server[Any], surface: str, start: StartTask) -> Server[Any]:
        """Serve tasks on `server`: task-augmented calls (through `start`) and the tasks/* methods."""

        async def create(ctx: Any, call_next: CallNext) -> HandlerResult:
            params = ctx.params
            if (
                ctx.method != "tools/call"
                or not isinstance(params, Mapping)
                or params.get("task") is None
                or is_modern(ctx)  # (2026-07-28 has no core tasks)
            ):
                return await call_next(ctx)
            call = types.CallToolRequestParams.model_validate(params)
            context = context_from_mcp(ctx, surface)
            task = json.dumps(params["task"]).encode()
            started = await start(call.name, dict(call.arguments or {}), context, task)
            if isinstance(started, types.CallToolResult):  # refused, or failed: answered as any call
                return started.model_dump(mode="json", by_alias=True, exclude_none=True)
            return self._created(ctx, context, started)

        async def get(ctx: Any, params: types.GetTaskRequestParams) -> HandlerResult:
            return await self.get(params.task_id)

        async def result(ctx: Any, params: types.GetTaskPayloadRequestParams) -> HandlerResult:
            return await self.result(ctx, context_from_mcp(ctx, surface), params.task_id)

        async def cancel(ctx: Any, params: types.CancelTaskRequestParams) -> HandlerResult:
            return await self.cancel(params.task_id)

        async def listed(ctx: Any, params: types.PaginatedRequestParams) -> HandlerResult:
            if params.cursor is not None:
                raise MCPError(INVALID_PARAMS, "invalid cursor: tasks/list answers in one page")
            return await self.list(context_from_mcp(ctx, surface).session_id)

        server.middleware.append(create)
        server.add_request_handler("tasks/get", types.GetTaskRequestParams, get)
        server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, result)
        server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, cancel)
        server.add_request_handler("tasks/list", types.PaginatedRequestParams, listed)
        return server

    def capability(self) -> types.ServerTasksCapability | None:
        """The `tasks` capability, when a visible upstream takes task-augmented tool calls."""
        for server in self.registry.servers:
            if not self.registry.visible(server):
                continue
            tasks = self.registry.catalog_of(server).capabilities.get("tasks") or {}
            if (tasks.get("requests") or {}).get("tools", {}).get("call") is not None:
                return types.ServerTasksCapability(
                    list=types.TasksListCapability(),
                    cancel=types.TasksCancelCapability(),
                    requests=types.ServerTasksRequestsCapability(
                        tools=types.TasksToolsCapability(call=types.TasksCallCapability())
                    ),
                )
        return None

    # --- the table ---------------------------------------------------------------

    def _created(self, ctx: Any, context: CallContext, started: Started) -> dict[str, Any]:
        task = started.created.task
        shown = shown_id(started.server, task.task_id)
        ttl_s = task.ttl / 1000 if task.ttl is not None else KEEP_S
        self._forget_expired()
        self._tasks[shown] = _Task(
            server=started.server,
            task_id=task.task_id,
            tool=started.tool,
            worker=self._current_worker(started.server) or b"",
            session_id=context.session_id,
            session=ctx.session if context.session_id else None,
            expires=time.monotonic() + min(ttl_s, KEEP_S),
            last=task.model_dump(mode="json", by_alias=True, exclude_none=True),
        )
        dumped = started.created.model_dump(mode="json", by_alias=True, exclude_none=True)
        dumped["task"]["taskId"] = shown
        return self._scrubbed(started.server, dumped)

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for shown in [shown for shown, task in self._tasks.items() if task.expires <= now]:
            del self._tasks[shown]
        while len(self._tasks) >= MAX_TASKS:
            del self._tasks[next(iter(self._tasks))]

    def _find(self, shown: str) -> tuple[str, str, _Task | None]:
        parsed = split_id(shown)
        if parsed is None:
            raise MCPError(
                INVALID_PARAMS, f"unknown task {shown!r}: mcpproxy's task ids look like '<server>:<task id>'"
            )
        self._forget_expired()
        server, task_id = parsed
        if server not in self.registry.servers:
            raise MCPError(INVALID_PARAMS, f"unknown task {shown!r}: no server is named {server!r}")
        return server, task_id, self._tasks.get(shown)

    def _current_worker(self, server: str) -> bytes | None:
        """The worker identity serving `server` now (as the supervisor reported it), if it runs."""
        status = self.registry.servers.get(server)
        running = status is not None and status.state == "running"
        return worker_identity(server, status.generation) if status is not None and running else None

    def _lost(self, task: _Task | None) -> str | None:
        """Why `task` is gone with its worker (None while that worker still runs)."""
        if task is None:
            return None
        if task.lost is None and self._current_worker(task.server) != task.worker:
            status = self.registry.servers.get(task.server)
            reason = status.last_error if status is not None and status.last_error else None
            state = status.state if status is not None else "removed"
            self._lose(task, f"the worker of server {task.server!r} went away ({reason or state})")
        return task.lost

    def _on_server_change(self, server: str) -> None:
        """A server changed: tasks whose worker is gone are lost now, and their sessions are told."""
        for shown, task in self._tasks.items():
            if task.server == server and task.lost is None and self._lost(task) is not None:
                try:
                    self._lost_send.send_nowait(shown)
                except trio.WouldBlock:
                    logger.warning("did not tell a session that task %s failed: too many at once", shown)

    def _lose(self, task: _Task, why: str) -> None:
        if task.lost is None:
            task.lost = f"{why}: the task is lost with it; call {task.tool} again"
            task.lost_at = now_iso()

    def _state(self, shown: str, task: _Task) -> dict[str, Any]:
        state = {**task.last, "taskId": shown}
        if task.lost is not None:
            state.update(status="failed", statusMessage=task.lost, lastUpdatedAt=task.lost_at)
        return state

    def _scrubbed(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        secrets = self.caller.echo_guard.secrets
        status = self.registry.servers.get(server)
        if not secrets or (status is not None and status.allow_secret_echo):
            return body
        scrubbed: dict[str, Any] = secrets.scrub_json(body)
        return scrubbed

    async def _forward(
        self, server: str, method: str, task_id: str, asking: Asking | None = None
    ) -> dict[str, Any]:
        """`method` for the upstream's `task_id`; its error comes back as the same JSON-RPC error, named
        by server. Raises PeerGoneError when the worker is gone (before or during the request).
        `asking` puts the upstream's questions while it waits (`tasks/result`) to the client."""
        params = json.dumps({"taskId": task_id}).encode()
        try:
            raw = await self.upstreams.forward(server, method, params, asking=asking)
        except UpstreamReplyError as exc:
            raise MCPError(exc.code or INTERNAL_ERROR, f"{server}: {exc}") from exc
        except PeerGoneError:
            raise
        except ProxyError as exc:
            raise MCPError(INTERNAL_ERROR, f"{server}: {exc}") from exc
        answer: dict[str, Any] = json.loads(raw)
        return answer

    async def _forward_or_lose(
        self, server: str, method: str, task_id: str, task: _Task | None, asking: Asking | None = None
    ) -> dict[str, Any] | None:
        """`_forward`, or None when the task's worker is gone: the task is then lost (one the proxy does
        not remember has nothing to mark, so that is an error)."""
        try:
            return await self._forward(server, method, task_id, asking)
        except PeerGoneError as exc:
            if task is None:
                raise MCPError(INTERNAL_ERROR, f"{server}: {exc}") from exc
            self._lose(task, str(exc))
            return None

    # --- tasks/* -------------------------------------------------------------

    async def get(self, shown: str) -> dict[str, Any]:
        server, task_id, task = self._find(shown)
        if self._lost(task) is None:
            state = await self._forward_or_lose(server, "tasks/get", task_id, task)
            if state is not None and task is None:
                return self._scrubbed(server, {**state, "taskId": shown})
            if state is not None and task is not None:
                task.last = state
        assert task is not None
        return self._scrubbed(server, self._state(shown, task))

    async def result(self, ctx: Any, context: CallContext, shown: str) -> dict[str, Any]:
        started = time.monotonic()
        server, task_id, task = self._find(shown)
        tool = task.tool if task is not None else "?"
        if self._lost(task) is None:
            # A task in `input_required` asks on this request's stream (2025-11-25 tasks).
            asking = _naming_task(session_asking(ctx), shown) if not is_modern(ctx) else None
            asking = self.caller.task_asking(replace(context, asking=asking), server, tool)
            try:
                raw = await self._forward_or_lose(server, "tasks/result", task_id, task, asking)
            except MCPError as exc:
                self.caller.record_failure(
                    server, f"tasks/result {tool}", context, "error", started, exc.message
                )
                raise
            if raw is not None:
                result = self.caller.task_result(server, tool, context, started, json.dumps(raw).encode())
                result = await self.caller.shorten(
                    result, server, self.registry.find_tool(server, tool), context
                )
                return _related(result, shown)
        assert task is not None and task.lost is not None
        self.caller.record_failure(server, f"tasks/result {tool}", context, "unavailable", started, task.lost)
        return _related(error_result(task.lost, "unavailable", server), shown)

    async def cancel(self, shown: str) -> dict[str, Any]:
        server, task_id, task = self._find(shown)
        lost = self._lost(task)
        if lost is None:
            state = await self._forward_or_lose(server, "tasks/cancel", task_id, task)
            if state is None:
                assert task is not None
                lost = task.lost
            else:
                if task is not None:
                    task.last = state
                return self._scrubbed(server, {**state, "taskId": shown})
        raise MCPError(INVALID_PARAMS, f"task {shown!r} has failed and cannot be cancelled: {lost}")

    async def list(self, session_id: str | None) -> dict[str, Any]:
        """The tasks `session_id` created through the proxy (none for a caller without a session)."""
        self._forget_expired()
        mine = [shown for shown, task in self._tasks.items() if session_id and task.session_id == session_id]
        states: dict[str, dict[str, Any]] = {}

        async def one(shown: str) -> None:
            try:
                states[shown] = await self.get(shown)
            except MCPError:  # the upstream no longer has it (expired there): forget it here too
                self._tasks.pop(shown, None)

        async with trio.open_nursery() as nursery:
            for shown in mine:
                nursery.start_soon(one, shown)
        return {"tasks": [states[shown] for shown in mine if shown in states]}

    # --- notifications/tasks/status -------------------------------------------

    def status_nowait(self, notice: UpstreamNotified) -> None:
        """An upstream's `notifications/tasks/status`, for the session that created the task."""
        try:
            self._status_send.send_nowait(notice)
        except trio.WouldBlock:
            logger.warning("dropped a task status from %s: clients are not keeping up", notice.server)

    async def run(self) -> None:
        """Relay the upstreams' task status notifications, and tell sessions of their lost tasks
        (status `failed`), until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._tell_lost)
            async for notice in self._status:
                params = json.loads(notice.params)
                shown = shown_id(notice.server, str(params.get("taskId", "")))
                task = self._tasks.get(shown)
                if task is None or task.lost is not None:
                    continue
                task.last = {key: value for key, value in params.items() if key != "_meta"}
                await self._tell(shown, task)

    async def _tell_lost(self) -> None:
        async for shown in self._lost_tasks:
            task = self._tasks.get(shown)
            if task is not None:
                await self._tell(shown, task)

    async def _tell(self, shown: str, task: _Task) -> None:
        """`notifications/tasks/status` to the session that created the task (if it has one)."""
        if task.session is None:
            return
        state = self._scrubbed(task.server, self._state(shown, task))
        notification = types.TaskStatusNotification(
            params=types.TaskStatusNotificationParams.model_validate(state)
        )
        try:
            with trio.move_on_after(SEND_TIMEOUT_S):
                await task.session.send_notification(cast(Any, notification))
        except Exception:  # a closed session: no one to tell
            task.session = None


def _naming_task(asking: Asking | None, shown: str) -> Asking | None:
    """`asking`, with the task a question belongs to (its `_meta` related task) named by the proxy's id."""
    if asking is None:
        return None
    relay = asking.ask

    async def ask(method: AskMethod, params: dict[str, Any]) -> dict[str, Any]:
        meta = params.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get(RELATED_TASK), dict):
            params = {**params, "_meta": {**meta, RELATED_TASK: {**meta[RELATED_TASK], "taskId": shown}}}
        return await relay(method, params)

    return Asking(asking.methods, ask)


def _related(result: types.CallToolResult, shown: str) -> dict[str, Any]:
    """`tasks/result`'s answer: the call's result, with the task it belongs to in `_meta`."""
    dumped = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped.setdefault("_meta", {})[RELATED_TASK] = {"taskId": shown}
    return dumped
