"""The `mcpproxy` command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
import trio

from bus.errors import ConfigError
from services.config import default_config_path, load_config, resolve_data_dir


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """mcpproxy: many MCP servers behind one crash-isolated endpoint."""


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Config file (default: $MCPPROXY_CONFIG or ~/.mcpproxy/mcp_config.json).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where logs and state live (default: data_dir in the config, else its directory).",
)
@click.option("--listen", default=None, help="HOST:PORT to serve on (default: listen in the config).")
@click.option(
    "--log-level", default=lambda: os.environ.get("MCPPROXY_LOG_LEVEL", "INFO"), show_default="INFO"
)
def serve(config_path: Path | None, data_dir: Path | None, listen: str | None, log_level: str) -> None:
    """Start the proxy (supervisor + gateway) and run until Ctrl-C.

    Example: mcpproxy serve --config ./mcp_config.json --listen 127.0.0.1:8080
    """
    from cli.serve import run_serve

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    path = config_path or default_config_path()
    try:
        config = load_config(path, create=config_path is None)
    except ConfigError as exc:
        click.echo(f"mcpproxy: {exc}", err=True)
        sys.exit(2)
    # Resolve once here so both processes agree even if the file changes meanwhile.
    resolved = resolve_data_dir(config, path, str(data_dir) if data_dir else None)
    sys.exit(trio.run(run_serve, config, path, resolved, listen, log_level))


def main() -> None:
    from cli.activity_cmd import activity_group
    from cli.secrets_cmd import secrets_group

    cli.add_command(activity_group)

    cli.add_command(secrets_group)
    cli()


if __name__ == "__main__":
    main()
