"""The `mcpproxy` command line."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Final

import click

from cli.installation import refuse_foreign_packages

LAZY_COMMANDS: Final = {
    "access": "cli.clients_cmd:access_group",
    "agent-instructions": "cli.agent_cmd:agent_instructions",
    "activity": "cli.activity_cmd:activity_group",
    "auth": "cli.auth_cmd:auth_group",
    "clients": "cli.clients_cmd:clients_group",
    "connect": "cli.connect_cmd:connect",
    "disconnect": "cli.connect_cmd:disconnect",
    "doctor": "cli.doctor_cmd:doctor",
    "import": "cli.import_cmd:import_servers",
    "keys": "cli.keys_cmd:keys_group",
    "profiles": "cli.profiles_cmd:profiles_group",
    "prompts": "cli.catalog_cmd:prompts_group",
    "registry": "cli.registry_cmd:registry_group",
    "resources": "cli.catalog_cmd:resources_group",
    "secrets": "cli.secrets_cmd:secrets_group",
    "status": "cli.doctor_cmd:status",
    "tools": "cli.tools_cmd:tools_group",
    "upstream": "cli.upstream_cmd:upstream_group",
}
"""The REST-client commands, imported when used: `serve` must not wait for rich and httpx2 (~0.2 s)."""


class LazyGroup(click.Group):
    """A click group that imports a command's module the first time that command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            module, _, name = LAZY_COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="The proxy to talk to, for every command (also $MCPPROXY_URL; a --url after the command wins).",
)
def cli(url: str | None) -> None:
    """mcpproxy: many MCP servers behind one crash-isolated endpoint.

    `serve` runs the proxy; every other command talks to the running proxy's
    REST API with its API key (--api-key, else $MCPPROXY_API_KEY, else
    `api_key` in the config). It finds the proxy at --url (before or after the
    command), else $MCPPROXY_URL, else where the proxy serving the config's data
    dir listens (its run file: `serve --listen` is remembered), else `listen`.
    Add -o json for machine-readable output on stdout.

    \b
    Examples:
      mcpproxy serve
      mcpproxy status
      mcpproxy upstream list
      mcpproxy upstream patch synapbus --header "X-Trace: on"
      mcpproxy tools search "read a file"
      mcpproxy auth login github
      mcpproxy doctor

    \b
    Exit codes: 0 ok, 1 failure, 2 usage error, 3 proxy unreachable,
                4 not found (unknown server or tool).

    \b
    Shell completion (commands, options, server names):
      bash: eval "$(_MCPPROXY_COMPLETE=bash_source mcpproxy)"   # in ~/.bashrc
      zsh:  eval "$(_MCPPROXY_COMPLETE=zsh_source mcpproxy)"    # in ~/.zshrc
      fish: _MCPPROXY_COMPLETE=fish_source mcpproxy | source
    """


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
    from bus.errors import ConfigError
    from cli.serve_launch import launch, preflight
    from services.config import default_config_path, load_config, parse_listen, resolve_data_dir

    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # serve's own requests (the readiness probe, the progress report's /events) are not news.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    path = config_path or default_config_path()
    try:
        config = load_config(path, create=config_path is None)
    except ConfigError as exc:
        click.echo(f"mcpproxy: {exc}", err=True)
        sys.exit(2)
    try:
        parse_listen(listen or config.listen)
    except ConfigError as exc:
        click.echo(f"mcpproxy: --listen {exc}", err=True)
        sys.exit(2)
    # Resolve once here so both processes agree even if the file changes meanwhile.
    resolved = resolve_data_dir(config, path, str(data_dir) if data_dir else None)
    if problem := preflight(listen or config.listen, resolved):
        click.echo(f"mcpproxy: {problem}", err=True)
        sys.exit(1)
    launched = launch(config, path, resolved, listen, log_level)
    # Only now trio and httpx2: the children import theirs meanwhile.
    import trio

    from cli.serve import run_serve
    from services.process import exit_now

    exit_now(trio.run(run_serve, config, launched, resolved))  # both children are reaped


def main() -> None:
    refuse_foreign_packages()  # before `bus` or `services` is imported: either may be another project's
    cli()


if __name__ == "__main__":
    main()
