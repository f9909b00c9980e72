"""`mcpproxy import PATH`: bring servers over from another MCP client's config file.

Understood shapes:

- Claude Desktop `claude_desktop_config.json` and Cursor `mcp.json`:
  `{"mcpServers": {"name": {"command", "args", "env"} | {"url", "headers"}}}`
- VS Code `.vscode/mcp.json`: `{"servers": {"name": {"type", "command", "args", "env", "url", "headers"}}}`
- mcpproxy-go `mcp_config.json`: `{"mcpServers": [{"name", ...}]}`

Imported servers are quarantined (a human approves each) unless --trust.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import click

from cli.client import (
    EXIT_FAILURE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ProxyUnreachableError,
    Target,
    die,
    resolve_target,
    target_options,
    unpack,
    unreachable_message,
)
from cli.output import emit_json, output_option, print_table
from services.config_doc import redact_server
from services.redaction import mask

KNOWN_FIELDS: Final = frozenset(
    {
        "name", "protocol", "command", "args", "env", "working_dir", "url", "headers", "enabled",
        "quarantined", "init_timeout", "call_tool_timeout", "health_check_interval",
    }
)  # fmt: skip
TYPE_TO_PROTOCOL: Final = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamablehttp": "http",
    "streamable_http": "http",
    "sse": "sse",
}
SECRET_ARG_RE: Final = re.compile(r"(?i)^(--?[\w-]*(?:token|secret|key|password|passwd|auth)[\w-]*=)(.+)$")
UNRESOLVABLE_RE: Final = re.compile(r"\$\{(?!keyring:|env:)[^}]*\}")


@dataclass
class Candidate:
    """One server found in the file: what we would add, or why we cannot."""

    name: str
    server: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    skip: str | None = None


def detect_format(data: Any) -> str:
    """`claude` (an mcpServers map: Claude Desktop, Cursor, Claude Code), `vscode`, or `mcpproxy`."""
    if isinstance(data, dict):
        if isinstance(data.get("mcpServers"), dict):
            return "claude"
        if isinstance(data.get("mcpServers"), list):
            return "mcpproxy"
        if isinstance(data.get("servers"), dict):
            return "vscode"
    raise ValueError(
        'not an MCP client config: expected "mcpServers" (Claude Desktop, Cursor, mcpproxy) '
        'or "servers" (VS Code)'
    )


def safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip()).strip("-")[:64]
    return cleaned or "server"


def _string_map(value: Any, what: str, notes: list[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        notes.append(f"{what} ignored: not an object")
        return {}
    result = {}
    for key, item in value.items():
        if isinstance(item, str):
            result[str(key)] = item
        elif isinstance(item, int | float | bool):
            result[str(key)] = json.dumps(item) if isinstance(item, bool) else str(item)
        else:
            notes.append(f"{what}.{key} ignored: not a string")
    return result


def convert_entry(name: str, entry: Any) -> Candidate:
    """One server of a Claude/Cursor/VS Code/mcpproxy file as our server object."""
    notes: list[str] = []
    cleaned = safe_name(name)
    if cleaned != name:
        notes.append(f"renamed from {name!r} (names are 1-64 of A-Z a-z 0-9 _ . -)")
    if not isinstance(entry, dict):
        return Candidate(cleaned, None, notes, skip="not an object")
    server: dict[str, Any] = {"name": cleaned}
    command, url = entry.get("command"), entry.get("url") or entry.get("serverUrl")
    if isinstance(command, str) and command:
        server["command"] = command
        args = entry.get("args", [])
        if isinstance(args, list) and all(isinstance(a, str) for a in args):
            if args:
                server["args"] = list(args)
        else:
            return Candidate(cleaned, None, notes, skip="args is not a list of strings")
    elif isinstance(url, str) and url:
        server["url"] = url
    else:
        return Candidate(cleaned, None, notes, skip="no command and no url")
    kind = entry.get("protocol") or entry.get("type") or entry.get("transport")
    if isinstance(kind, str):
        protocol = TYPE_TO_PROTOCOL.get(kind.lower()) or (kind if kind == "auto" else None)
        if protocol is None:
            notes.append(f"type {kind!r} not known: the transport is chosen automatically")
        elif not (protocol == "stdio" and "command" in server):
            server["protocol"] = protocol
    for source, target in (("env", "env"), ("headers", "headers")):
        if source in entry:
            values = _string_map(entry[source], source, notes)
            if values:
                server[target] = values
    cwd = entry.get("working_dir") or entry.get("cwd")
    if isinstance(cwd, str) and cwd:
        server["working_dir"] = cwd
    if entry.get("disabled") is True or entry.get("enabled") is False:
        server["enabled"] = False
    if entry.get("quarantined") is True:
        server["quarantined"] = True
    for key in ("init_timeout", "call_tool_timeout", "health_check_interval"):
        if isinstance(entry.get(key), int | float | str):
            server[key] = entry[key]
    used = KNOWN_FIELDS | {"type", "transport", "cwd", "disabled", "serverUrl"}
    if dropped := sorted(set(entry) - used):
        notes.append(f"not imported: {', '.join(dropped)}")
    if "envFile" in entry:
        notes.append("envFile is not supported: copy its variables into env")
    text = json.dumps({k: v for k, v in server.items() if k != "name"})
    for found in sorted(set(UNRESOLVABLE_RE.findall(text))):
        notes.append(
            f"{found} cannot be resolved by mcpproxy: replace it (e.g. with ${{keyring:NAME}}) "
            f"using `mcpproxy upstream patch {cleaned}`"
        )
    return Candidate(cleaned, server, notes)


def candidates_of(data: Any) -> tuple[str, list[Candidate]]:
    fmt = detect_format(data)
    if fmt == "mcpproxy":
        found = []
        for index, entry in enumerate(data["mcpServers"]):
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                found.append(Candidate(f"mcpServers[{index}]", None, skip="no name"))
                continue
            found.append(convert_entry(name, {k: v for k, v in entry.items() if k != "name"}))
        return fmt, found
    servers = data["mcpServers"] if fmt == "claude" else data["servers"]
    return fmt, [convert_entry(str(name), entry) for name, entry in servers.items()]


def plan(candidates: list[Candidate], existing: set[str], *, trust: bool) -> list[Candidate]:
    """Mark what is skipped (already there, duplicate, unusable) and set quarantine."""
    seen: set[str] = set()
    for candidate in candidates:
        if candidate.server is None:
            continue
        if candidate.name in existing:
            candidate.skip = "already exists"
        elif candidate.name in seen:
            candidate.skip = "appears twice in the file"
        else:
            seen.add(candidate.name)
            candidate.server["quarantined"] = candidate.server.get("quarantined", False) or not trust
    return candidates


def _masked_args(args: list[str]) -> list[str]:
    return [m.group(1) + mask(m.group(2)) if (m := SECRET_ARG_RE.match(a)) else a for a in args]


def shown_server(server: dict[str, Any]) -> dict[str, Any]:
    """The server as REST would show it, `--token=...`-style args masked too."""
    shown = redact_server(server)
    if "args" in shown:
        shown["args"] = _masked_args(shown["args"])
    return shown


def shown_command(server: dict[str, Any]) -> str:
    """command + args or the url, with `--token=...`-style values masked."""
    if "url" in server:
        return str(redact_server({"url": server["url"]})["url"])
    return shlex.join([server["command"], *_masked_args(server.get("args", []))])


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--trust", is_flag=True, help="Add the servers ready to run instead of quarantined.")
@click.option("--dry-run", is_flag=True, help="Show what would be added; add nothing.")
@output_option
@target_options
def import_servers(
    path: Path,
    trust: bool,
    dry_run: bool,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Add the servers of a Claude Desktop, Cursor, VS Code or mcpproxy-go config file.

    New servers are quarantined until you approve each (`mcpproxy upstream approve NAME`)
    unless --trust; names that already exist are skipped.

    \b
    Examples:
      mcpproxy import ~/.config/Claude/claude_desktop_config.json --dry-run
      mcpproxy import ~/.cursor/mcp.json
      mcpproxy import .vscode/mcp.json --trust
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fmt, candidates = candidates_of(data)
    except (OSError, UnicodeDecodeError) as exc:
        die(f"{path}: cannot read: {exc}", EXIT_USAGE)
    except json.JSONDecodeError as exc:
        die(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", EXIT_USAGE)
    except ValueError as exc:
        die(f"{path}: {exc}", EXIT_USAGE)
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    existing, checked_against = _existing_names(target, dry_run)
    plan(candidates, existing, trust=trust)
    added: list[str] = []
    failed: list[dict[str, str]] = []
    for candidate in candidates:
        if candidate.server is None or candidate.skip or dry_run:
            continue
        answer = target.answer("POST", "/api/v1/servers", json=candidate.server)
        if answer.ok:
            added.append(candidate.name)
        elif answer.status == 409:
            candidate.skip = "already exists"
        else:
            failed.append({"name": candidate.name, "error": answer.error})
    if output == "json":
        emit_json(
            {
                "format": fmt,
                "dry_run": dry_run,
                "checked_against": checked_against,
                "added": added,
                "would_add": [c.name for c in candidates if c.server and not c.skip] if dry_run else [],
                "skipped": [{"name": c.name, "reason": c.skip} for c in candidates if c.skip],
                "failed": failed,
                "servers": [shown_server(c.server) for c in candidates if c.server and not c.skip],
                "notes": {c.name: c.notes for c in candidates if c.notes},
            }
        )
    else:
        _report(path, fmt, candidates, failed, dry_run=dry_run, checked_against=checked_against)
    if failed:
        raise SystemExit(EXIT_FAILURE)


def _existing_names(target: Target, dry_run: bool) -> tuple[set[str], str]:
    """Names the proxy has; a dry run without a proxy checks against the config file."""
    try:
        response = target.request("GET", "/api/v1/servers")
    except ProxyUnreachableError:
        if not dry_run:
            die(unreachable_message(target.url), EXIT_UNREACHABLE)
        return {s.name for s in target.config.mcpServers}, str(target.config_path)
    answer = unpack(response, target.url, "/api/v1/servers")
    if not answer.ok:
        die(answer.error)
    return {s["name"] for s in answer.data["servers"]}, target.url


def _report(
    path: Path,
    fmt: str,
    candidates: list[Candidate],
    failed: list[dict[str, str]],
    *,
    dry_run: bool,
    checked_against: str,
) -> None:
    failures = {f["name"]: f["error"] for f in failed}
    rows = []
    for c in candidates:
        if c.skip:
            outcome = f"skipped: {c.skip}"
        elif c.name in failures:
            outcome = f"failed: {failures[c.name]}"
        elif c.server is not None:
            verb = "would add" if dry_run else "added"
            outcome = f"{verb}{' (quarantined)' if c.server.get('quarantined') else ''}"
        else:
            outcome = "skipped"
        what = shown_command(c.server) if c.server else ""
        rows.append([c.name, outcome, what])
    click.echo(f"{path} ({fmt} format), checked against {checked_against}:")
    print_table(("NAME", "RESULT", "COMMAND / URL"), rows, empty="no servers in the file")
    for c in candidates:
        for note in c.notes:
            click.echo(f"  note: {c.name}: {note}")
    if dry_run:
        click.echo("dry run: nothing was added")
    elif any(c.server and c.server.get("quarantined") and not c.skip for c in candidates):
        click.echo("quarantined servers do not start until approved: `mcpproxy upstream approve NAME`")
