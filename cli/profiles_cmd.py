"""`mcpproxy profiles list | set | remove`: the named views of the proxy that clients are bound to.

Every change goes through the proxy (REST), which validates the whole config, writes it atomically and
applies it from the next request on; the file's other settings and servers are kept as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.client import resolve_target, target_options
from cli.output import emit_json, output_option, print_table

TIER_CHOICE = click.Choice(["read", "write", "destructive"])


@click.group("profiles")
def profiles_group() -> None:
    """Profiles: which servers and tools a client sees, up to which tier, and the management right.

    \b
    Examples:
      mcpproxy profiles set coding --servers git,filesystem --max-tier write
      mcpproxy profiles set reader --max-tier read --deny 'memory:*'
      mcpproxy profiles list
      mcpproxy profiles remove reader
    """


def _servers(profile: dict[str, Any]) -> str:
    servers = profile.get("servers")
    return "all" if servers is None else (", ".join(servers) or "none")


def _tools(profile: dict[str, Any]) -> str:
    tools = profile.get("tools") or {}
    parts = [f"allow {', '.join(tools['allow'])}" if tools.get("allow") else ""]
    parts.append(f"deny {', '.join(tools['deny'])}" if tools.get("deny") else "")
    return "; ".join(p for p in parts if p) or "all"


@profiles_group.command("list")
@output_option
@target_options
def list_profiles(
    output: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """The profiles, and what a caller without a credential gets.

    Example: mcpproxy profiles list -o json
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    data = target.call("GET", "/api/v1/profiles")
    if output == "json":
        emit_json(data)
        return
    rows = [
        [
            p["name"],
            _servers(p),
            _tools(p),
            p.get("max_tier", "destructive"),
            "yes" if p.get("management") else "no",
        ]
        for p in data["profiles"]
    ]
    print_table(
        ("PROFILE", "SERVERS", "TOOLS", "MAX TIER", "MANAGEMENT"),
        rows,
        empty="no profiles: every client sees every server (add one with `mcpproxy profiles set NAME`)",
    )
    required = data.get("require_mcp_auth")
    shown = "default (required unless on loopback)" if required is None else str(required).lower()
    click.echo(f"require_mcp_auth: {shown}; anonymous_profile: {data.get('anonymous_profile') or 'none'}")


@profiles_group.command("set")
@click.argument("name")
@click.option("--title", default=None, help="A human-readable title.")
@click.option("--servers", default=None, help="Comma-separated server names; 'all' for every server.")
@click.option("--max-tier", type=TIER_CHOICE, default=None, help="The highest tier of tool it may call.")
@click.option("--allow", multiple=True, help="A `server:tool` glob the profile is limited to (repeatable).")
@click.option("--deny", multiple=True, help="A `server:tool` glob taken out of the profile (repeatable).")
@click.option("--management/--no-management", default=None, help="May it add, change and restart servers.")
@output_option
@target_options
def set_profile(
    name: str,
    title: str | None,
    servers: str | None,
    max_tier: str | None,
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    management: bool | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Create profile NAME, or change the settings given of an existing one (the others stay).

    Example: mcpproxy profiles set coding --servers git,filesystem --max-tier write --deny 'git:git_reset'
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    current = next((p for p in target.call("GET", "/api/v1/profiles")["profiles"] if p["name"] == name), None)
    profile: dict[str, Any] = dict(current or {"name": name})
    if title is not None:
        profile["title"] = title
    if servers is not None:
        listed = [s.strip() for s in servers.split(",") if s.strip()]
        profile["servers"] = None if listed == ["all"] else listed
    if max_tier is not None:
        profile["max_tier"] = max_tier
    tools = dict(profile.get("tools") or {})
    if allow:
        tools["allow"] = list(allow)
    if deny:
        tools["deny"] = list(deny)
    profile["tools"] = tools
    if management is not None:
        profile["management"] = management
    data = target.call("PUT", f"/api/v1/profiles/{name}", json=profile)
    if output == "json":
        emit_json(data)
        return
    stored = next(p for p in data["profiles"] if p["name"] == name)
    tier = stored.get("max_tier", "destructive")
    manages = "yes" if stored.get("management") else "no"
    click.echo(
        f"profile {name} {'changed' if current else 'added'}: servers {_servers(stored)}; "
        f"tools {_tools(stored)}; max tier {tier}; management {manages}"
    )
    if current is None:
        click.echo(
            f"its endpoints: /mcp/p/{name} and /mcp/p/{name}/all; give a client a credential for it with "
            f"`mcpproxy clients add CLIENT --profile {name}`"
        )


@profiles_group.command("remove")
@click.argument("name")
@target_options
def remove_profile(
    name: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """Remove profile NAME (refused while a client is bound to it).

    Example: mcpproxy profiles remove chat
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    target.call("DELETE", f"/api/v1/profiles/{name}")
    click.echo(f"profile {name} removed")
