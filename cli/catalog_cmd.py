"""`mcpproxy prompts list | get | approve` and `mcpproxy resources list | read`: upstream prompts
and resources.

`list` reads REST (`/api/v1/servers/{name}/prompts`, `.../resources`), `approve` posts to
`.../prompts/approve`; `get` and `read` go through
the proxy's own `/mcp` endpoint with the MCP SDK client, exactly as an AI client does, under the
names that client sees (`server__prompt`, `mcpproxy://<server>/<original URI>`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import httpx2
import trio

from cli.client import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    CommandError,
    Target,
    complete_server_names,
    die,
    resolve_target,
    run_async,
    target_options,
)
from cli.output import emit_json, output_option, print_table
from cli.tools_cmd import MCP_INIT_TIMEOUT_S, first_line, open_session


def _servers(target: Target, server: str | None) -> list[str]:
    if server is not None:
        return [server]
    return [s["name"] for s in target.call("GET", "/api/v1/servers")["servers"]]


async def _request(target: Target, method: str, *args: Any) -> dict[str, Any]:
    """One MCP request on the proxy's /mcp endpoint; the result as JSON (camelCase, like the wire)."""
    from mcp.shared.exceptions import MCPError

    try:
        async with open_session(target) as session:
            result = await getattr(session, method)(*args)
    except (httpx2.ConnectError, httpx2.ConnectTimeout):
        raise CommandError(f"cannot reach {target.url}/mcp", EXIT_UNREACHABLE) from None
    except trio.TooSlowError:
        raise CommandError(f"{target.url}/mcp did not initialize in {MCP_INIT_TIMEOUT_S:g}s") from None
    except MCPError as exc:
        raise CommandError(exc.message, EXIT_FAILURE) from None
    dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _content_text(content: dict[str, Any]) -> str:
    if "text" in content:
        return str(content["text"])
    if content.get("type") == "resource":
        return _content_text(content.get("resource", {}))
    kind = content.get("mimeType") or content.get("type", "")
    return f"[{kind} {content.get('uri', '')}]".replace(" ]", "]")


@click.group("prompts")
def prompts_group() -> None:
    """List upstream prompts and get them through the proxy.

    \b
    Examples:
      mcpproxy prompts list everything
      mcpproxy prompts get everything:args-prompt --args '{"city": "Paris"}'
      mcpproxy prompts approve everything
    """


@prompts_group.command("list")
@click.argument("server", required=False, shell_complete=complete_server_names)
@output_option
@target_options
def list_prompts(
    server: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """The prompts of one server, or of every server, with the names MCP clients see and their
    approval: a `changed` or `pending` prompt is held from MCP clients until `prompts approve`.

    Example: mcpproxy prompts list everything
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    prompts = [
        {"server": name, **prompt}
        for name in _servers(target, server)
        for prompt in target.call("GET", f"/api/v1/servers/{name}/prompts")["prompts"]
    ]
    if output == "json":
        emit_json(prompts)
        return
    rows = [
        [
            f"{p['server']}:{p['name']}",
            p.get("approval", "approved"),
            p["mcp_name"],
            ", ".join(a["name"] + ("" if a.get("required") else "?") for a in p.get("arguments", [])),
            first_line(p.get("description")),
        ]
        for p in prompts
    ]
    print_table(("PROMPT", "APPROVAL", "MCP NAME", "ARGUMENTS", "DESCRIPTION"), rows, empty="no prompts")
    held = sorted({p["server"] for p in prompts if p.get("approval", "approved") != "approved"})
    for name in held:
        click.echo(f"{name} has held prompts: review them, then `mcpproxy prompts approve {name}`", err=True)


@prompts_group.command("approve")
@click.argument("server", shell_complete=complete_server_names)
@click.argument("names", nargs=-1, metavar="[NAME ...]")
@output_option
@target_options
def approve_prompts(
    server: str,
    names: tuple[str, ...],
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Approve held prompts (changed or new) of SERVER: the NAMEs, or all of them; MCP clients
    then list and get them. Review a changed one first: `mcpproxy prompts list SERVER -o json`
    shows its diff.

    Example: mcpproxy prompts approve everything greet
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    path = f"/api/v1/servers/{server}/prompts"
    before = {p["name"]: p.get("approval", "approved") for p in target.call("GET", path)["prompts"]}
    data = target.call("POST", f"{path}/approve", json={"prompts": list(names)} if names else None)
    if output == "json":
        emit_json(data)
        return
    approved = list(names) if names else sorted(n for n, a in before.items() if a != "approved")
    if not approved:
        click.echo(f"{server}: no prompts were held")
    for name in approved:
        click.echo(f"{server}:{name}: approved (was {before.get(name, 'approved')})")
    if data.get("still_held"):
        click.echo(f"{server}: still held: {', '.join(data['still_held'])}")


@prompts_group.command("get")
@click.argument("prompt", metavar="SERVER:PROMPT")
@click.option(
    "--args",
    "args_json",
    default="{}",
    metavar="JSON",
    help="Arguments as a JSON object of strings ('-': stdin).",
)
@output_option
@target_options
def get_prompt(
    prompt: str,
    args_json: str,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Get a prompt through the proxy and print its messages.

    Example: mcpproxy prompts get everything:args-prompt --args '{"city": "Paris"}'
    """
    server, sep, name = prompt.partition(":")
    if not sep or not server or not name:
        raise click.BadParameter(f"{prompt!r}: name it SERVER:PROMPT", param_hint="PROMPT")
    text = sys.stdin.read() if args_json == "-" else args_json
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--args") from None
    if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
        raise click.BadParameter(
            'expected a JSON object of strings, like \'{"city": "Paris"}\'', param_hint="--args"
        )
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    known = {p["name"]: p for p in target.call("GET", f"/api/v1/servers/{server}/prompts")["prompts"]}
    if name not in known:
        die(f"unknown prompt {prompt!r}: {server} has {', '.join(sorted(known)) or 'none'}", EXIT_NOT_FOUND)
    result = run_async(_request, target, "get_prompt", known[name]["mcp_name"], arguments)
    if output == "json":
        emit_json(result)
        return
    for message in result.get("messages", []):
        click.echo(f"{message['role']}: {_content_text(message['content'])}")


@click.group("resources")
def resources_group() -> None:
    """List upstream resources and read them through the proxy.

    \b
    Examples:
      mcpproxy resources list everything
      mcpproxy resources read mcpproxy://everything/demo://resource/static/document/features.md
    """


@resources_group.command("list")
@click.argument("server", required=False, shell_complete=complete_server_names)
@output_option
@target_options
def list_resources(
    server: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """The resources and templates of one server, or of every server, with the URIs MCP clients read.

    Example: mcpproxy resources list everything
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    entries = []
    for name in _servers(target, server):
        listed = target.call("GET", f"/api/v1/servers/{name}/resources")
        entries += [{"server": name, "kind": "resource", **r} for r in listed["resources"]]
        entries += [{"server": name, "kind": "template", **t} for t in listed["templates"]]
    if output == "json":
        emit_json(entries)
        return
    rows = [
        [
            e.get("mcp_uri") or e.get("mcp_uri_template", ""),
            e.get("mimeType", ""),
            first_line(e.get("title") or e.get("name") or e.get("description")),
        ]
        for e in entries
    ]
    print_table(("URI", "MIME TYPE", "NAME"), rows, empty="no resources")


@resources_group.command("read")
@click.argument("uri")
@output_option
@target_options
def read_resource(
    uri: str,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Read a resource through the proxy and print its contents (binary contents are summarized).

    URI is one `resources list` shows, or any URI an upstream gave (it goes to the server that has it).

    Example: mcpproxy resources read mcpproxy://everything/demo://resource/static/document/features.md
    """
    target = resolve_target(config_path, data_dir, url, api_key, require_config=False)
    target.call("GET", "/api/v1/status")  # one clear line if no proxy runs
    result = run_async(_request, target, "read_resource", uri)
    if output == "json":
        emit_json(result)
        return
    for content in result.get("contents", []):
        if "text" in content:
            click.echo(content["text"])
        else:
            size = len(content.get("blob", "")) * 3 // 4
            click.echo(f"[{content.get('mimeType', 'binary')} {content.get('uri', '')}, ~{size} bytes]")
