"""Why a tool cannot be called right now, in words an agent can act on.

Quarantine and tool pinning are enforced here for every surface (/mcp and
/mcp/all): only approved tools of running, non-quarantined servers pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bus.messages import HeldPrompt, ToolInfo
from gateway.registry import Registry, serves
from gateway.tool_names import direct_name, unknown_message


def approve_hint(server: str) -> str:
    """How a person approves a quarantined server; reads after "until" and after a colon."""
    return (
        f"a human approves it (`mcpproxy upstream approve {server}`, "
        f"or POST /api/v1/servers/{server}/unquarantine)"
    )


def approve_tool_hint(server: str, tool: str) -> str:
    """How a person approves a held (new or changed) tool."""
    return (
        f"a human approves it (`mcpproxy tools approve {server} {tool}`, "
        f"or POST /api/v1/servers/{server}/tools/approve)"
    )


RefusalKind = Literal[
    "unknown_server",
    "unknown_tool",
    "quarantined",
    "held",
    "destructive_variant",
    "write_variant",
    "unavailable",
]
"""Why a call was refused before it reached an upstream (see CallErrorKind in gateway/calling.py)."""


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    message: str


def check(
    registry: Registry, server: str, tool: str, shown_name: str, known: Callable[[], Iterable[str]]
) -> ToolInfo | Refusal:
    """The tool when callable, else why not; `known` lists names for the "did you mean"."""
    status = registry.servers.get(server)
    if status is None:
        return Refusal("unknown_server", unknown_message("server", server, registry.servers))
    if status.quarantined:
        return Refusal(
            "quarantined",
            f"server {server!r} is quarantined: its tools cannot be called until {approve_hint(server)}",
        )
    found = registry.find_tool(server, tool)
    if found is not None:
        return found
    held = registry.held_tool(server, tool)
    if held is not None:
        why = "is new" if held.approval == "pending" else "changed since it was approved"
        return Refusal(
            "held",
            f"tool {shown_name!r} {why} and is held until {approve_tool_hint(server, tool)}",
        )
    if not serves(status):
        detail = f"; last error: {status.last_error}" if status.last_error else ""
        return Refusal("unavailable", f"server {server!r} is not running (state: {status.state}){detail}")
    return Refusal("unknown_tool", unknown_message("tool", shown_name, known()))


def quarantine_error(server: str) -> dict[str, Any]:
    return {"error": "quarantined", "server": server, "action": approve_hint(server)}


def held_prompt(server: str, prompt: str, held: HeldPrompt) -> Refusal:
    """Why prompt pinning refuses `prompt` of `server` (named as MCP clients see it)."""
    why = "is new" if held.approval == "pending" else "changed since it was approved"
    return Refusal(
        "held",
        f"prompt {direct_name(server, prompt)!r} {why} and is held until a human approves it: "
        f"POST /api/v1/servers/{server}/prompts/approve",
    )
