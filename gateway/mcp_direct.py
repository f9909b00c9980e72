"""The `/mcp/all` endpoint (direct mode): every upstream tool as `server__tool`, schemas unchanged,
and every upstream's prompts and resources (`gateway/catalog.py`).

With `direct_mode: "deferred"` each tool is listed with any object as its input schema and its
parameters as one line at the end of its description (gateway/tool_views.py), `describe_tool`
gives whole definitions, and a call whose arguments do not fit gets the schema in its error.

Clients are told about changes with `notifications/tools/list_changed`: 2025-era sessions directly
(the catalog keeps a strong reference to every live session so we can reach it), 2026-era clients
on their `subscriptions/listen` streams (`gateway/listen.py`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import mcp.types as types
from mcp.server.lowlevel import Server

from gateway.access import Identity, View, identity_of_request
from gateway.argument_errors import with_schema
from gateway.asks import InputRounds, ToolAnswer
from gateway.call_context import CallContext
from gateway.calling import Caller, error_result
from gateway.catalog import CatalogFront
from gateway.catalog_server import CatalogServer
from gateway.instructions import direct_instructions
from gateway.large_results import READ_CACHE, READ_CACHE_TOOL
from gateway.list_changes import ListChanges
from gateway.mcp_endpoint import McpEndpoint
from gateway.mcp_management import MAX_DESCRIBE
from gateway.tasks import Started, Tasks, require_task_support
from gateway.tool_names import direct_name, split_qualified, unknown_message
from gateway.tool_views import DEFERRED_SCHEMA, deferred_definition, tool_definition

logger = logging.getLogger(__name__)

SURFACE: Final = "mcp_all"
DESCRIBE: Final = "describe_tool"
DESCRIBE_TOOL: Final = types.Tool(
    name=DESCRIBE,
    description=(
        f"Full definitions (input schema, output schema, annotations) of up to {MAX_DESCRIBE} tools of "
        "this list, named as listed. Tools here are listed with their arguments as one line "
        "(`name?` is optional); call this when you need the whole inputSchema."
    ),
    input_schema={
        "type": "object",
        "properties": {"tool_ids": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_DESCRIBE}},
        "required": ["tool_ids"],
    },
    annotations=types.ToolAnnotations(read_only_hint=True),
)
"""Listed in deferred mode only. It cannot collide with an upstream tool: every direct name holds `__`
or ends in a hash suffix (gateway/tool_names.py)."""


class _DirectServer(CatalogServer):
    tools_changed = True


class DirectTools(McpEndpoint):
    """Handlers of the /mcp/all server, plus the list_changed fan-out."""

    surface = SURFACE

    def __init__(self, caller: Caller, catalog: CatalogFront, rounds: InputRounds, tasks: Tasks) -> None:
        super().__init__(caller, catalog, rounds, tasks)
        self.names: dict[str, tuple[str, str]] = {}
        self.deferred = False
        """`direct_mode: "deferred"` in the config: tools listed without their schemas."""
        self.tool_changes = ListChanges(self.registry, self._tool_names)

    def server(self) -> Server[Any]:
        server = _DirectServer(
            "mcpproxy-all",
            version="0.1.0",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            get_tool_input_schema=self.input_schema,
            **self.catalog.handlers(),
        )
        server.instructions_for = lambda identity: direct_instructions(self.registry, identity)
        if self.tasks is not None:
            server.task_capability = self.tasks.capability
            self.tasks.install(server, SURFACE, self.start_task)
        return self.catalog.install(server)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """Lets the SDK check 2026-era request headers without listing every tool on each call."""
        if self.deferred and name == DESCRIBE:
            return DESCRIBE_TOOL.input_schema
        target = self.names.get(name)
        if target is None:
            return None
        tool = self.registry.find_tool(*target)
        if tool is None:
            return None
        # The schema the client was shown: it mirrors arguments into headers by that one.
        return dict(DEFERRED_SCHEMA) if self.deferred else tool.input_schema

    def _tools(self) -> list[types.Tool]:
        tools = []
        names: dict[str, tuple[str, str]] = {}
        for server in sorted(self.registry.servers):
            for tool in self.registry.tools_of(server):
                name = direct_name(server, tool.name)
                names[name] = (server, tool.name)
                shown = deferred_definition(tool, name) if self.deferred else tool_definition(tool, name)
                tools.append(types.Tool.model_validate(shown))
        self.names = names
        return tools

    async def list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self._remember(ctx)
        self.tool_changes.served()
        tools = self._tools()
        view = self.registry.view(identity_of_request(getattr(ctx, "request", None)))
        if view.profile is not None:
            tools = [tool for tool in tools if self._in_view(view, tool.name)]
        if self.deferred:
            tools.append(DESCRIBE_TOOL)
        large = self.caller.large
        if large is not None:  # `read_cache` cannot collide: every upstream tool's name holds `__`
            tools = large.advertise([*tools, READ_CACHE_TOOL])
        return types.ListToolsResult(tools=tools)

    def _in_view(self, view: View, name: str) -> bool:
        server, tool_name = self.names[name]
        tool = self.registry.find_tool(server, tool_name)
        return tool is not None and view.has_tool(server, tool)

    def _unknown(self, name: str, identity: Identity) -> types.CallToolResult:
        if identity.profile is not None:  # nothing beyond the profile is named, not even as a suggestion
            return error_result(f"unknown tool {name!r} in profile {identity.profile.name!r}")
        return error_result(unknown_message("tool", name, self.names))

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> ToolAnswer:
        self._remember(ctx)
        return await super().call_tool(ctx, params)

    async def call(self, name: str, arguments: dict[str, Any], context: CallContext) -> ToolAnswer:
        """`tools/call` on /mcp/all, from the SDK's handler or the fast lane."""
        if name == READ_CACHE and self.caller.large is not None:
            return await self.caller.large.read(arguments, context.identity)
        if self.deferred and name == DESCRIBE:
            return self._describe(arguments, context.identity)
        target = self._target(name)
        if target is None:
            return self._unknown(name, context.identity)
        server, tool = target
        answer = await self.caller.call(
            server, tool, arguments, context, shown_name=name, known=lambda: list(self.names)
        )
        if not self.deferred:
            return answer
        return with_schema(answer, self.registry.find_tool(server, tool), arguments, name)

    def _describe(self, arguments: dict[str, Any], identity: Identity) -> types.CallToolResult:
        """`describe_tool` on /mcp/all: whole definitions by direct name (or `server:tool`)."""
        ids = arguments.get("tool_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
            return error_result(f"{DESCRIBE}: `tool_ids` must list tool names as listed")
        if len(ids) > MAX_DESCRIBE:
            return error_result(f"{DESCRIBE}: at most {MAX_DESCRIBE} tools at a time")
        view = self.registry.view(identity)
        found, missing = [], []
        for tool_id in ids:
            target = self._target(tool_id) or split_qualified(tool_id)
            tool = self.registry.find_tool(*target) if target else None
            if target is None or tool is None or not view.has_tool(target[0], tool):
                missing.append(tool_id)
                continue
            found.append(tool_definition(tool, direct_name(target[0], tool.name)))
        data = {"tools": found, "not_found": missing}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(data))], structured_content=data
        )

    async def start_task(
        self, name: str, arguments: dict[str, Any], context: CallContext, task: bytes
    ) -> Started | types.CallToolResult:
        """A task-augmented `tools/call` on /mcp/all (gateway/tasks.py)."""
        target = self._target(name)
        if target is None:
            return self._unknown(name, context.identity)
        server, tool = target
        require_task_support(self.registry.find_visible(context.identity, server, tool), name)
        created = await self.caller.start_task(
            server, tool, arguments, context, task, shown_name=name, known=lambda: list(self.names)
        )
        return created if isinstance(created, types.CallToolResult) else Started(server, tool, created)

    def target(self, name: str, arguments: object = None) -> tuple[str, str] | None:
        """(server, tool) a call of `name` reaches (gateway/ext_tasks.py asks, before it runs it)."""
        return self._target(name)

    def _target(self, name: str) -> tuple[str, str] | None:
        """(server, tool) of a direct name."""
        target = self.names.get(name)
        if target is None:
            self._tools()
            target = self.names.get(name)
        return target

    def remember(self, session_id: str, session: Any) -> None:
        """A session to tell about changes: the catalog keeps its first `ServerSession` (requests each
        make one) and forgets it once the SDK has (so ended sessions do not pile up under churn)."""
        self.catalog.remember(session_id, session)

    def _remember(self, ctx: Any) -> None:
        request = getattr(ctx, "request", None)
        session_id = request.headers.get("mcp-session-id") if request is not None else None
        if session_id:  # a request without a session (2026-era, stateless) has no stream to notify
            self.remember(session_id, ctx.session)

    def _tool_names(self) -> tuple[str, ...]:
        registry = self.registry
        return tuple(sorted(f"{s}:{t.name}" for s in registry.servers for t in registry.tools_of(s)))

    async def run_notifier(self) -> None:
        """Send tools/list_changed to every known session when the exposed set changes."""
        while True:
            await self.tool_changes.next_change()
            await self.catalog.announce_tools_changed()
