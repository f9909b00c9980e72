"""`mcpproxy status` and `mcpproxy doctor`."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import click
from rich.text import Text

from cli.client import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    ProxyUnreachableError,
    Target,
    resolve_target,
    target_options,
    unpack,
)
from cli.doctor_limits import env_checks, limits_check
from cli.output import console, duration, emit_json, output_option, print_table
from cli.serve_progress import count_of
from cli.server_table import server_rows
from cli.upstream_cmd import SERVER_COLUMNS

DOCKER_TIMEOUT_S: Final = 3
MARKS: Final = {"ok": ("✓", "green"), "info": ("·", "dim"), "warn": ("!", "yellow"), "fail": ("✗", "red")}


@click.command("status")
@output_option
@target_options
def status(
    output: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """The proxy's version, address, uptime and counts, and every server's state.

    Example: mcpproxy status -o json | jq .servers_running
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    data = target.call("GET", "/api/v1/status")
    servers = target.call("GET", "/api/v1/servers")["servers"]
    if output == "json":
        emit_json({**data, "url": target.url, "servers": servers})
        return
    click.echo(f"mcpproxy {data['version']} at {target.url}  (up {duration(data['uptime_s'])})")
    click.echo(
        f"servers: {data['servers_running']}/{data['servers_total']} running   "
        f"tools: {data['tools_total']}   secrets: {data.get('secrets_backend', '?')}"
    )
    click.echo(f"MCP endpoint: {target.url}/mcp  (all tools: {target.url}/mcp/all)")
    if servers:
        click.echo("")
    print_table(SERVER_COLUMNS, server_rows(servers), empty="no servers configured")


@dataclass
class Check:
    name: str
    level: str
    """ok, info, warn or fail."""
    detail: str
    fix: str | None = None


def suggest_fix(server: dict[str, Any]) -> str | None:
    """What a person can do about a server that does not run, from its state and last error."""
    name = server["name"]
    error = server.get("last_error") or ""
    if server.get("quarantined"):
        return f"review its command/url, then: mcpproxy upstream approve {name}"
    if not server.get("enabled", True):
        return f"mcpproxy upstream enable {name}"
    if match := re.search(r"\$\{keyring:([^}]+)\}", error):
        return f"store the secret: mcpproxy secrets set {match.group(1)}"
    if match := re.search(r"\$\{env:([^}]+)\}", error):
        return f"export {match.group(1)} in the environment that starts the proxy, then restart it"
    lowered = error.lower()
    if "command not found" in lowered or "no such file" in lowered or "not found" in lowered:
        return (
            f"install the command or give its full path: mcpproxy upstream patch {name} --command /path/to/it"
        )
    if "permission denied" in lowered:
        return f"make the command executable (chmod +x), then: mcpproxy upstream restart {name}"
    if re.search(r"http 40[13]", lowered):
        return f"check its credentials: mcpproxy upstream patch {name} --header 'Authorization: Bearer …'"
    if re.search(r"http 404", lowered):
        return f"check the URL: mcpproxy upstream patch {name} --server-url https://…"
    if "connect" in lowered and ("refused" in lowered or "error" in lowered):
        return f"is the remote server up? check its URL, then: mcpproxy upstream restart {name}"
    if "timed out" in lowered or "timeout" in lowered:
        return (
            f"is it an MCP server? see `mcpproxy upstream logs {name}`; a slow one needs a larger "
            "init_timeout"
        )
    if server.get("state") == "fatal":
        return f"see `mcpproxy upstream logs {name}`, fix the cause, then: mcpproxy upstream restart {name}"
    return f"see `mcpproxy upstream logs {name}`"


def server_check(server: dict[str, Any]) -> Check:
    name, state = server["name"], server.get("state", "?")
    label = f"server {name}"
    if server.get("quarantined"):
        return Check(label, "warn", "quarantined: waiting for approval", suggest_fix(server))
    if not server.get("enabled", True):
        return Check(label, "info", "disabled", suggest_fix(server))
    if state == "needs_login":
        return Check(
            label,
            "warn",
            f"needs login: {server.get('last_error') or 'sign in'}",
            f"mcpproxy auth login {name}",
        )
    if state == "running":
        if server.get("healthy") is False:
            return Check(
                label, "warn", "running but not answering pings", f"mcpproxy upstream restart {name}"
            )
        return Check(label, "ok", f"running, {count_of(server.get('tool_count', 0), 'tool')}")
    error = server.get("last_error")
    if state in ("starting", "exited") and error and server.get("restarts", 0) > 0:
        # Between two attempts of a retry loop: the last failure is the news.
        return Check(label, "fail", f"{state} (retrying): {error}", suggest_fix(server))
    if state in ("starting", "stopping"):
        return Check(label, "info", state)
    reason = server.get("last_error") or "no error recorded"
    retry = " (retrying)" if state == "backoff" else " (gave up)" if state == "fatal" else ""
    return Check(label, "fail", f"{state}{retry}: {reason}", suggest_fix(server))


def docker_check() -> Check:
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_TIMEOUT_S)
        try:
            client.ping()
            version = client.version().get("Version", "?")
        finally:
            client.close()
    except Exception as exc:  # any failure only means "no Docker here"; it is not a problem
        from services.docker_engine import engine_error_reason

        reason = engine_error_reason(exc).strip()
        return Check("docker", "info", f"not available: {reason.splitlines()[0] if reason else 'unknown'}")
    return Check("docker", "ok", f"available (engine {version})")


def run_checks(target: Target) -> tuple[list[Check], list[dict[str, Any]], bool]:
    """Every check; the servers as REST lists them; whether the proxy answered."""
    checks = []
    if target.config_problem is None:
        count = len(target.config.mcpServers)
        checks.append(Check("config", "ok", f"{target.config_path} is valid ({count_of(count, 'server')})"))
    elif target.config_path.exists():
        checks.append(
            Check(
                "config",
                "fail",
                target.config_problem,
                "fix the file; a running proxy keeps its last good config until then",
            )
        )
    else:
        checks.append(
            Check("config", "warn", target.config_problem, "`mcpproxy serve` creates one with safe defaults")
        )
    servers: list[dict[str, Any]] = []
    reachable = False
    try:
        response = target.request("GET", "/api/v1/status", timeout=10.0)
    except ProxyUnreachableError:
        checks.append(
            Check(
                "proxy",
                "fail",
                f"not running at {target.url}",
                f"start it: mcpproxy serve --config {target.config_path}",
            )
        )
        checks.append(Check("secrets", "info", "unknown (the proxy reports its backend)"))
    else:
        reachable = True
        status = unpack(response, target.url, "/api/v1/status")
        if not status.ok:
            checks.append(Check("proxy", "fail", f"{target.url} answered: {status.error}"))
        else:
            data = status.data
            checks.append(
                Check(
                    "proxy",
                    "ok",
                    f"mcpproxy {data['version']} at {target.url}, up {duration(data['uptime_s'])}, "
                    f"{data['servers_running']}/{data['servers_total']} servers running, "
                    f"{count_of(data['tools_total'], 'tool')}",
                )
            )
            checks.append(Check("secrets", "ok", f"backend: {data.get('secrets_backend', '?')}"))
            listed = unpack(target.request("GET", "/api/v1/servers"), target.url, "/api/v1/servers")
            servers = listed.data["servers"] if listed.ok else []
    checks.append(docker_check())
    checks.append(limits_check())
    checks.extend(env_checks(target.config))
    checks.extend(server_check(s) for s in servers)
    return checks, servers, reachable


@click.command("doctor")
@output_option
@target_options
def doctor(
    output: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """Check the config, the proxy, the secrets backend, Docker, resource limits, every server, and
    the variables each stdio upstream gets; suggest fixes.

    Exits 0 when all is well, 1 when something needs attention, 3 when no proxy runs.

    Example: mcpproxy doctor
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    checks, _servers, reachable = run_checks(target)
    failed = any(c.level == "fail" for c in checks)
    code = EXIT_UNREACHABLE if not reachable else EXIT_FAILURE if failed else EXIT_OK
    if output == "json":
        emit_json({"ok": code == EXIT_OK, "checks": [asdict(c) for c in checks]})
    else:
        out = console()
        width = max(len(c.name) for c in checks)
        for check in checks:
            mark, style = MARKS[check.level]
            line = Text(f"{mark} ", style=style)
            line.append(f"{check.name:<{width}}  ", style="bold" if check.level == "fail" else "")
            line.append(check.detail)
            out.print(line, soft_wrap=True)
            if check.fix:
                out.print(Text(f"  {'':<{width}}  fix: {check.fix}", style="cyan"), soft_wrap=True)
        summary = {
            EXIT_OK: "all good",
            EXIT_FAILURE: "some checks failed (see fix: lines)",
            EXIT_UNREACHABLE: "the proxy is not running",
        }
        click.echo(summary[code])
    raise SystemExit(code)
