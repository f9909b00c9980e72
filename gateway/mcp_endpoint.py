"""What the two MCP endpoints share: `/mcp` (gateway/mcp_proxy.py) and `/mcp/all` (gateway/mcp_direct.py)
call through one `Caller`, serve prompts and resources through their own `CatalogFront`, and share the
2026-07-28 input rounds and the tasks."""

from __future__ import annotations

from typing import Any

import mcp.types as types

from gateway.asks import InputRounds, ToolAnswer
from gateway.call_context import CallContext, context_from_mcp
from gateway.calling import Caller
from gateway.catalog import CatalogFront
from gateway.tasks import Tasks


class McpEndpoint:
    """The parts an MCP endpoint's handlers work with, and its `tools/call` handler."""

    surface: str
    """What the activity log calls the endpoint (each subclass names its own)."""

    def __init__(
        self, caller: Caller, catalog: CatalogFront, rounds: InputRounds, tasks: Tasks | None
    ) -> None:
        self.caller = caller
        self.registry = caller.registry
        self.upstreams = caller.upstreams
        self.catalog = catalog
        self.rounds = rounds
        self.tasks = tasks

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> ToolAnswer:
        """The SDK's `tools/call` handler: `call`, through the 2026-07-28 input rounds."""
        arguments = dict(params.arguments or {})
        return await self.rounds.call(
            ctx,
            params,
            context_from_mcp(ctx, self.surface),
            lambda context: self.call(params.name, arguments, context),
        )

    async def call(self, name: str, arguments: dict[str, Any], context: CallContext) -> ToolAnswer:
        """`tools/call` of tool `name`, from the SDK's handler or the fast lane."""
        raise NotImplementedError
