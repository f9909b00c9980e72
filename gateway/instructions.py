"""What the proxy tells an agent about the servers behind it (issue 22).

An agent that never calls `retrieve_tools` does not know what it would find. So the instructions of
`initialize` (2025 era) and `server/discover` (2026-07-28), and the description of `retrieve_tools`,
name the servers the caller's profile holds, one line each: the config's `description`, else the
upstream's own first sentence, else a few of its tools. They are written when asked for, so they are
current; `/mcp` sends `tools/list_changed` when the set of servers changes (gateway/mcp_proxy.py).
"""

from __future__ import annotations

from typing import Final

from bus.messages import ServerStatus
from gateway.access import Identity
from gateway.registry import Registry

EXAMPLE_TOOLS: Final = 3
SERVERS_IN_DESCRIPTION: Final = 30
"""`retrieve_tools`' description names at most this many servers (then "and N more")."""


def offered(registry: Registry, identity: Identity) -> list[ServerStatus]:
    """The servers whose tools the caller may be offered: in its profile, enabled, not quarantined."""
    view = registry.view(identity)
    return [
        status
        for name, status in sorted(registry.servers.items())
        if status.enabled and not status.quarantined and view.has_server(name)
    ]


def server_line(registry: Registry, status: ServerStatus) -> str:
    tools = registry.tools_of(status.name)
    what = status.summary
    if not what and tools:
        shown = ", ".join(tool.name for tool in tools[:EXAMPLE_TOOLS])
        what = f"tools such as {shown}"
    counted = f"{len(tools)} tool{'s' if len(tools) != 1 else ''}"
    state = "" if status.state == "running" else f"; {status.state} now"
    return f"- {status.name}: {what} ({counted}{state})" if what else f"- {status.name} ({counted}{state})"


def _servers_block(registry: Registry, identity: Identity) -> str:
    servers = offered(registry, identity)
    if not servers:
        return "No upstream server is connected yet."
    lines = "\n".join(server_line(registry, status) for status in servers)
    return f"Connected MCP servers ({len(servers)}):\n{lines}"


def search_instructions(registry: Registry, identity: Identity) -> str:
    """The instructions of `/mcp`: how to reach a tool, and what is there."""
    return (
        "mcpproxy gives you the tools of several MCP servers through a search. Find a tool with "
        "retrieve_tools (describe the task in plain words), then call it as `server:tool` with the "
        "call_tool_* variant the result names.\n" + _servers_block(registry, identity)
    )


def direct_instructions(registry: Registry, identity: Identity) -> str:
    """The instructions of `/mcp/all`: every tool is listed, named `server__tool`."""
    return (
        "mcpproxy lists the tools of several MCP servers here, each named `server__tool`.\n"
        + _servers_block(registry, identity)
    )


def servers_sentence(registry: Registry, identity: Identity) -> str:
    """The sentence `retrieve_tools`' description ends with."""
    names = [status.name for status in offered(registry, identity)]
    if not names:
        return " No server is connected yet."
    shown = ", ".join(names[:SERVERS_IN_DESCRIPTION])
    more = f" and {len(names) - SERVERS_IN_DESCRIPTION} more" if len(names) > SERVERS_IN_DESCRIPTION else ""
    return f" Servers: {shown}{more}."


def signature(registry: Registry) -> tuple[tuple[str, str, bool, bool], ...]:
    """What the instructions depend on, to tell whether they changed."""
    return tuple(
        (name, status.summary, status.enabled, status.quarantined)
        for name, status in sorted(registry.servers.items())
    )
