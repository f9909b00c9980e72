"""`mcpproxy upstream logs NAME [--tail N] [--follow]`: an upstream's stderr log."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import click

from cli.client import management_target as _target, name_argument, target_options
from cli.output import emit_json, output_option

FOLLOW_POLL_S: Final = 1.0
FOLLOW_WINDOW: Final = 1000


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


@click.command("logs")
@name_argument
@click.option("-n", "--tail", type=click.IntRange(min=0), default=100, show_default=True, help="Lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@output_option
@target_options
def logs_command(
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
