"""`mcpproxy registry search | add`: find servers in the MCP registries and add one, quarantined.

The running proxy asks the registries of its config (`registries`, default the official
https://registry.modelcontextprotocol.io) and falls back to the reference servers shipped with it;
`search --offline` reads that list here, with no proxy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.client import resolve_target, target_options, warn
from cli.output import emit_json, output_option, print_table
from services import mcp_registry


@click.group("registry")
def registry_group() -> None:
    """Find MCP servers in the registries and add them (always quarantined).

    \b
    Examples:
      mcpproxy registry search github
      mcpproxy registry search --offline files
      mcpproxy registry add modelcontextprotocol/filesystem
      mcpproxy registry add io.github.owner/server --name mine --remote
    """


@registry_group.command("search")
@click.argument("query", nargs=-1)
@click.option(
    "--offline", is_flag=True, help="Only the reference servers shipped with mcpproxy; no proxy needed."
)
@output_option
@target_options
def search(
    query: tuple[str, ...],
    offline: bool,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Servers whose name or description matches QUERY (the latest version of each).

    Example: mcpproxy registry search --offline files
    """
    words = " ".join(query)
    if offline:
        data: dict[str, Any] = {
            "servers": [mcp_registry.summary(e, "offline") for e in mcp_registry.search_offline(words)],
            "errors": [],
        }
    else:
        target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
        data = target.call("GET", "/api/v1/registry/search", params={"q": words})
    if output == "json":
        emit_json(data)
        return
    for error in data["errors"]:
        warn(f"{error} (showing what else was found)")
    rows = [
        [s["id"], s["version"], ", ".join(s["packages"] + s["remotes"]), s["description"][:80], s["source"]]
        for s in data["servers"]
    ]
    print_table(("ID", "VERSION", "RUNS", "DESCRIPTION", "FROM"), rows, empty=f"nothing found for {words!r}")
    if rows:
        click.echo("add one: mcpproxy registry add ID")


@registry_group.command("add")
@click.argument("server_id", metavar="ID")
@click.option("--name", default=None, help="The server's name here (default: the last part of ID).")
@click.option("--remote", is_flag=True, help="Use its remote URL rather than running its package.")
@click.option("--dry-run", is_flag=True, help="Show the server config; add nothing.")
@output_option
@target_options
def add(
    server_id: str,
    name: str | None,
    remote: bool,
    dry_run: bool,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Add server ID from a registry (or the shipped list), quarantined until you approve it.

    Its required secrets become ${keyring:NAME} references: set each with `mcpproxy secrets set`.

    Example: mcpproxy registry add modelcontextprotocol/filesystem
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    body: dict[str, Any] = {"id": server_id, "remote": remote, "dry_run": dry_run}
    if name:
        body["name"] = name
    data = target.call("POST", "/api/v1/registry/add", json=body)
    if output == "json":
        emit_json(data)
        return
    server = data["server"]
    runs = server.get("url") or " ".join([server.get("command", ""), *server.get("args", [])])
    verb = "would add" if dry_run else "added"
    click.echo(f"{verb} {server['name']} (quarantined): {runs}")
    for need in data["needs"]:
        click.echo(f"  needs: {need}")
    if not dry_run:
        click.echo(f"approve it when ready: mcpproxy upstream approve {server['name']}")
