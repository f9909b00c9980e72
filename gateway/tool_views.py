"""How an upstream tool is shown to clients: its MCP definition under the name the client uses.

`/mcp/all` lists tools by their direct names, `/mcp`'s `retrieve_tools` and
`describe_tool` by `server:tool`; each shows the same definition, built here.
"""

from __future__ import annotations

from typing import Any

from bus.messages import ToolInfo


def tool_definition(tool: ToolInfo, name: str, *, full: bool = True) -> dict[str, Any]:
    """The tool as MCP describes it (camelCase keys, optional ones only when set), named `name`.

    `full=False` leaves out the output schema and `_meta`: a search hit is for choosing a tool,
    and every key costs the agent context (`describe_tool` gives the rest).
    """
    shown: dict[str, Any] = {"name": name, "description": tool.description, "inputSchema": tool.input_schema}
    if tool.title:
        shown["title"] = tool.title
    if tool.annotations:
        shown["annotations"] = tool.annotations
    if tool.execution:  # `taskSupport`: whether the tool is called as a task (gateway/tasks.py)
        shown["execution"] = tool.execution
    if full and tool.output_schema:
        shown["outputSchema"] = tool.output_schema
    if full and tool.meta:  # an MCP App's ui.resourceUri stays readable as it is (gateway/catalog.py)
        shown["_meta"] = tool.meta
    return shown
