"""`mcpproxy upstream list | show | add | remove | patch | enable | disable | restart | logs | approve`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import click

from cli.client import (
    EXIT_FAILURE,
    Target,
    complete_server_names,
    die,
    resolve_target,
    run_async,
    target_options,
)
from cli.output import console, emit_json, output_option, print_table, state_text, table
from cli.waiting import DEFAULT_WAIT_S, Outcome, act_and_wait

FOLLOW_POLL_S: Final = 1.0
FOLLOW_WINDOW: Final = 1000
PROTOCOLS: Final = ("stdio", "http", "streamable-http", "sse", "auto")


def _target(config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None) -> Target:
    return resolve_target(config_path, data_dir, url, api_key, require_config=False)


def name_argument(func: Any) -> Any:
    return click.argument("name", shell_complete=complete_server_names)(func)


def wait_options(func: Any) -> Any:
    func = click.option(
        "--timeout",
        "timeout_s",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_WAIT_S,
        show_default=True,
        help="Seconds --wait waits at most.",
    )(func)
    return click.option(
        "--wait", is_flag=True, help="Wait until the server runs (or report why it does not)."
    )(func)


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


def flags_of(server: dict[str, Any]) -> str:
    flags = []
    if not server.get("enabled", True):
        flags.append("disabled")
    if server.get("quarantined"):
        flags.append("quarantined")
    if server.get("healthy") is False:
        flags.append("unhealthy")
    return ",".join(flags)


def server_rows(servers: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            s["name"],
            state_text(s.get("state", "?")),
            s.get("protocol", ""),
            s.get("tool_count", 0),
            flags_of(s),
            s.get("last_error") or "",
        ]
        for s in servers
    ]


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


def print_server(server: dict[str, Any]) -> None:
    rows: list[list[Any]] = []
    for key in (
        "name",
        "state",
        "protocol",
        "command",
        "args",
        "url",
        "working_dir",
        "enabled",
        "quarantined",
    ):
        if key in server and server[key] not in (None, [], ""):
            value = server[key]
            rows.append([key, " ".join(value) if key == "args" else value])
    for field in ("headers", "env"):
        for key, value in (server.get(field) or {}).items():
            rows.append([f"{field}.{key}", value])
    for key in ("tool_count", "restarts", "worker_pid", "upstream_pid", "server_version", "last_error"):
        if server.get(key) not in (None, ""):
            rows.append([key, server[key]])
    console().print(table(("FIELD", "VALUE"), rows))


# --- changing ----------------------------------------------------------------------------------------


def parse_header(value: str) -> tuple[str, str]:
    """`"X-Trace: on"` -> ("X-Trace", "on")."""
    key, sep, rest = value.partition(":")
    key = key.strip()
    if not sep or not key or any(c.isspace() for c in key):
        raise click.BadParameter(f"{value!r}: expected 'Name: value', e.g. --header \"X-Trace: on\"")
    return key, rest.strip()


def parse_env(value: str) -> tuple[str, str]:
    """`"LOG_LEVEL=debug"` -> ("LOG_LEVEL", "debug")."""
    key, sep, rest = value.partition("=")
    if not sep or not key or any(c.isspace() for c in key):
        raise click.BadParameter(f"{value!r}: expected NAME=value, e.g. --env LOG_LEVEL=debug")
    return key, rest


def _headers_callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    return [parse_header(v) for v in values]


def _env_callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    return [parse_env(v) for v in values]


def merge_map(
    field: str, sets: Sequence[tuple[str, str]], removes: Sequence[str]
) -> dict[str, str | None] | None:
    """The merge-patch object for one map: values upsert, null deletes."""
    if not sets and not removes:
        return None
    both = {k for k, _ in sets} & set(removes)
    if both:
        raise click.UsageError(f"{field}: {', '.join(sorted(both))} both set and removed")
    changes: dict[str, str | None] = dict(sets)
    changes.update(dict.fromkeys(removes))
    return changes


def build_patch(
    *,
    headers: Sequence[tuple[str, str]] = (),
    header_removes: Sequence[str] = (),
    env: Sequence[tuple[str, str]] = (),
    env_removes: Sequence[str] = (),
    args: Sequence[str] | None = None,
    url: str | None = None,
    command: str | None = None,
    protocol: str | None = None,
    working_dir: str | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    """One JSON Merge Patch (RFC 7396) for everything asked: one request, one restart."""
    patch: dict[str, Any] = {}
    if (header_map := merge_map("headers", headers, header_removes)) is not None:
        patch["headers"] = header_map
    if (env_map := merge_map("env", env, env_removes)) is not None:
        patch["env"] = env_map
    if args is not None:
        patch["args"] = list(args)
    for key, value in (
        ("url", url),
        ("command", command),
        ("protocol", protocol),
        ("working_dir", working_dir),
        ("enabled", enabled),
    ):
        if value is not None:
            patch[key] = value
    return patch


def describe_patch(patch: dict[str, Any]) -> str:
    """What a patch does, without any value that could be a secret."""
    parts = []
    for field, noun in (("headers", "header"), ("env", "env")):
        changes = patch.get(field) or {}
        if set_keys := [k for k, v in changes.items() if v is not None]:
            parts.append(f"set {noun} {', '.join(set_keys)}")
        if removed := [k for k, v in changes.items() if v is None]:
            parts.append(f"removed {noun} {', '.join(removed)}")
    if "args" in patch:
        parts.append(f"args replaced ({len(patch['args'])})")
    parts += [f"{key} changed" for key in ("url", "command", "protocol", "working_dir") if key in patch]
    if "enabled" in patch:
        parts.append("enabled" if patch["enabled"] else "disabled")
    return "; ".join(parts)


def header_options(func: Any) -> Any:
    func = click.option(
        "--env-remove", "env_removes", multiple=True, metavar="NAME", help="Delete a variable (repeatable)."
    )(func)
    func = click.option(
        "--env",
        "env",
        multiple=True,
        metavar="NAME=VALUE",
        callback=_env_callback,
        help="Set a variable for a stdio server (repeatable).",
    )(func)
    func = click.option(
        "--header-remove",
        "header_removes",
        multiple=True,
        metavar="NAME",
        help="Delete a header (repeatable).",
    )(func)
    return click.option(
        "--header",
        "headers",
        multiple=True,
        metavar="'NAME: VALUE'",
        callback=_headers_callback,
        help="Set an HTTP header (repeatable).",
    )(func)


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
    )
    if not patch:
        raise click.UsageError("nothing to change: give at least one of --header, --env, --arg, ...")
    server = _target(config_path, data_dir, url, api_key).call(
        "PATCH", f"/api/v1/servers/{name}", json=patch
    )["server"]
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
    callback=_headers_callback,
    help="HTTP header (repeatable).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_env_callback,
    help="Environment variable (repeatable).",
)
@click.option("--working-dir", default=None, help="Working directory of a stdio server.")
@click.option("--disabled", is_flag=True, help="Add it without starting it.")
@click.option("--quarantined", is_flag=True, help="Add it quarantined (needs `upstream approve`).")
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
        outcome = _wait(target, name, "POST", "/api/v1/servers", timeout_s, body=server)
        _finish_wait(name, outcome, output)
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
            _check_can_run(target, name, action)
            outcome = _wait(target, name, "POST", path, timeout_s, needs_move=action == "restart")
            _finish_wait(name, outcome, output)
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
approve = upstream_group.command("approve")(
    _simple_action(
        "unquarantine",
        "approved (out of quarantine)",
        """Take a server out of quarantine after you have reviewed it; it starts.

        Example: mcpproxy upstream approve github --wait
        """,
    )
)


def _check_can_run(target: Target, name: str, action: str) -> None:
    """--wait would wait in vain for a server that stays stopped after `action`: say why at once."""
    server = target.call("GET", f"/api/v1/servers/{name}")["server"]
    if action != "enable" and not server.get("enabled", True):
        die(f"{name} is disabled and stays stopped: `mcpproxy upstream enable {name}`")
    if action != "unquarantine" and server.get("quarantined"):
        die(f"{name} is quarantined and stays stopped: `mcpproxy upstream approve {name}`")


def _wait(
    target: Target,
    name: str,
    method: str,
    path: str,
    timeout_s: float,
    *,
    body: Any = None,
    needs_move: bool = False,
) -> Outcome:
    err = console(stderr=True)

    def progress(state: str, last_error: str | None, elapsed: float) -> None:
        failed = state in ("exited", "backoff", "fatal")  # (other states carry the previous error)
        line = f"  {name}: {state}" + (f" ({last_error})" if last_error and failed else "")
        err.print(f"{line}  [{elapsed:.1f}s]", markup=False, highlight=False)

    return run_async(
        partial(
            act_and_wait,
            target,
            name,
            method,
            path,
            body=body,
            timeout_s=timeout_s,
            needs_move=needs_move,
            progress=progress,
        )
    )


def _finish_wait(name: str, outcome: Outcome, output: str) -> None:
    if output == "json":
        emit_json(
            {
                "server": name,
                "result": outcome.result,
                "state": outcome.state,
                "last_error": outcome.last_error,
                "elapsed_s": round(outcome.elapsed_s, 3),
            }
        )
    match outcome.result:
        case "running":
            if output != "json":
                click.echo(f"{name}: running ({outcome.elapsed_s:.1f}s)")
            return
        case "failed":
            die(f"{name}: {outcome.state}: {outcome.last_error or 'no error recorded'}", EXIT_FAILURE)
        case "removed":
            die(f"{name}: removed while waiting", EXIT_FAILURE)
        case _:
            detail = f"; last error: {outcome.last_error}" if outcome.last_error else ""
            die(f"{name}: still {outcome.state} after {outcome.elapsed_s:.0f}s{detail}", EXIT_FAILURE)


# --- logs --------------------------------------------------------------------------------------------


def new_lines(previous: Sequence[str], current: Sequence[str]) -> list[str]:
    """The lines of `current` (a newer tail window) not already in `previous`.

    The new window is a suffix of the old one plus new lines: find the longest
    suffix of `previous` that `current` starts with. With no overlap, all of it is new.
    """
    for start in range(len(previous)):
        overlap = len(previous) - start
        if overlap <= len(current) and list(current[:overlap]) == list(previous[start:]):
            return list(current[overlap:])
    return list(current)


@upstream_group.command("logs")
@name_argument
@click.option("-n", "--tail", type=click.IntRange(min=0), default=100, show_default=True, help="Lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@output_option
@target_options
def logs(
    name: str,
    tail: int,
    follow: bool,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """The server's stderr log (its own output, plus `[mcpproxy]` notes from its worker).

    With -o json: {"server", "lines"}; with --follow, one JSON object per new line.

    Example: mcpproxy upstream logs fs --tail 50 --follow
    """
    target = _target(config_path, data_dir, url, api_key)
    lines = target.call("GET", f"/api/v1/servers/{name}/logs", params={"tail": tail})["lines"]
    if output == "json" and not follow:
        emit_json({"server": name, "lines": lines})
        return
    _print_lines(name, lines, output)
    if not follow:
        return
    window = target.call("GET", f"/api/v1/servers/{name}/logs", params={"tail": FOLLOW_WINDOW})["lines"]
    try:
        while True:
            # REST serves a tail, not a stream: poll it and print what is new.
            time.sleep(FOLLOW_POLL_S)
            current = target.call("GET", f"/api/v1/servers/{name}/logs", params={"tail": FOLLOW_WINDOW})[
                "lines"
            ]
            _print_lines(name, new_lines(window, current), output)
            window = current
    except KeyboardInterrupt:
        return


def _print_lines(name: str, lines: Sequence[str], output: str) -> None:
    for line in lines:
        click.echo(
            json.dumps({"server": name, "line": line}, ensure_ascii=False) if output == "json" else line
        )
    sys.stdout.flush()
