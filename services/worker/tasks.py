"""Tasks (MCP 2025-11-25, experimental) at the upstream: the worker creates them and relays the rest.

A task-augmented `tools/call` (its params carry `task`) is sent with the caller's arguments and
`task` params, and answered with the upstream's `CreateTaskResult`; it never takes the raw lane,
which expects a `CallToolResult`. `tasks/get`, `tasks/result`, `tasks/cancel` and `tasks/list`
travel as forwarded requests (`services/worker/catalog.py`), with the task id as the upstream
named it: namespacing is the gateway's (`gateway/tasks.py`). The upstream's
`notifications/tasks/status` are relayed like its log messages.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

import mcp.types as types
import msgspec
import trio
from mcp.client.extension import NotificationBinding
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR
from pydantic import BaseModel, ValidationError

from bus.messages import CallTool, ToolInfo
from services.mcp_internals import send_unchecked

TASK_REQUESTS: Final[dict[str, tuple[type[BaseModel], type[BaseModel]]]] = {
    "tasks/get": (types.GetTaskRequest, types.GetTaskResult),
    "tasks/result": (types.GetTaskPayloadRequest, types.CallToolResult),
    "tasks/cancel": (types.CancelTaskRequest, types.CancelTaskResult),
    "tasks/list": (types.ListTasksRequest, types.ListTasksResult),
}
"""Method -> (request model, result model); every task a proxy creates is a `tools/call`'s, so
`tasks/result` answers a `CallToolResult`."""

TASK_STATUS: Final = "notifications/tasks/status"
CANCEL_TIMEOUT_S: Final = 2.0
"""How long a bridged task's cancel (its call ended first) may take before the worker gives up on it."""


async def start_task(session: ClientSession, call: CallTool) -> bytes:
    """Send the task-augmented `tools/call`; return the upstream's `CreateTaskResult` as JSON bytes.

    Raises MCPError when the upstream answers with an error, or with anything but a task.
    """
    assert call.task is not None
    params = {
        "name": call.tool,
        "arguments": json.loads(call.arguments) if call.arguments else {},
        "task": json.loads(call.task),
    }
    raw = await send_unchecked(session, "tools/call", params)
    try:
        created = types.CreateTaskResult.model_validate(raw)
    except ValidationError:
        raise MCPError(
            INTERNAL_ERROR, "the upstream answered a task-augmented call without creating a task"
        ) from None
    return created.model_dump_json(by_alias=True, exclude_unset=True).encode()


def required_tasks(tools: list[ToolInfo]) -> frozenset[str]:
    """The tools the upstream runs only as tasks (`execution.taskSupport: required`)."""
    return frozenset(tool.name for tool in tools if (tool.execution or {}).get("taskSupport") == "required")


async def run_as_task(session: ClientSession, call: CallTool) -> bytes:
    """A plain call of a tool that runs only as a task, for a caller that does not make tasks (a
    2026-era client, REST, a 2025-era client that ignores `taskSupport`): create the task, wait for
    its result (`tasks/result` blocks until the task ends), and answer that as the call's result.
    A call that ends first (its timeout, the caller's cancel) cancels the task at the upstream."""
    created = types.CreateTaskResult.model_validate_json(
        await start_task(session, msgspec.structs.replace(call, task=b"{}"))
    )
    task_id = created.task.task_id
    try:
        result = await session.send_request(
            types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(task_id=task_id)),
            types.CallToolResult,
        )
    except BaseException:
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(CANCEL_TIMEOUT_S),
            contextlib.suppress(Exception),
        ):
            await session.send_request(
                types.CancelTaskRequest(params=types.CancelTaskRequestParams(task_id=task_id)),
                types.CancelTaskResult,
            )
        raise
    return result.model_dump_json(by_alias=True, exclude_unset=True).encode()


def status_binding(
    relay: Callable[[Any], Awaitable[None]],
) -> NotificationBinding[types.TaskStatusNotificationParams]:
    """Hands the upstream's `notifications/tasks/status` (outside the 2025-11-25 core tables the
    session dispatches) to `relay`, the session's message handler, as a notification."""

    async def handle(params: types.TaskStatusNotificationParams) -> None:
        await relay(types.TaskStatusNotification(params=params))

    return NotificationBinding(
        method=TASK_STATUS, params_type=types.TaskStatusNotificationParams, handler=handle
    )
