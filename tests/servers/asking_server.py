"""A small stdio MCP server that asks its client before it acts, in the client's own era.

    python tests/servers/asking_server.py

Tool `roots`: asks the client for its roots (2025 era) and answers their URIs, one per line.
Tool `chatty`: sends two log messages (`notifications/message`, logger `chatter`) while it runs.
Tool `confirm(action)`: asks the user (form elicitation, one boolean `ok`) whether to do `action`,
then answers `did <action>` or `skipped <action>`. To a client of the 2026-07-28 era it answers
with an `InputRequiredResult` (its `requestState` names the action, so a retry for another action
is refused); to a 2025-era client it sends `elicitation/create` while the call is open.
"""

from __future__ import annotations

from typing import Any

import mcp.types as types
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

QUESTION = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def build() -> Server[Any]:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        schema = {"type": "object", "properties": {"action": {"type": "string"}}, "required": ["action"]}
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name="confirm",
                    input_schema=schema,
                    annotations=types.ToolAnnotations(read_only_hint=True),
                ),
                types.Tool(
                    name="chatty",
                    input_schema={"type": "object"},
                    annotations=types.ToolAnnotations(read_only_hint=True),
                ),
                types.Tool(
                    name="roots",
                    input_schema={"type": "object"},
                    annotations=types.ToolAnnotations(read_only_hint=True),
                ),
            ]
        )

    async def call_tool(
        ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        if params.name == "roots":
            listed = await ctx.session.send_request(
                types.ListRootsRequest(),
                types.ListRootsResult,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
            )
            text = "\n".join(str(root.uri) for root in listed.roots)
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
        if params.name == "chatty":
            for n in (1, 2):
                await ctx.session.send_log_message(
                    "info", f"chat {n}", logger="chatter", related_request_id=ctx.request_id
                )
            return types.CallToolResult(content=[types.TextContent(type="text", text="chatted")])
        action = str((params.arguments or {}).get("action"))
        message = f"May I {action}?"
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            answer = (params.input_responses or {}).get("ask")
            if answer is None:
                return types.InputRequiredResult.model_validate(
                    {
                        "inputRequests": {
                            "ask": {
                                "method": "elicitation/create",
                                "params": {"mode": "form", "message": message, "requestedSchema": QUESTION},
                            }
                        },
                        "requestState": f"state-for-{action}",
                    }
                )
            if params.request_state != f"state-for-{action}":
                raise MCPError(code=-32602, message="requestState does not match this action")
            result = types.ElicitResult.model_validate(answer.model_dump(mode="json", by_alias=True))
        else:
            result = await ctx.session.send_request(
                types.ElicitRequest(
                    params=types.ElicitRequestFormParams(message=message, requested_schema=QUESTION)
                ),
                types.ElicitResult,
                metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
            )
        done = result.action == "accept" and bool((result.content or {}).get("ok"))
        text = f"did {action}" if done else f"skipped {action}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server("asking", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    server = build()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    trio.run(main)
