"""`mcpproxy tools list | search | call | approve | tier`: the upstream tools, as an MCP client of the
proxy sees them, and the tier overrides.

`list` reads REST; `search` and `call` go through the proxy's own `/mcp`
endpoint with the MCP SDK client (`retrieve_tools`, `call_tool_*`), exactly
the way an AI client does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import click
import httpx2
import trio

from cli.client import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    CommandError,
    Target,
    complete_server_names,
    die,
    resolve_target,
    run_async,
    target_options,
)
from cli.output import emit_json, output_option, print_table
from services.access import CALL_VARIANT, annotated_tier

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

MCP_INIT_TIMEOUT_S: Final = 30.0
MCP_READ_TIMEOUT_S: Final = 600.0
SEARCH_LIMIT_MAX: Final = 100
DESCRIPTION_WIDTH: Final = 80


def call_with(annotations: dict[str, Any] | None) -> str:
    """The call variant a tool needs by the MCP defaults (used when the proxy does not say, which
    one of this version always does; `tool_tiers` in the config may change it)."""
    return CALL_VARIANT[annotated_tier(annotations).tier]


def first_line(text: str | None, width: int = DESCRIPTION_WIDTH) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@click.group("tools")
def tools_group() -> None:
    """Find and call upstream tools through the proxy.

    \b
    Examples:
      mcpproxy tools list github
      mcpproxy tools approve github create_issue
      mcpproxy tools search "create an issue"
      mcpproxy tools call github:create_issue --args '{"title": "hi"}'
    """


@tools_group.command("list")
@click.argument("server", required=False, shell_complete=complete_server_names)
@output_option
@target_options
def list_tools(
    server: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """The tools of one server, or of every server.

    Example: mcpproxy tools list echo -o json | jq -r '.[].name'
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    if server is None:
        names = [s["name"] for s in target.call("GET", "/api/v1/servers")["servers"]]
    else:
        names = [server]
    tools = []
    for name in names:
        for tool in target.call("GET", f"/api/v1/servers/{name}/tools")["tools"]:
            tools.append({"server": name, "call_with": call_with(tool.get("annotations")), **tool})
    if output == "json":
        emit_json(tools)
        return
    rows = [
        [
            f"{t['server']}:{t['name']}",
            t.get("approval", "approved"),
            f"{t.get('tier', '?')} ({t.get('tier_source', '?')})",
            t["call_with"],
            first_line(t.get("description")),
        ]
        for t in tools
    ]
    empty = (
        f"{server} has no tools (is it running? `mcpproxy upstream show {server}`)" if server else "no tools"
    )
    print_table(("TOOL", "APPROVAL", "TIER (SOURCE)", "CALL WITH", "DESCRIPTION"), rows, empty=empty)
    held = sorted({t["server"] for t in tools if t.get("approval", "approved") != "approved"})
    for name in held:
        click.echo(
            f"{name} has held tools (new or changed: not listed to clients, not callable); review them "
            f"with `mcpproxy tools list {name} -o json` (a changed one has its diff), then "
            f"`mcpproxy tools approve {name} [TOOL ...]`",
            err=True,
        )


@tools_group.command("approve")
@click.argument("server", shell_complete=complete_server_names)
@click.argument("names", nargs=-1, metavar="[TOOL ...]")
@output_option
@target_options
def approve_tools(
    server: str,
    names: tuple[str, ...],
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Approve held tools (changed or new) of SERVER: the TOOLs (the upstream's names), or all of
    them; clients can then find and call them. Review a changed one first: `mcpproxy tools list
    SERVER -o json` shows its diff.

    Example: mcpproxy tools approve github create_issue
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    path = f"/api/v1/servers/{server}/tools"
    before = {t["name"]: t.get("approval", "approved") for t in target.call("GET", path)["tools"]}
    unknown = [n for n in names if n not in before]
    if unknown:
        die(
            f"{server} has no tool {', '.join(map(repr, unknown))}; its tools: "
            f"{', '.join(sorted(before)) or 'none (is it running?)'}",
            EXIT_NOT_FOUND,
        )
    data = target.call("POST", f"{path}/approve", json={"tools": list(names)} if names else None)
    if output == "json":
        emit_json(data)
        return
    asked = list(names) if names else sorted(before)
    changed = [n for n in asked if before[n] != "approved"]
    for name in changed:
        click.echo(f"{server}:{name}: approved (was {before[name]})")
    for name in names:
        if before[name] == "approved":
            click.echo(f"{server}:{name}: was already approved; nothing changed")
    if not changed and not names:
        click.echo(f"{server}: no tools were held; nothing changed")
    if data.get("still_held"):
        click.echo(f"{server}: still held: {', '.join(data['still_held'])}")


@tools_group.command("tier")
@click.argument("pattern", metavar="SERVER:TOOL")
@click.argument("tier", type=click.Choice(["read", "write", "destructive"]), required=False)
@click.option("--clear", is_flag=True, help="Drop the override: the tools' annotations decide again.")
@target_options
def set_tier(
    pattern: str,
    tier: str | None,
    clear: bool,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Override the tier of the tools matching SERVER:TOOL (globs allowed), or --clear the override.

    A tool's tier says which `call_tool_*` calls it and which profiles may: read < write < destructive.

    \b
    Examples:
      mcpproxy tools tier memory:read_graph read
      mcpproxy tools tier 'git:git_log*' read
      mcpproxy tools tier memory:read_graph --clear
    """
    if (tier is None) == (not clear):
        die("give a tier (read, write or destructive) or --clear, not both", EXIT_FAILURE)
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    path = f"/api/v1/tool-tiers/{quote(pattern, safe=':*?[]')}"
    if clear:
        target.call("DELETE", path)
        click.echo(f"{pattern}: override removed; the tier comes from the tools' annotations")
    else:
        target.call("PUT", path, json={"tier": tier})
        click.echo(f"{pattern}: tier {tier} (override in tool_tiers)")


@asynccontextmanager
async def open_session(target: Target) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session on the proxy's /mcp endpoint."""
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    timeout = httpx2.Timeout(30.0, read=MCP_READ_TIMEOUT_S)
    async with (
        httpx2.AsyncClient(headers=target.headers, timeout=timeout) as http,
        streamable_http_client(f"{target.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        with trio.fail_after(MCP_INIT_TIMEOUT_S):
            await session.initialize()
        yield session


async def _call(target: Target, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call one /mcp menu tool; the result as JSON (camelCase, like the wire)."""
    import mcp.types as types

    try:
        async with open_session(target) as session:
            result = await session.call_tool(tool, arguments)
    except (httpx2.ConnectError, httpx2.ConnectTimeout):
        raise CommandError(f"cannot reach {target.url}/mcp", EXIT_UNREACHABLE) from None
    except trio.TooSlowError:
        raise CommandError(f"{target.url}/mcp did not initialize in {MCP_INIT_TIMEOUT_S:g}s") from None
    if not isinstance(result, types.CallToolResult):
        raise CommandError(f"{tool}: unexpected answer {type(result).__name__}")
    dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def text_of(result: dict[str, Any]) -> str:
    parts = []
    for block in result.get("content", []):
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        else:
            parts.append(f"[{block.get('type')} {block.get('mimeType', '')}]".replace(" ]", "]"))
    return "\n".join(parts)


@tools_group.command("search")
@click.argument("query")
@click.option("-n", "--limit", type=click.IntRange(1, SEARCH_LIMIT_MAX), default=15, show_default=True)
@output_option
@target_options
def search_tools(
    query: str,
    limit: int,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Search every running server's tools, best first (the proxy's `retrieve_tools`).

    Example: mcpproxy tools search "read a file" --limit 5
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    target.call("GET", "/api/v1/status")  # one clear line if no proxy runs
    result = run_async(_call, target, "retrieve_tools", {"query": query, "limit": limit})
    if result.get("isError"):
        die(text_of(result))
    hits = (result.get("structuredContent") or json.loads(text_of(result)))["tools"]
    if output == "json":
        emit_json(hits)
        return
    rows = [[h["name"], h["call_with"], f"{h['score']:.3f}", first_line(h.get("description"))] for h in hits]
    print_table(("TOOL", "CALL WITH", "SCORE", "DESCRIPTION"), rows, empty="no tools match")


def _parse_args(value: str) -> dict[str, Any]:
    text = sys.stdin.read() if value == "-" else value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--args") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter('expected a JSON object, like \'{"path": "/tmp"}\'', param_hint="--args")
    return parsed


async def _variant(target: Target, qualified: str, annotations: dict[str, Any] | None) -> str:
    """Which call_tool_* the proxy wants, from the tool's own search hit."""
    tool_name = qualified.split(":", 1)[1]
    found = await _call(target, "retrieve_tools", {"query": tool_name, "limit": SEARCH_LIMIT_MAX})
    for hit in (found.get("structuredContent") or {}).get("tools", []):
        if hit.get("name") == qualified:
            variant: str = hit["call_with"]
            return variant
    return call_with(annotations)


async def _variant_and_call(
    target: Target, qualified: str, annotations: dict[str, Any] | None, arguments: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    variant = await _variant(target, qualified, annotations)
    return variant, await _call(target, variant, {"name": qualified, "args": arguments})


@tools_group.command("call")
@click.argument("tool", metavar="SERVER:TOOL")
@click.option(
    "--args", "args_json", default="{}", metavar="JSON", help="Arguments as a JSON object ('-': stdin)."
)
@output_option
@target_options
def call_tool(
    tool: str,
    args_json: str,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Call an upstream tool through the proxy and print its result (exit 1 if the tool reports an error).

    The call_tool_read/write/destructive variant is the one the proxy names for the tool.
    With -o json the whole MCP result is printed (content, structuredContent, isError).

    Example: mcpproxy tools call echo:add --args '{"a": 2, "b": 3}'
    """
    server, sep, tool_name = tool.partition(":")
    if not sep or not server or not tool_name:
        raise click.BadParameter(
            f"{tool!r}: name it SERVER:TOOL, e.g. github:create_issue", param_hint="TOOL"
        )
    arguments = _parse_args(args_json)
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    status = target.call("GET", f"/api/v1/servers/{server}")["server"]
    tools = target.call("GET", f"/api/v1/servers/{server}/tools")["tools"]
    known = {t["name"]: t for t in tools}
    if tool_name not in known:
        if status["state"] != "running":
            error = f"; last error: {status['last_error']}" if status.get("last_error") else ""
            die(f"server {server!r} is not running (state: {status['state']}){error}", EXIT_FAILURE)
        listing = ", ".join(sorted(known)) or "none"
        die(f"unknown tool {tool!r}: {server} has {listing}", EXIT_NOT_FOUND)
    _variant_used, result = run_async(
        _variant_and_call, target, tool, known[tool_name].get("annotations"), arguments
    )
    if output == "json":
        emit_json(result)
    elif result.get("isError"):
        text = text_of(result)
        die(text if text.startswith(f"{tool}:") else f"{tool}: {text}", EXIT_FAILURE)  # named once
    elif "structuredContent" in result and not any(
        b.get("type") == "text" for b in result.get("content", [])
    ):
        click.echo(json.dumps(result["structuredContent"], indent=2, ensure_ascii=False))
    else:
        click.echo(text_of(result))
    if result.get("isError"):
        sys.exit(EXIT_FAILURE)
