"""`mcpproxy secrets set | get | list | del`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from cli.client import EXIT_NOT_FOUND, EXIT_USAGE, ProxyUnreachableError, die, resolve_target, target_options
from services.redaction import mask
from services.secrets import SecretsError, SecretStore, secret_name_problem


@click.group("secrets")
def secrets_group() -> None:
    """Manage secrets referenced as ${keyring:NAME} (values never printed unless --reveal).

    Example: mcpproxy secrets set github_token
    """


def _store(target_data_dir: Path, backend: str) -> SecretStore:
    return SecretStore(target_data_dir, backend)


@secrets_group.command("set")
@click.argument("name")
@click.option(
    "--from-env", "from_env", metavar="VAR", default=None, help="Take the value from this variable."
)
@click.option("--from-stdin", is_flag=True, help="Read the value from standard input.")
@target_options
def set_secret(
    name: str,
    from_env: str | None,
    from_stdin: bool,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Store a secret; servers that reference it are restarted.

    Example: mcpproxy secrets set gh_token --from-env GITHUB_TOKEN
    """
    if problem := secret_name_problem(name):
        die(problem, EXIT_USAGE)
    if from_env and from_stdin:
        die("use --from-env or --from-stdin, not both", EXIT_USAGE)
    if from_env:
        value = os.environ.get(from_env)
        if value is None:
            die(f"--from-env: the variable {from_env} is not set", EXIT_USAGE)
    elif from_stdin:
        value = sys.stdin.read().rstrip("\n")
    elif not sys.stdin.isatty():
        # getpass would fall back to echoing the value, with a warning and a traceback-like frame.
        die(
            f"no terminal to type the value of {name} on: pipe it with --from-stdin, or name a variable "
            "that holds it with --from-env VAR",
            EXIT_USAGE,
        )
    else:
        value = click.prompt(f"value for {name}", hide_input=True, confirmation_prompt=True)
    if not value:
        die("a secret cannot be empty", EXIT_USAGE)
    target = resolve_target(config_path, data_dir, url, api_key)
    try:
        response = target.request("POST", "/api/v1/secrets", json={"name": name, "value": value})
    except ProxyUnreachableError:
        try:
            store = _store(target.data_dir, target.config.secrets_backend)
            store.set_sync(name, value)
        except SecretsError as exc:
            die(str(exc))
        click.echo(f"stored {name} in the {store.backend_name} (no proxy running; nothing restarted)")
        return
    body = response.json()
    if not body.get("success"):
        die(body.get("error", "failed"))
    restarted = body["data"]["restarted"]
    click.echo(
        f"stored {name} in the {body['data']['backend']}"
        + (f"; restarted {', '.join(restarted)}" if restarted else "")
    )


@secrets_group.command("get")
@click.argument("name")
@click.option("--reveal", is_flag=True, help="Print the value itself instead of its mask.")
@target_options
def get_secret(
    name: str,
    reveal: bool,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Show a secret, masked unless --reveal.

    Example: mcpproxy secrets get gh_token
    """
    target = resolve_target(config_path, data_dir, url, api_key)
    try:
        value = _store(target.data_dir, target.config.secrets_backend).get_sync(name)
    except SecretsError as exc:
        die(str(exc))
    if value is None:
        die(f"unknown secret {name!r}", EXIT_NOT_FOUND)
    click.echo(value if reveal else mask(value))


@secrets_group.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@target_options
def list_secrets(
    output: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """List secret names and the servers that reference each (never values).

    Example: mcpproxy secrets list -o json
    """
    target = resolve_target(config_path, data_dir, url, api_key)
    try:
        response = target.request("GET", "/api/v1/secrets")
        data = response.json()["data"]
    except ProxyUnreachableError:
        store = _store(target.data_dir, target.config.secrets_backend)
        data = {
            "backend": store.backend_name,
            "secrets": [{"name": n, "stored": True, "servers": []} for n in store.names_sync()],
        }
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"backend: {data['backend']}")
    for item in data["secrets"]:
        state = "" if item["stored"] else "  (referenced but not stored)"
        click.echo(f"{item['name']:<32} {', '.join(item['servers']) or '-'}{state}")


@secrets_group.command("del")
@click.argument("name")
@target_options
def delete_secret(
    name: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """Delete a secret; servers that reference it are restarted (and will report it missing).

    Example: mcpproxy secrets del gh_token
    """
    target = resolve_target(config_path, data_dir, url, api_key)
    try:
        target.request("GET", "/healthz")
    except ProxyUnreachableError:
        store = _store(target.data_dir, target.config.secrets_backend)
        if name not in store.names_sync() and store.get_sync(name) is None:
            die(f"unknown secret {name!r}", EXIT_NOT_FOUND)
        store.delete_sync(name)
        click.echo(f"deleted {name}")
        return
    data = target.call("DELETE", f"/api/v1/secrets/{name}")
    click.echo(
        f"deleted {name}" + (f"; restarted {', '.join(data['restarted'])}" if data["restarted"] else "")
    )
