"""`mcpproxy keys generate | show | export`: the CurveZMQ keys of a tcp:// bus (docs/scale-out.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

import click

from cli.client import EXIT_NOT_FOUND, EXIT_USAGE, die, resolve_target, target_options
from services.bus_keys import KEY_NAMES, NEEDS, PAIRS, ROLES, Role, env_var, generate, store_name
from services.secrets import SecretsError, SecretStore


@click.group("keys")
def keys_group() -> None:
    """CurveZMQ keys for a bus that crosses hosts (tcp://); kept in the secrets store as bus_*.

    One server keypair for the bound sockets (supervisor, gateways), one client keypair for
    gateways and one for workers; bound sockets accept only those client keys.

    \b
    Examples:
      mcpproxy keys generate
      mcpproxy keys show
      mcpproxy keys export worker --format secret --reveal
    """


def _store(config_path: Path | None, data_dir: Path | None) -> SecretStore:
    target = resolve_target(config_path, data_dir, None, None)
    try:
        return SecretStore(target.data_dir, target.config.secrets_backend)
    except SecretsError as exc:
        die(str(exc))


def _stored(store: SecretStore) -> dict[str, str]:
    try:
        found = {key: store.get_sync(store_name(key)) for key in KEY_NAMES}
    except SecretsError as exc:
        die(str(exc))
    return {key: value for key, value in found.items() if value is not None}


@keys_group.command("generate")
@click.option("--force", is_flag=True, help="Replace existing keys (restart every bus process).")
@target_options
def generate_keys(
    force: bool, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """Make the bus keys and store them; prints the public keys only.

    Example: mcpproxy keys generate
    """
    store = _store(config_path, data_dir)
    if _stored(store) and not force:
        die("bus keys exist already; `mcpproxy keys show` lists them, --force replaces them", EXIT_USAGE)
    keys = generate()
    try:
        for key, value in keys.items():
            store.set_sync(store_name(key), value)
    except SecretsError as exc:
        die(str(exc))
    click.echo(f"stored {len(keys)} bus keys in the {store.backend_name}")
    for pair in PAIRS:
        click.echo(f"{pair + ' public key':<20} {keys[pair + '_public']}")


@keys_group.command("show")
@target_options
def show_keys(config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None) -> None:
    """Print the public bus keys (never a secret one).

    Example: mcpproxy keys show
    """
    stored = _stored(_store(config_path, data_dir))
    if not stored:
        die("no bus keys stored; run `mcpproxy keys generate`", EXIT_NOT_FOUND)
    for pair in PAIRS:
        click.echo(f"{pair + ' public key':<20} {stored.get(pair + '_public', '(missing)')}")


@keys_group.command("export")
@click.argument("role", type=click.Choice(get_args(Role)))
@click.option("--format", "form", type=click.Choice(["env", "secret"]), default="env", show_default=True)
@click.option("--name", default=None, help="The Kubernetes Secret's name (default mcpproxy-bus-ROLE).")
@click.option("--reveal", is_flag=True, help="Allow printing secret keys to a terminal.")
@target_options
def export_keys(
    role: Role,
    form: str,
    name: str | None,
    reveal: bool,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Print what one role's pods need: MCPPROXY_BUS_* lines (an env file for
    `kubectl create secret generic --from-env-file`, not for a shell), or a Kubernetes Secret.

    Only that role's keys: a worker never gets the server's secret key. Pipe it, don't show it.

    Example:

    \b
      mcpproxy keys export gateway --format secret | kubectl apply -f -
    """
    assert role in ROLES
    if sys.stdout.isatty() and not reveal:
        die("this prints secret keys: redirect it to a file or a pipe, or pass --reveal", EXIT_USAGE)
    stored = _stored(_store(config_path, data_dir))
    missing = [key for key in NEEDS[role] if key not in stored]
    if missing:
        shown = ", ".join(missing)
        die(f"bus keys missing from the store: {shown}; run `mcpproxy keys generate`", EXIT_NOT_FOUND)
    lines = [(env_var(key), stored[key]) for key in NEEDS[role]]
    if form == "env":
        click.echo("\n".join(f"{var}={value}" for var, value in lines))
        return
    click.echo(
        "\n".join(
            [
                "apiVersion: v1",
                "kind: Secret",
                "metadata:",
                f"  name: {name or 'mcpproxy-bus-' + role}",
                "type: Opaque",
                "stringData:",
                # Z85 text can hold YAML's special characters: every value is single-quoted.
                *(f"  {var}: '{value.replace(chr(39), chr(39) * 2)}'" for var, value in lines),
            ]
        )
    )
