"""`mcpproxy clients add | list | rotate | revoke`: credentials for MCP clients, each bound to a profile;
`mcpproxy access explain`: why a client may or may not call a tool.

A credential is printed once, when it is made (add, rotate); the proxy keeps only its hash.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from cli.client import resolve_target, target_options
from cli.output import emit_json, output_option, print_table


@click.group("clients")
def clients_group() -> None:
    """Credentials for MCP clients, each bound to a profile of the config.

    \b
    Examples:
      mcpproxy clients add claude-code --profile coding --expires 30d
      mcpproxy clients list
      mcpproxy clients rotate claude-code
      mcpproxy clients revoke claude-code
    """


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _show_issued(data: dict[str, Any], output: str) -> None:
    if output == "json":
        emit_json(data)
        return
    client = data["client"]
    click.echo(data["credential"])
    click.echo(
        f"client {client['name']} (profile {client['profile']}, expires {_when(client.get('expires_at'))}): "
        "this credential is shown once; give it to the client as `Authorization: Bearer <credential>` "
        "or `X-API-Key: <credential>`",
        err=True,
    )


@clients_group.command("add")
@click.argument("name")
@click.option("--profile", required=True, help="The profile the client gets (from `profiles` in the config).")
@click.option(
    "--expires", default=None, metavar="DURATION", help="Expire after this long: 90m, 12h, 30d, 2w."
)
@output_option
@target_options
def add_client(
    name: str,
    profile: str,
    expires: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Make a credential for a client, bound to a profile; it is printed once.

    Example: mcpproxy clients add chat-app --profile reader --expires 30d
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    body: dict[str, Any] = {"name": name, "profile": profile}
    if expires is not None:
        body["expires"] = expires
    _show_issued(target.call("POST", "/api/v1/clients", json=body), output)


@clients_group.command("rotate")
@click.argument("name")
@click.option("--expires", default=None, metavar="DURATION", help="A new expiry (else the old one stays).")
@output_option
@target_options
def rotate_client(
    name: str,
    expires: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Replace a client's credential: the old one is refused from the next request on.

    Example: mcpproxy clients rotate chat-app
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    body = {"expires": expires} if expires is not None else {}
    _show_issued(target.call("POST", f"/api/v1/clients/{name}/rotate", json=body), output)


@clients_group.command("revoke")
@click.argument("name")
@target_options
def revoke_client(
    name: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """Remove a client: its credential is refused from the next request on.

    Example: mcpproxy clients revoke chat-app
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    target.call("DELETE", f"/api/v1/clients/{name}")
    click.echo(f"client {name} revoked")


@clients_group.command("list")
@output_option
@target_options
def list_clients(
    output: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """The clients, their profiles and expiry (never a credential).

    Example: mcpproxy clients list -o json
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    clients = target.call("GET", "/api/v1/clients")["clients"]
    if output == "json":
        emit_json(clients)
        return
    now = time.time()
    rows = [
        [
            c["name"],
            c["profile"],
            _when(c["created_at"]),
            _when(c.get("expires_at")) + (" (expired)" if (c.get("expires_at") or now + 1) <= now else ""),
        ]
        for c in clients
    ]
    print_table(
        ("CLIENT", "PROFILE", "CREATED", "EXPIRES"),
        rows,
        empty="no clients: add one with `mcpproxy clients add`",
    )


@click.group("access")
def access_group() -> None:
    """Who may call what: profiles, clients and tiers (see `mcpproxy clients`).

    Example: mcpproxy access explain memory:delete_entities --client chat-app
    """


@access_group.command("explain")
@click.argument("tool")
@click.option("--client", default=None, help="The client's name (default: a caller without a credential).")
@output_option
@target_options
def explain_access(
    tool: str,
    client: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """The checks a call of TOOL (`server:tool`) would meet, in order, and the fix for the first that fails.

    Example: mcpproxy access explain memory:delete_entities --client chat-app
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    params = {"tool": tool, **({"client": client} if client else {})}
    data = target.call("GET", "/api/v1/access/explain", params=params)
    if output == "json":
        emit_json(data)
        return
    for check in data["checks"]:
        click.echo(f"{'ok  ' if check['ok'] else 'FAIL'}  {check['check']:<13} {check['detail']}")
        if not check["ok"]:
            click.echo(f"      fix: {check['fix']}")
    who = f"client {client}" if client else "a caller without a credential"
    verdict = "may call" if data["allowed"] else "may not call"
    click.echo(f"{who} {verdict} {tool}")


@access_group.command("set")
@click.option(
    "--require-mcp-auth",
    type=click.Choice(["true", "false", "default"]),
    default=None,
    help="Must every MCP caller present a credential? default: yes unless the proxy listens on loopback.",
)
@click.option(
    "--anonymous-profile",
    default=None,
    metavar="PROFILE",
    help="The profile of a loopback caller without a credential; 'none' for the default view.",
)
@target_options
def set_access(
    require_mcp_auth: str | None,
    anonymous_profile: str | None,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Set `require_mcp_auth` and `anonymous_profile` in the config.

    Example: mcpproxy access set --require-mcp-auth true
    """
    body: dict[str, Any] = {}
    if require_mcp_auth is not None:
        body["require_mcp_auth"] = {"true": True, "false": False, "default": None}[require_mcp_auth]
    if anonymous_profile is not None:
        body["anonymous_profile"] = None if anonymous_profile == "none" else anonymous_profile
    if not body:
        raise click.UsageError("give --require-mcp-auth, --anonymous-profile or both")
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    data = target.call("PATCH", "/api/v1/access", json=body)
    required = data.get("require_mcp_auth")
    click.echo(
        f"require_mcp_auth: {'default' if required is None else str(required).lower()}; "
        f"anonymous_profile: {data.get('anonymous_profile') or 'none'}"
    )
