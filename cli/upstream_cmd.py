"""`mcpproxy upstream list | show | add | remove | patch | enable | disable | restart | logs | approve`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Final

import click

from cli.client import (
    Target,
    management_target as _target,
    name_argument,
    target_options,
)
from cli.output import emit_json, output_option, print_table
from cli.patch_flags import (
    build_patch,
    check_fits,
    describe_patch,
    duration_value,
    env_callback,
    header_options,
    headers_callback,
    timeout_options,
    transport_after,
)
from cli.server_table import print_pending_change, print_server, server_rows
from cli.upstream_logs import logs_command
from cli.waiting import DEFAULT_WAIT_S, check_can_run, finish_wait, wait_for_server, wait_options

PROTOCOLS: Final = ("stdio", "http", "streamable-http", "sse", "auto")


@click.group("upstream")
def upstream_group() -> None:
    """List, add, change and control upstream MCP servers (through the running proxy).

    \b
    Examples:
      mcpproxy upstream list
      mcpproxy upstream add fs -- npx -y @modelcontextprotocol/server-filesystem ~/projects
      mcpproxy upstream patch synapbus --header "X-New: v" --header-remove X-Old
      mcpproxy upstream restart fs --wait
    """


# --- reading -----------------------------------------------------------------------------------------


SERVER_COLUMNS: Final = ("NAME", "STATE", "PROTOCOL", "TOOLS", "FLAGS", "LAST ERROR")


@upstream_group.command("list")
@output_option
@target_options
def list_servers(
    output: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """Every server with its state, tool count and last error.

    Example: mcpproxy upstream list -o json | jq -r '.[] | select(.state != "running") | .name'
    """
    servers = _target(config_path, data_dir, url, api_key).call("GET", "/api/v1/servers")["servers"]
    if output == "json":
        emit_json(servers)
        return
    print_table(SERVER_COLUMNS, server_rows(servers), empty="no servers configured")


@upstream_group.command("show")
@name_argument
@output_option
@target_options
def show_server(
    name: str,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """One server: its config (secret values masked) and live status.

    Example: mcpproxy upstream show synapbus
    """
    server = _target(config_path, data_dir, url, api_key).call("GET", f"/api/v1/servers/{name}")["server"]
    if output == "json":
        emit_json(server)
        return
    print_server(server)


SHOWN_FIELDS: Final = (
    "name", "state", "protocol", "command", "args", "url", "working_dir", "enabled", "quarantined",
)  # fmt: skip


# --- changing ----------------------------------------------------------------------------------------


@upstream_group.command("patch")
@name_argument
@header_options
@click.option("--arg", "args", multiple=True, metavar="ARG", help="Replace args; repeat for each one.")
@click.option("--clear-args", is_flag=True, help="Set args to none.")
@click.option("--server-url", "server_url", default=None, help="New URL of a remote server.")
@click.option("--command", default=None, help="New command of a stdio server.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default=None, help="New protocol.")
@click.option("--working-dir", default=None, help="New working directory of a stdio server.")
@click.option("--enabled/--disabled", "enabled", default=None, help="Enable or disable it.")
@timeout_options
@output_option
@target_options
def patch_server(
    name: str,
    headers: list[tuple[str, str]],
    header_removes: tuple[str, ...],
    env: list[tuple[str, str]],
    env_removes: tuple[str, ...],
    args: tuple[str, ...],
    clear_args: bool,
    server_url: str | None,
    command: str | None,
    protocol: str | None,
    working_dir: str | None,
    enabled: bool | None,
    init_timeout: str | None,
    call_tool_timeout: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Change a server in one request (a JSON Merge Patch); it restarts with the new settings.

    Flags repeat and mix; whatever is not named is kept. Values are never echoed back.

    \b
    Examples:
      mcpproxy upstream patch synapbus --header "X-Trace: on"
      mcpproxy upstream patch synapbus --header "Authorization: Bearer new-token"
      mcpproxy upstream patch synapbus --header-remove "X-Stale"
      mcpproxy upstream patch synapbus --header "X-New: v" --header-remove "X-Old"
      mcpproxy upstream patch obsidian-pilot --env "LOG_LEVEL=debug"
      mcpproxy upstream patch obsidian-pilot --env-remove "OBSOLETE"
      mcpproxy upstream patch slow-server --call-tool-timeout 5m --init-timeout 60
    """
    if args and clear_args:
        raise click.UsageError("use --arg or --clear-args, not both")
    patch = build_patch(
        headers=headers,
        header_removes=header_removes,
        env=env,
        env_removes=env_removes,
        args=[] if clear_args else (list(args) if args else None),
        url=server_url,
        command=command,
        protocol=protocol,
        working_dir=working_dir,
        enabled=enabled,
        init_timeout=init_timeout,
        call_tool_timeout=call_tool_timeout,
    )
    if not patch:
        raise click.UsageError("nothing to change: give at least one of --header, --env, --arg, ...")
    target = _target(config_path, data_dir, url, api_key)
    current = target.call("GET", f"/api/v1/servers/{name}")["server"]
    check_fits(name, transport_after(current, patch), headers=bool(headers), env=bool(env))
    notes = []
    for field, noun, removes in (("headers", "header", header_removes), ("env", "variable", env_removes)):
        absent = [key for key in removes if key not in (current.get(field) or {})]
        for key in absent:
            del patch[field][key]
            notes.append(f"{name} has no {noun} {key}; nothing to remove")
        if field in patch and not patch[field]:
            del patch[field]
    for note in notes:
        click.echo(note, err=True)
    if not patch:
        if output == "json":
            emit_json(current)
        else:
            click.echo(f"{name}: nothing changed")
        return
    server = target.call("PATCH", f"/api/v1/servers/{name}", json=patch)["server"]
    if output == "json":
        emit_json(server)
        return
    click.echo(f"patched {name}: {describe_patch(patch)}")


@upstream_group.command("add")
@click.argument("name")
@click.argument("command_line", nargs=-1, metavar="[-- COMMAND [ARGS]...]")
@click.option("--server-url", "server_url", default=None, help="URL of a remote (HTTP or SSE) server.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default=None, help="Default: from command/url.")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    callback=headers_callback,
    help="HTTP header (repeatable).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    callback=env_callback,
    help="Environment variable (repeatable).",
)
@click.option("--working-dir", default=None, help="Working directory of a stdio server.")
@click.option("--disabled", is_flag=True, help="Add it without starting it.")
@click.option("--quarantined", is_flag=True, help="Add it quarantined (needs `upstream approve`).")
@timeout_options
@wait_options
@output_option
@target_options
def add_server(
    name: str,
    command_line: tuple[str, ...],
    server_url: str | None,
    protocol: str | None,
    headers: list[tuple[str, str]],
    env: list[tuple[str, str]],
    working_dir: str | None,
    disabled: bool,
    quarantined: bool,
    init_timeout: str | None,
    call_tool_timeout: str | None,
    wait: bool,
    timeout_s: float,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Add a server: a command after `--` (stdio), or --server-url (remote).

    (--url is the proxy's own address, as on every command.)

    \b
    Examples:
      mcpproxy upstream add fs -- npx -y @modelcontextprotocol/server-filesystem ~/projects
      mcpproxy upstream add remote --server-url https://api.example.com/mcp \\
        --header 'Authorization: Bearer ${keyring:gh_token}'
    """
    if bool(command_line) == bool(server_url):
        raise click.UsageError("give either a command (after --) or --server-url")
    server: dict[str, Any] = {"name": name}
    if command_line:
        server["command"], server["args"] = command_line[0], list(command_line[1:])
    else:
        server["url"] = server_url
    if protocol:
        server["protocol"] = protocol
    check_fits(name, transport_after(server, {}), headers=bool(headers), env=bool(env))
    for key, given in (("init_timeout", init_timeout), ("call_tool_timeout", call_tool_timeout)):
        if given is not None:
            server[key] = duration_value(given)
    if headers:
        server["headers"] = dict(headers)
    if env:
        server["env"] = dict(env)
    if working_dir:
        server["working_dir"] = working_dir
    if disabled:
        server["enabled"] = False
    if quarantined:
        server["quarantined"] = True
    target = _target(config_path, data_dir, url, api_key)
    if wait and not disabled and not quarantined:
        outcome = wait_for_server(target, name, "POST", "/api/v1/servers", timeout_s, body=server)
        finish_wait(name, outcome, output)
        return
    added = target.call("POST", "/api/v1/servers", json=server)["server"]
    if output == "json":
        emit_json(added)
        return
    note = " (quarantined: approve it with `mcpproxy upstream approve " + name + "`)" if quarantined else ""
    click.echo(f"added {name}{note}")


@upstream_group.command("remove")
@name_argument
@click.option("-y", "--yes", is_flag=True, help="Do not ask (asked only on a terminal).")
@output_option
@target_options
def remove_server(
    name: str,
    yes: bool,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Stop a server and remove it from the config.

    Example: mcpproxy upstream remove fs --yes
    """
    target = _target(config_path, data_dir, url, api_key)
    if not yes and sys.stdin.isatty():
        target.call("GET", f"/api/v1/servers/{name}")  # unknown names fail before the question
        click.confirm(f"remove server {name!r} from {target.url}?", abort=True)
    data = target.call("DELETE", f"/api/v1/servers/{name}")
    if output == "json":
        emit_json(data)
        return
    click.echo(f"removed {name}")


def _simple_action(action: str, done: str, doc: str, *, waits: bool = True) -> Any:
    @output_option
    @target_options
    def command(
        name: str,
        output: str,
        config_path: Path | None,
        data_dir: Path | None,
        url: str | None,
        api_key: str | None,
        wait: bool = False,
        timeout_s: float = DEFAULT_WAIT_S,
    ) -> None:
        target = _target(config_path, data_dir, url, api_key)
        path = f"/api/v1/servers/{name}/{action}"
        if wait:
            check_can_run(target, name, action)
            outcome = wait_for_server(target, name, "POST", path, timeout_s, needs_move=action == "restart")
            finish_wait(name, outcome, output)
            return
        if action in ("enable", "disable") and output != "json":
            server = target.call("GET", f"/api/v1/servers/{name}")["server"]
            if bool(server.get("enabled", True)) == (action == "enable"):
                click.echo(f"{name}: already {done}; nothing changed")
                return
        data = target.call("POST", path)
        if output == "json":
            emit_json(data)
            return
        click.echo(f"{name}: {done}")

    command.__doc__ = doc
    return name_argument(wait_options(command) if waits else command)


restart = upstream_group.command("restart")(
    _simple_action(
        "restart",
        "restart requested (add --wait to wait for it)",
        """Restart a server now (also one that gave up: `fatal`).

        With --wait: follow it until it runs again, or report its last error (exit 1).

        Example: mcpproxy upstream restart fs --wait --timeout 30
        """,
    )
)
enable = upstream_group.command("enable")(
    _simple_action(
        "enable",
        "enabled",
        """Enable a server (saved in the config) and start it.

        Example: mcpproxy upstream enable fs --wait
        """,
    )
)
disable = upstream_group.command("disable")(
    _simple_action(
        "disable",
        "disabled",
        """Stop a server and keep it stopped (saved in the config).

        Example: mcpproxy upstream disable fs
        """,
        waits=False,
    )
)


@upstream_group.command("approve")
@name_argument
@wait_options
@output_option
@target_options
def approve(
    name: str,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
    wait: bool = False,
    timeout_s: float = DEFAULT_WAIT_S,
) -> None:
    """Take a server out of quarantine after you have reviewed it; it starts.

    A change an AI client proposed (`pending_change`) is shown as a diff and
    applied; the approval names that change, so one proposed after you looked
    is refused (exit 1) rather than approved unseen.

    Example: mcpproxy upstream approve github --wait
    """
    target = _target(config_path, data_dir, url, api_key)
    server = target.call("GET", f"/api/v1/servers/{name}")["server"]
    pending = server.get("pending_change")
    body = {"pending_change": pending["id"]} if isinstance(pending, dict) else None
    if not server.get("quarantined") and body is None:
        _nothing_to_approve(target, name, output)
        return
    if body is not None and output != "json":
        print_pending_change(server)
    path = f"/api/v1/servers/{name}/unquarantine"
    if wait:
        check_can_run(target, name, "unquarantine")
        finish_wait(name, wait_for_server(target, name, "POST", path, timeout_s, body=body), output)
        return
    data = target.call("POST", path, json=body)
    if output == "json":
        emit_json(data)
        return
    click.echo(f"{name}: approved (out of quarantine)" + (", with its pending change" if body else ""))


def _nothing_to_approve(target: Target, name: str, output: str) -> None:
    """`upstream approve` of a server that is not quarantined: say so, and name held tools if any."""
    tools = target.call("GET", f"/api/v1/servers/{name}/tools")["tools"]
    held = sorted(t["name"] for t in tools if t.get("approval", "approved") != "approved")
    if output == "json":
        emit_json({"server": name, "quarantined": False, "changed": False, "held_tools": held})
        return
    click.echo(f"{name}: not quarantined and no change pending; nothing changed")
    if held:
        click.echo(
            f"{name}: held tools (new or changed): {', '.join(held)}; review them with "
            f"`mcpproxy tools list {name} -o json`, approve with `mcpproxy tools approve {name} [TOOL ...]`"
        )


reject = upstream_group.command("reject")(
    _simple_action(
        "reject",
        "pending change rejected; the approved settings stay",
        """Turn down a change an AI client proposed: the server keeps its approved
        settings and leaves quarantine if it was approved before the proposal.

        Example: mcpproxy upstream reject github
        """,
        waits=False,
    )
)


# --- logs --------------------------------------------------------------------------------------------


upstream_group.add_command(logs_command)
