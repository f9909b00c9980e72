"""`mcpproxy connect` / `disconnect`: put the proxy's entry into an MCP client's own config file,
and take it out again.

Each change is shown as a diff first, the file is backed up beside itself, and nothing but our
entry changes. With --profile the client gets a credential of its own, bound to that profile
(never the admin API key); it is written only into the client's file (0600 when we create it),
never onto a command line.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click

from cli.client import ProxyUnreachableError, Target, die, resolve_target, target_options, warn
from cli.connect_move import Move, move_servers
from cli.connections import (
    Connection,
    Connections,
    backup,
    digest,
    loosely_readable,
    read_text,
    real_path,
    unified_diff,
    write_client_file,
)
from cli.output import emit_json, output_option, print_table
from services.client_configs import (
    CLIENTS,
    ClientFile,
    client_file,
    installed,
    parse,
    proxy_entry,
    read_servers,
    with_entry,
    without_entry,
)

ENTRY_NAME: Final = "mcpproxy"
PLACEHOLDER: Final = "<credential>"
"""Stands for the credential in every diff we print: it is made only when the file is written."""
CLIENT_IDS: Final = [c.id for c in CLIENTS]


@dataclass
class Plan:
    file: ClientFile
    path: Path
    before: str | None
    entry_existed: bool
    container_existed: bool


def file_options(func: Any) -> Any:
    """--scope, --project, --file: which of the client's files."""
    func = click.option(
        "--file",
        "file_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="The client's config file, instead of its default place.",
    )(func)
    func = click.option(
        "--project",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The project of --scope project (default: the working directory).",
    )(func)
    return click.option(
        "--scope",
        type=click.Choice(["user", "project"]),
        default="user",
        show_default=True,
        help="The user's config, or a project's (Claude Code .mcp.json, .vscode/, .cursor/, .gemini/).",
    )(func)


def _client_file(client: str, scope: str, project: Path | None, file_path: Path | None) -> ClientFile:
    try:
        found = client_file(client, scope, project)
    except ValueError as exc:
        die(str(exc), 2)
    return ClientFile(found.kind, found.scope, file_path) if file_path is not None else found


def _plan(file: ClientFile, name: str) -> Plan:
    path = real_path(file.path)
    try:
        before = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        die(f"{path}: cannot read: {exc}")
    try:
        servers = read_servers(file, before or "")
        container = file.kind.container in (_document(file, before) if before else {})
    except ValueError as exc:
        die(f"{path}: {exc}; fix the file or pass --file")
    return Plan(file, path, before, name in servers, container)


def _document(file: ClientFile, text: str) -> Any:
    doc = parse(file, text)
    return doc if isinstance(doc, dict) else {}


def _confirm(yes: bool, what: str) -> None:
    if not yes and sys.stdin.isatty() and not click.confirm(what, default=True):
        die("nothing changed", 1)


@click.command("connect")
@click.argument("client", required=False, type=click.Choice(CLIENT_IDS))
@click.option("--all", "every", is_flag=True, help="Every client that is installed (user scope).")
@click.option("--list", "list_only", is_flag=True, help="Which clients are installed and connected.")
@click.option("--profile", default=None, help="Give the client its own credential, bound to this profile.")
@click.option("--direct", is_flag=True, help="Use /mcp/all (every tool as server__tool) instead of /mcp.")
@click.option(
    "--name", "entry", default=ENTRY_NAME, show_default=True, help="The entry's name in the client."
)
@click.option(
    "--move",
    is_flag=True,
    help="Also move the client's own servers into the proxy (added quarantined) and out of its file.",
)
@click.option("--dry-run", is_flag=True, help="Show the diff; change nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before writing (never asked without a terminal).")
@file_options
@output_option
@target_options
def connect(
    client: str | None,
    every: bool,
    list_only: bool,
    profile: str | None,
    direct: bool,
    entry: str,
    move: bool,
    dry_run: bool,
    yes: bool,
    scope: str,
    project: Path | None,
    file_path: Path | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Add the proxy to an MCP client's config: a diff first, a timestamped backup, only our entry.

    CLIENT is one of: claude-desktop, claude-code, cursor, vscode, windsurf, codex, gemini.
    Without --profile the client connects without a credential (loopback only); with it, the
    client gets its own credential bound to that profile. `mcpproxy disconnect CLIENT` undoes it.

    \b
    Examples:
      mcpproxy connect --list
      mcpproxy connect --all --dry-run
      mcpproxy connect cursor --profile coding
      mcpproxy connect claude-desktop --move
      mcpproxy connect vscode --scope project --project ~/src/app
      mcpproxy connect codex --file ./config.toml
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    if list_only:
        _list(target, project, output)
        return
    if every == (client is not None):
        raise click.UsageError("name one CLIENT or give --all (or --list)")
    if every:
        files = [client_file(c.id, "user") for c in CLIENTS if installed(client_file(c.id, "user"))]
        if not files:
            die("no MCP client found on this machine: name one, e.g. `mcpproxy connect cursor`")
    else:
        assert client is not None
        files = [_client_file(client, scope, project, file_path)]
    endpoint = f"{target.url}/mcp/all" if direct else f"{target.url}/mcp"
    results = [
        _connect_one(
            target, f, entry, endpoint, profile, move, dry_run=dry_run, yes=yes, quiet=output == "json"
        )
        for f in files
    ]
    if output == "json":
        emit_json(results)


def _connect_one(
    target: Target,
    file: ClientFile,
    name: str,
    endpoint: str,
    profile: str | None,
    move: bool,
    *,
    dry_run: bool,
    yes: bool,
    quiet: bool,
) -> dict[str, Any]:
    plan = _plan(file, name)
    moving = move_servers(target, file, plan.before or "", name, dry_run=True) if move else None
    base = moving.text if moving else plan.before or ""
    preview = with_entry(file, base, name, proxy_entry(file.kind.id, endpoint, profile and PLACEHOLDER))
    diff = unified_diff(plan.path, plan.before, preview)
    result: dict[str, Any] = {
        "client": file.kind.id,
        "scope": file.scope,
        "file": str(plan.path),
        "diff": diff,
    }
    if moving:
        result.update(moved=moving.moved, stayed=moving.stayed)
    if not quiet:
        click.echo(f"{file.kind.title}: {plan.path}")
        click.echo(diff or "  (already connected: nothing to change)\n", nl=False)
        _report_move(moving, dry_run)
    if dry_run or not diff:
        return {**result, "changed": False}
    _confirm(yes, f"write {plan.path}?")
    records = Connections(target.data_dir)
    earlier = records.get(plan.path)
    credential_client = _credential_client(file) if profile else None
    credential = (
        _issue(target, credential_client, profile, earlier) if credential_client and profile else None
    )
    if move:
        moving = move_servers(target, file, plan.before or "", name, dry_run=False)
        result.update(moved=moving.moved, stayed=moving.stayed)
        base = moving.text
    text = with_entry(file, base, name, proxy_entry(file.kind.id, endpoint, credential))
    saved = backup(plan.path) if plan.before is not None else None
    # A file as our last connect left it: its first backup is still what undoing gives back.
    unchanged = earlier is not None and earlier.written_sha256 == digest(plan.before or "")
    try:
        write_client_file(plan.path, text)
    except OSError as exc:
        if credential_client:
            target.answer("DELETE", f"/api/v1/clients/{credential_client}")
        die(f"{plan.path}: cannot write: {exc}")
    records.put(
        Connection(
            client=file.kind.id,
            scope=file.scope,
            file=str(plan.path),
            entry=name,
            credential_client=credential_client,
            created_file=earlier.created_file if earlier else plan.before is None,
            created_container=earlier.created_container if earlier else not plan.container_existed,
            backup=earlier.backup if unchanged and earlier else (str(saved) if saved else None),
            written_sha256=digest(text),
            connected_at=time.time(),
        )
    )
    if credential and loosely_readable(plan.path):
        warn(f"{plan.path} is readable by other users and now holds a credential: chmod 600 it")
    if not quiet:
        kept = f"; backup {saved}" if saved else " (new file)"
        who = f" with client {credential_client} (profile {profile})" if credential_client else ""
        click.echo(f"connected {file.label}{who}{kept}; undo: mcpproxy disconnect {file.kind.id}")
    return {
        **result,
        "changed": True,
        "backup": str(saved) if saved else None,
        "credential_client": credential_client,
    }


def _report_move(moving: Move | None, dry_run: bool) -> None:
    if moving is None:
        return
    if moving.moved:
        verb = "would move" if dry_run else "moved"
        click.echo(f"{verb} into the proxy (quarantined until approved): {', '.join(moving.moved)}")
    for server, why in moving.stayed.items():
        click.echo(f"  stays in the client: {server}: {why}")


def _credential_client(file: ClientFile) -> str:
    return file.kind.id if file.scope == "user" else f"{file.kind.id}-project"


def _issue(target: Target, name: str, profile: str, earlier: Connection | None) -> str:
    """A new credential for client `name`; one connect made before is replaced."""
    body = {"name": name, "profile": profile}
    answer = target.answer("POST", "/api/v1/clients", json=body)
    if answer.status == 409 and earlier is not None and earlier.credential_client == name:
        target.answer("DELETE", f"/api/v1/clients/{name}")
        answer = target.answer("POST", "/api/v1/clients", json=body)
    if answer.status == 409:
        die(
            f"a client named {name} exists and connect did not make it: revoke it "
            f"(`mcpproxy clients revoke {name}`) or connect without --profile"
        )
    if not answer.ok:
        die(answer.error, answer.exit_code)
    return str(answer.data["credential"])


@click.command("disconnect")
@click.argument("client", type=click.Choice(CLIENT_IDS))
@click.option("--name", "entry", default=None, help="The entry's name (default: the one connect wrote).")
@click.option("--dry-run", is_flag=True, help="Show the diff; change nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before writing (never asked without a terminal).")
@file_options
@target_options
def disconnect(
    client: str,
    entry: str | None,
    dry_run: bool,
    yes: bool,
    scope: str,
    project: Path | None,
    file_path: Path | None,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Undo `mcpproxy connect CLIENT`: the entry goes, and the credential made for it is revoked.

    If the file has not changed since connect, it gets back exactly the bytes it had (from the
    backup; a file connect created is removed); otherwise only our entry is taken out.

    Example: mcpproxy disconnect cursor
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    file = _client_file(client, scope, project, file_path)
    records = Connections(target.data_dir)
    record = records.get(real_path(file.path))
    plan = _plan(file, entry or (record.entry if record else ENTRY_NAME))
    name = entry or (record.entry if record else ENTRY_NAME)
    if not plan.entry_existed or plan.before is None:
        click.echo(f"{file.label}: no {name} entry in {plan.path}: nothing to do")
        if record is not None and not dry_run:
            _revoke(target, record)
            records.drop(plan.path)
        return
    after = _undone(file, plan, name, record)
    click.echo(f"{file.kind.title}: {plan.path}")
    click.echo(unified_diff(plan.path, plan.before, after), nl=False)
    if dry_run:
        return
    _confirm(yes, f"write {plan.path}?")
    saved = backup(plan.path)
    if after is None:
        plan.path.unlink()
    else:
        write_client_file(plan.path, after)
    if record is not None:
        _revoke(target, record)
        records.drop(plan.path)
    click.echo(f"disconnected {file.label}; backup {saved}")


def _undone(file: ClientFile, plan: Plan, name: str, record: Connection | None) -> str | None:
    """The file's text without our entry (None: remove the file connect created)."""
    before = plan.before or ""
    if record is not None and digest(before) == record.written_sha256:
        if record.created_file:
            return None
        kept = read_text(Path(record.backup)) if record.backup else None
        if kept is not None:
            return kept
    drop = record.created_container if record is not None else False
    return without_entry(file, before, name, drop_container=drop)


def _revoke(target: Target, record: Connection) -> None:
    if record.credential_client is None:
        return
    try:
        target.request("DELETE", f"/api/v1/clients/{record.credential_client}")
    except ProxyUnreachableError:
        warn(
            f"no proxy answered at {target.url}: revoke the credential later with "
            f"`mcpproxy clients revoke {record.credential_client}`"
        )


def _list(target: Target, project: Path | None, output: str) -> None:
    records = Connections(target.data_dir).load()
    rows: list[dict[str, Any]] = []
    for kind in CLIENTS:
        for scope in kind.scopes:
            file = client_file(kind.id, scope, project)
            path = real_path(file.path)
            if scope == "project" and not path.exists():
                continue
            problem: str | None = None
            try:
                servers = read_servers(file, read_text(path) or "")
            except (OSError, ValueError) as exc:
                servers, problem = {}, str(exc)
            record = records.get(str(path))
            rows.append(
                {
                    "client": kind.id,
                    "scope": scope,
                    "file": str(path),
                    "installed": installed(file),
                    "connected": (record.entry if record else ENTRY_NAME) in servers,
                    "servers": sorted(servers),
                    "credential_client": record.credential_client if record else None,
                    **({"problem": problem} if problem else {}),
                }
            )
    if output == "json":
        emit_json(rows)
        return
    print_table(
        ("CLIENT", "SCOPE", "INSTALLED", "CONNECTED", "SERVERS", "FILE"),
        [
            [
                r["client"],
                r["scope"],
                "yes" if r["installed"] else "no",
                ("yes" + (f" ({r['credential_client']})" if r["credential_client"] else ""))
                if r["connected"]
                else "no",
                r.get("problem") or len(r["servers"]),
                r["file"],
            ]
            for r in rows
        ],
        empty="no clients",
    )
