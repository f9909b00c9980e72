"""`mcpproxy import [PATH | --from CLIENT]`: bring servers over from another MCP client's config file.

Understood shapes (found by content, whatever the file is called):

- Claude Desktop, Claude Code (`~/.claude.json`, `.mcp.json`), Cursor, Windsurf and Gemini CLI:
  `{"mcpServers": {"name": {"command", "args", "env"} | {"url" | "serverUrl" | "httpUrl", "headers"}}}`
- VS Code `mcp.json` (JSONC): `{"servers": {"name": {"type", "command", "args", "env", "url", "headers"}}}`
- Codex CLI `config.toml`: `[mcp_servers.name]` with `command`, `args`, `env`, `cwd` or `url`,
  `http_headers`, `bearer_token_env_var`
- mcpproxy-go `mcp_config.json`: `{"mcpServers": [{"name", ...}]}`

Imported servers are quarantined (a human approves each) unless --trust.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
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
from services import jsonc_text
from services.client_configs import CLIENTS, client_file
from services.config_doc import redact_server
from services.redaction import mask

CODEX_FIELDS: Final = frozenset(
    {"http_headers", "bearer_token_env_var", "env_http_headers", "startup_timeout_sec", "tool_timeout_sec"}
)
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
BARE_VARIABLE_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""`${NAME}`: an environment variable for Claude Code and Gemini CLI; ours is `${env:NAME}`."""


@dataclass
class Candidate:
    """One server found in the file: what we would add, or why we cannot."""

    name: str
    server: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    skip: str | None = None


def detect_format(data: Any) -> str:
    """`claude` (an mcpServers map: Claude Desktop and Code, Cursor, Windsurf, Gemini), `vscode`,
    `codex` (TOML `mcp_servers`) or `mcpproxy`."""
    if isinstance(data, dict):
        if isinstance(data.get("mcpServers"), dict):
            return "claude"
        if isinstance(data.get("mcpServers"), list):
            return "mcpproxy"
        if isinstance(data.get("servers"), dict):
            return "vscode"
        if isinstance(data.get("mcp_servers"), dict):
            return "codex"
    raise ValueError(
        'not an MCP client config: expected "mcpServers" (Claude Desktop and Code, Cursor, Windsurf, '
        'Gemini, mcpproxy), "servers" (VS Code) or [mcp_servers] (Codex)'
    )


def read_config(path: Path) -> Any:
    """A client's file as data: TOML by its name or content, else JSON with JSONC's comments."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    try:
        return jsonc_text.loads(text)
    except jsonc_text.JsoncError as json_error:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise json_error from None


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


def convert_entry(name: str, entry: Any, client: str | None = None) -> Candidate:
    """One server of a client's file as our server object (`client`: whose dialect, if known)."""
    notes: list[str] = []
    cleaned = safe_name(name)
    if cleaned != name:
        notes.append(f"renamed from {name!r} (names are 1-64 of A-Z a-z 0-9 _ . -)")
    if not isinstance(entry, dict):
        return Candidate(cleaned, None, notes, skip="not an object")
    server: dict[str, Any] = {"name": cleaned}
    command = entry.get("command")
    url = entry.get("httpUrl") or entry.get("url") or entry.get("serverUrl")
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
    if kind is None and "url" in server:
        # Gemini CLI: httpUrl is streamable HTTP and url is SSE.
        kind = "http" if entry.get("httpUrl") else "sse" if client == "gemini" else None
    if isinstance(kind, str):
        protocol = TYPE_TO_PROTOCOL.get(kind.lower()) or (kind if kind == "auto" else None)
        if protocol is None:
            notes.append(f"type {kind!r} not known: the transport is chosen automatically")
        elif not (protocol == "stdio" and "command" in server):
            server["protocol"] = protocol
    for source, target in (("env", "env"), ("headers", "headers"), ("http_headers", "headers")):
        if source in entry:
            values = _string_map(entry[source], source, notes)
            if values:
                server[target] = {**server.get(target, {}), **values}
    if isinstance(token_env := entry.get("bearer_token_env_var"), str) and "url" in server:
        server.setdefault("headers", {})["Authorization"] = f"Bearer ${{env:{token_env}}}"
    if isinstance(header_envs := entry.get("env_http_headers"), dict) and "url" in server:
        for header, variable in header_envs.items():
            server.setdefault("headers", {})[str(header)] = f"${{env:{variable}}}"
    for source, target in (
        ("startup_timeout_sec", "init_timeout"),
        ("tool_timeout_sec", "call_tool_timeout"),
    ):
        if isinstance(entry.get(source), int | float):
            server[target] = f"{entry[source]}s"
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
    used = KNOWN_FIELDS | {"type", "transport", "cwd", "disabled", "serverUrl", "httpUrl", *CODEX_FIELDS}
    if dropped := sorted(set(entry) - used):
        notes.append(f"not imported: {', '.join(dropped)}")
    if "envFile" in entry:
        notes.append("envFile is not supported: copy its variables into env")
    _env_references(server, notes)
    text = json.dumps({k: v for k, v in server.items() if k != "name"})
    for found in sorted(set(UNRESOLVABLE_RE.findall(text))):
        notes.append(
            f"{found} cannot be resolved by mcpproxy: replace it (e.g. with ${{keyring:NAME}}) "
            f"using `mcpproxy upstream patch {cleaned}`"
        )
    return Candidate(cleaned, server, notes)


def _env_references(server: dict[str, Any], notes: list[str]) -> None:
    """`${NAME}` (Claude Code, Gemini CLI) becomes `${env:NAME}`, which mcpproxy resolves."""
    text = json.dumps(server)
    found = sorted(set(BARE_VARIABLE_RE.findall(text)))
    if not found:
        return
    server.update(json.loads(BARE_VARIABLE_RE.sub(r"${env:\1}", text)))
    notes.append(
        f"{', '.join('${' + n + '}' for n in found)} read as ${{env:NAME}} from mcpproxy's environment"
    )


def candidates_of(data: Any, client: str | None = None) -> tuple[str, list[Candidate]]:
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
    servers = data[{"claude": "mcpServers", "vscode": "servers", "codex": "mcp_servers"}[fmt]]
    return fmt, [convert_entry(str(name), entry, client) for name, entry in servers.items()]


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
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--from",
    "source",
    type=click.Choice([c.id for c in CLIENTS]),
    default=None,
    help="Read this client's config from its default place (instead of PATH).",
)
@click.option(
    "--scope",
    type=click.Choice(["user", "project"]),
    default="user",
    show_default=True,
    help="With --from: the user's config or the project's.",
)
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --scope project: the project (default: the working directory).",
)
@click.option("--trust", is_flag=True, help="Add the servers ready to run instead of quarantined.")
@click.option("--dry-run", is_flag=True, help="Show what would be added; add nothing.")
@output_option
@target_options
def import_servers(
    path: Path | None,
    source: str | None,
    scope: str,
    project: Path | None,
    trust: bool,
    dry_run: bool,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Add the servers of another MCP client's config file: Claude Desktop, Claude Code, Cursor,
    VS Code, Windsurf, Codex (TOML), Gemini CLI or mcpproxy-go; the format is found from the content.

    New servers are quarantined until you approve each (`mcpproxy upstream approve NAME`)
    unless --trust; names that already exist are skipped.

    \b
    Examples:
      mcpproxy import --from claude-desktop --dry-run
      mcpproxy import --from codex
      mcpproxy import --from claude-code --scope project
      mcpproxy import ~/.cursor/mcp.json
      mcpproxy import .vscode/mcp.json --trust
    """
    if (path is None) == (source is None):
        raise click.UsageError("give PATH or --from CLIENT")
    if source is not None:
        try:
            path = client_file(source, scope, project).path
        except ValueError as exc:
            die(str(exc), EXIT_USAGE)
        if not path.is_file():
            die(f"{path}: no such file: is {source} set up here? (or give its file as PATH)", EXIT_USAGE)
    assert path is not None
    try:
        fmt, candidates = candidates_of(read_config(path), source)
    except (OSError, UnicodeDecodeError) as exc:
        die(f"{path}: cannot read: {exc}", EXIT_USAGE)
    except tomllib.TOMLDecodeError as exc:
        die(f"{path}: invalid TOML: {exc}", EXIT_USAGE)
    except jsonc_text.JsoncError as exc:
        die(f"{path}: invalid JSON: {exc}", EXIT_USAGE)
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
