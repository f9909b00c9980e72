"""`mcpproxy agent-instructions`: a snippet for AGENTS.md / CLAUDE.md that tells an agent what is behind
the proxy, from the running proxy's own instructions (gateway/instructions.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import click
import httpx2
import trio

from cli.client import resolve_target, run_async, target_options

MCP_INIT_TIMEOUT_S: Final = 30.0


async def _instructions(url: str, headers: dict[str, str]) -> str:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers, timeout=MCP_INIT_TIMEOUT_S) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        with trio.fail_after(MCP_INIT_TIMEOUT_S):
            result = await session.initialize()
    return result.instructions or ""


@click.command("agent-instructions")
@click.option("--profile", default=None, help="Write it for this profile's view (its /mcp/p/<name>).")
@click.option("--all", "direct", is_flag=True, help="For clients of /mcp/all (every tool listed).")
@target_options
def agent_instructions(
    profile: str | None,
    direct: bool,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Print a Markdown section for AGENTS.md or CLAUDE.md: the proxy's endpoint, how to find and call
    a tool, and the servers behind it, one line each.

    Example: mcpproxy agent-instructions --profile coding >> AGENTS.md
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    path = (f"/mcp/p/{profile}" if profile else "/mcp") + ("/all" if direct else "")
    endpoint = f"{target.url}{path}"
    text = run_async(_instructions, endpoint, target.headers)
    click.echo(f"## MCP tools through mcpproxy\n\nThe MCP server `mcpproxy` ({endpoint}) is connected.")
    click.echo(text)
