"""How an upstream tool is shown to clients: its MCP definition under the name the client uses.

`/mcp/all` lists tools by their direct names, `/mcp`'s `retrieve_tools` and
`describe_tool` by `server:tool`; each shows the same definition, built here. Two shorter views
stand in for it where the agent's context is the cost: a compact search hit (`retrieve_tools`
with `detail: "compact"`) and a schema-deferred listing (`/mcp/all` with `direct_mode:
"deferred"`), both carrying the one-line signature of gateway/tool_summaries.py.
"""

from __future__ import annotations

from typing import Any, Final

from bus.messages import ToolInfo
from gateway.tool_summaries import first_sentence, signature

DEFERRED_SCHEMA: Final = {"type": "object", "additionalProperties": True}
"""What a schema-deferred listing gives as every tool's input schema: any object. Both SDKs' clients
accept it (the TypeScript one requires only `type: "object"`); the real schema is one `describe_tool`
away, and an error result carries it when a call's arguments do not fit (gateway/argument_errors.py)."""


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


def compact_definition(tool: ToolInfo, name: str) -> dict[str, Any]:
    """A search hit for choosing a tool: its name, its description's first sentence and its
    parameters as one line (`owner: string, state?: "open"|"closed"`); no schema."""
    return {
        "name": name,
        "description": first_sentence(tool.description),
        "signature": signature(tool.input_schema),
    }


def deferred_definition(tool: ToolInfo, name: str) -> dict[str, Any]:
    """The tool as a schema-deferred `/mcp/all` lists it: any object as its input schema, the
    signature at the end of its description, no output schema (a client would check results
    against it); annotations, `execution` and `_meta` stay, since clients act on them."""
    params = signature(tool.input_schema) or "none"
    shown = tool_definition(tool, name)
    shown["description"] = f"{tool.description.rstrip()}\n\nArguments: {params}".lstrip()
    shown["inputSchema"] = dict(DEFERRED_SCHEMA)
    shown.pop("outputSchema", None)
    return shown
