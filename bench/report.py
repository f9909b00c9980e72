"""The one table the bench prints: a machine line, then rows of what, figure, target, met?."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import date

HEADINGS = ("what", "figure", "target", "met?")
NONE = "—"


@dataclass(frozen=True)
class Row:
    """One measured figure; `met` is None where there is no target to meet."""

    what: str
    figure: str
    target: str = NONE
    met: bool | None = None

    def cells(self) -> tuple[str, str, str, str]:
        met = NONE if self.met is None else ("yes" if self.met else "no")
        return self.what, self.figure, self.target, met


def machine_line(mode: str) -> str:
    load = os.getloadavg()[0]
    return (
        f"mcpproxy bench ({mode}): {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {date.today()}; load average {load:.1f} at start"
    )


def markdown_table(rows: list[Row]) -> str:
    cells = [HEADINGS, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADINGS))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) + " |"
             for line in cells]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)
