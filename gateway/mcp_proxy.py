"""The `/mcp` endpoint: a small fixed menu (search + call) in front of every upstream tool.

- `retrieve_tools(query, limit, detail, filters)`: ranked search over all running servers' tools,
  compact hits by default (gateway/tool_search.py).
- `call_tool_read` / `call_tool_write` / `call_tool_destructive`: call `server:tool`
  with `args` (or `args_json`); the upstream's result is returned unchanged, but for an error about
  the arguments, which also carries the tool's input schema (gateway/argument_errors.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import METHOD_NOT_FOUND

from gateway.access import Identity, identity_of_request
from gateway.argument_errors import with_schema
from gateway.asks import InputRounds, ToolAnswer
from gateway.call_context import CallContext
from gateway.calling import Caller, error_result
from gateway.catalog import CatalogFront
from gateway.catalog_server import CatalogServer
from gateway.instructions import search_instructions, servers_sentence, signature
from gateway.large_results import READ_CACHE, READ_CACHE_TOOL
from gateway.list_changes import ListChanges
from gateway.mcp_endpoint import McpEndpoint
from gateway.mcp_management import MANAGEMENT_TOOLS, ManagementTools
from gateway.tasks import Started, Tasks, require_task_support
from gateway.tool_names import split_qualified, unknown_message
from gateway.tool_search import Detail, Filters, SearchService
from services.access import RANK, VARIANT_TIER

logger = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 15
MAX_LIMIT: Final = 100
CALL_VARIANTS: Final = ("call_tool_read", "call_tool_write", "call_tool_destructive")
DETAILS: Final = ("compact", "full")
SURFACE: Final = "mcp"

_CALL_INPUT: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "name": {
            "type": "string",
            "description": "The tool to call, as `server:tool` (from retrieve_tools).",
        },
        "args": {"type": "object", "description": "Arguments for the tool, matching its inputSchema."},
        "args_json": {
            "type": "string",
            "description": "The same arguments as a JSON string (alternative to args).",
        },
        "intent_reason": {"type": "string", "description": "Optional: why you are calling this tool."},
    },
    "required": ["name"],
}

MENU: Final = [
    types.Tool(
        name="retrieve_tools",
        description=(
            "Search the tools of every connected upstream MCP server. Describe what you want to do in plain "
            "words, or name a tool; results are ranked best first and each says which call_tool_* variant "
            "to use. A compact hit gives the tool's parameters as one line (`name?` is optional); "
            "describe_tool, or detail: full, gives its whole inputSchema."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What you want to do, in natural language."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                "detail": {
                    "type": "string",
                    "enum": list(DETAILS),
                    "description": "compact: name, first sentence, one-line signature; full: whole "
                    "definitions with inputSchema. Default: the proxy's tool_response_mode (compact).",
                },
                "read_only_only": {"type": "boolean", "description": "Only tools that just read."},
                "exclude_destructive": {
                    "type": "boolean",
                    "description": "Leave out tools that may delete or overwrite data.",
                },
                "servers": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Only tools of these servers.",
                },
            },
            "required": ["query"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    *(
        types.Tool(
            name=name,
            description=f"Call an upstream tool that {what}. Name it as `server:tool`.",
            input_schema=_CALL_INPUT,
            annotations=annotations,
            execution=types.ToolExecution(task_support="optional"),
        )
        for name, what, annotations in (
            ("call_tool_read", "only reads (no side effects)", types.ToolAnnotations(read_only_hint=True)),
            (
                "call_tool_write",
                "changes something, not destructively",
                types.ToolAnnotations(read_only_hint=False, destructive_hint=False),
            ),
            (
                "call_tool_destructive",
                "may delete or overwrite data",
                types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
            ),
        )
    ),
]


MANAGEMENT_NAMES: Final = frozenset(tool.name for tool in MANAGEMENT_TOOLS)


def structured_result(data: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(data))], structured_content=data
    )


def target_of(name: str, arguments: Mapping[str, Any]) -> tuple[str, str] | None:
    """(server, tool) a `call_tool_*` call reaches (gateway/ext_tasks.py asks, before it runs it)."""
    qualified = arguments.get("name")
    return split_qualified(qualified) if name in CALL_VARIANTS and isinstance(qualified, str) else None


class ProxyTools(McpEndpoint):
    """Handlers of the /mcp server."""

    surface = SURFACE

    def __init__(
        self,
        caller: Caller,
        catalog: CatalogFront,
        rounds: InputRounds,
        tasks: Tasks,
        *,
        search: SearchService,
        management: ManagementTools,
    ) -> None:
        super().__init__(caller, catalog, rounds, tasks)
        self.search = search
        self.management = management
        self.menu = [*MENU, READ_CACHE_TOOL, *MANAGEMENT_TOOLS]
        self.schemas = {tool.name: tool.input_schema for tool in self.menu}
        self.default_detail: Detail = "compact"
        """`tool_response_mode` in the config: what a `retrieve_tools` call that names no `detail` gets."""
        self.menu_changes = ListChanges(self.registry, lambda: signature(self.registry))

    def server(self) -> Server[Any]:
        instructions = (
            "Use retrieve_tools to find a tool among all upstream servers, then call it with the "
            "call_tool_* variant the result names."
        )
        # Prompts and resources of every upstream are served here too (gateway/catalog.py).
        server = CatalogServer(
            "mcpproxy",
            version="0.1.0",
            instructions=instructions,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            get_tool_input_schema=self.schemas.get,
            **self.catalog.handlers(),
        )
        # The instructions and retrieve_tools' description name the caller's servers.
        server.instructions_for = lambda identity: search_instructions(self.registry, identity)
        server.tools_changed = True
        if self.tasks is not None:  # call_tool_* called as a task creates the task at the upstream
            server.task_capability = self.tasks.capability
            self.tasks.install(server, SURFACE, self.start_task)
        return self.catalog.install(server)

    async def list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self.menu_changes.served()
        menu = self.menu_for(identity_of_request(getattr(ctx, "request", None)))
        large = self.caller.large
        return types.ListToolsResult(tools=large.advertise(menu) if large is not None else menu)

    def menu_for(self, identity: Identity) -> list[types.Tool]:
        """The menu less what the caller may not use: call variants above its profile's `max_tier`,
        and `quarantine_security` without the management right."""
        profile = identity.profile
        hidden = set() if identity.management else {"quarantine_security"}
        if profile is not None:
            hidden |= {v for v in CALL_VARIANTS if RANK[VARIANT_TIER[v]] > RANK[profile.max_tier]}
        servers = servers_sentence(self.registry, identity)
        return [
            tool.model_copy(update={"description": (tool.description or "") + servers})
            if tool.name == "retrieve_tools"
            else tool
            for tool in self.menu
            if tool.name not in hidden
        ]

    async def run_notifier(self) -> None:
        """`tools/list_changed` when the servers behind the menu change (retrieve_tools' description
        names them), so an agent re-reads it."""
        while True:
            await self.menu_changes.next_change()
            await self.catalog.announce_tools_changed()

    async def call(self, name: str, arguments: dict[str, Any], context: CallContext) -> ToolAnswer:
        """`tools/call` on /mcp, from the SDK's handler or the fast lane."""
        if name == "retrieve_tools":
            return self._retrieve(arguments, context.identity)
        if name in CALL_VARIANTS:
            return await self._call(name, arguments, context)
        if name in MANAGEMENT_NAMES:
            return await self.management.call(name, arguments, context)
        if name == READ_CACHE and self.caller.large is not None:
            return await self.caller.large.read(arguments, context.identity)
        return error_result(unknown_message("tool", name, [t.name for t in self.menu]))

    def _retrieve(self, arguments: dict[str, Any], identity: Identity) -> types.CallToolResult:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return error_result("retrieve_tools: `query` must be a non-empty string")
        limit = arguments.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return error_result("retrieve_tools: `limit` must be a positive integer")
        detail = arguments.get("detail", self.default_detail)
        if detail not in DETAILS:
            return error_result(f"retrieve_tools: `detail` must be one of {', '.join(DETAILS)}")
        flags = {key: arguments.get(key, False) for key in ("read_only_only", "exclude_destructive")}
        for key, value in flags.items():
            if not isinstance(value, bool):
                return error_result(f"retrieve_tools: `{key}` must be true or false")
        servers = arguments.get("servers")
        if servers is not None and (
            not isinstance(servers, list) or not all(isinstance(s, str) for s in servers)
        ):
            return error_result("retrieve_tools: `servers` must be a list of server names")
        filters = Filters(
            servers=None if servers is None else frozenset(servers),
            read_only_only=flags["read_only_only"],
            exclude_destructive=flags["exclude_destructive"],
        )
        found = self.search.search(query, min(limit, MAX_LIMIT), identity, cast(Detail, detail), filters)
        return structured_result(found)

    async def _call(self, variant: str, arguments: dict[str, Any], context: CallContext) -> ToolAnswer:
        target = self._target(variant, arguments, context)
        if isinstance(target, types.CallToolResult):
            return target
        server, tool_name, args, context = target
        shown, known = str(arguments["name"]), self._known(server)
        answer = await self.caller.call(
            server, tool_name, args, context, shown_name=shown, known=known, variant=variant
        )
        # A compact hit showed the signature, not the schema: a wrong call gets the schema.
        return with_schema(answer, self.registry.find_tool(server, tool_name), args, shown)

    def _known(self, server: str) -> Callable[[], list[str]]:
        """The names an unknown tool's error suggests from (only listed when there is one)."""
        return lambda: [f"{server}:{t.name}" for t in self.registry.tools_of(server)]

    async def start_task(
        self, name: str, arguments: dict[str, Any], context: CallContext, task: bytes
    ) -> Started | types.CallToolResult:
        """call_tool_* called as a task (gateway/tasks.py): the upstream tool's task is created."""
        if name not in CALL_VARIANTS:
            raise MCPError(METHOD_NOT_FOUND, f"{name} cannot be called as a task: only call_tool_* can")
        target = self._target(name, arguments, context)
        if isinstance(target, types.CallToolResult):
            return target
        server, tool_name, args, context = target
        require_task_support(
            self.registry.find_visible(context.identity, server, tool_name), str(arguments["name"])
        )
        shown, known = str(arguments["name"]), self._known(server)
        created = await self.caller.start_task(
            server, tool_name, args, context, task, shown_name=shown, known=known, variant=name
        )
        return created if isinstance(created, types.CallToolResult) else Started(server, tool_name, created)

    def _target(
        self, variant: str, arguments: dict[str, Any], context: CallContext
    ) -> tuple[str, str, dict[str, Any], CallContext] | types.CallToolResult:
        """(server, tool, its arguments, the context with the intent) of a call_tool_* call, or why not."""
        name = arguments.get("name")
        if not isinstance(name, str):
            return error_result(f"{variant}: `name` must be a string like 'server:tool'")
        parsed = split_qualified(name)
        if parsed is None:
            return error_result(f"{variant}: invalid tool name {name!r}: use 'server:tool'")
        server, tool_name = parsed
        args_payload = arguments.get("args")
        if args_payload is None and "args_json" in arguments:
            try:
                args_payload = json.loads(arguments["args_json"])
            except (TypeError, json.JSONDecodeError) as exc:
                return error_result(f"{variant}: args_json is not valid JSON: {exc}")
        if args_payload is None:
            args_payload = {}
        if not isinstance(args_payload, dict):
            return error_result(f"{variant}: args must be a JSON object")
        reason = arguments.get("intent_reason")
        context = dataclasses.replace(context, intent_reason=reason if isinstance(reason, str) else None)
        return server, tool_name, args_payload, context
