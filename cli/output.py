"""What commands print: rich tables for people, `-o json` for scripts (JSON on stdout, nothing else)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPE_WIDTH: Final = 200
"""Without a terminal rich would assume 80 columns and wrap cells; a pipe gets whole lines."""

STATE_STYLES: Final = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "backoff": "red",
    "exited": "red",
    "fatal": "bold red",
    "needs_login": "bold yellow",
    "stopped": "dim",
    "idle": "cyan",
}


def output_option(func: Any) -> Any:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="table for people, json for scripts.",
    )(func)


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or "COLUMNS" in os.environ:
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> Table:
    """A plain table; every cell is taken literally (never as rich markup)."""
    result = Table(title=title, box=None, header_style="bold", pad_edge=False, show_edge=False)
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        result.add_row(
            *(cell if isinstance(cell, Text) else Text("" if cell is None else str(cell)) for cell in row)
        )
    return result


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
    if not rows:
        click.echo(empty)
        return
    console().print(table(columns, rows))


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
