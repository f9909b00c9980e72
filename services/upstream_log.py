"""Per-server log files: an upstream's stderr (and the worker's notes), size-capped and rotated.

One current file plus one rotated file (`NAME.log.1`), so disk use per server
never exceeds twice the cap.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Final

from services.private_files import make_private_dir

DEFAULT_MAX_BYTES: Final = 5 * 1024 * 1024
TAIL_READ_LIMIT: Final = 4 * 1024 * 1024


class RotatingLog:
    """Append-only byte log that rotates to `<path>.1` when it passes `max_bytes`."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        make_private_dir(path.parent)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        # Local appends of a few KiB do not block in practice; this runs on the event loop.
        if self._size + len(data) > self.max_bytes:
            self._rotate()
        os.write(self._fd, data[: self.max_bytes])
        self._size += min(len(data), self.max_bytes)

    def note(self, line: str) -> None:
        """A line from the proxy itself, marked so it is not mistaken for upstream output."""
        self.write(f"[mcpproxy] {line}\n".encode(errors="replace"))

    def _rotate(self) -> None:
        os.close(self._fd)
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def log_path(data_dir: Path, server: str) -> Path:
    """Where a server's log lives under the data dir."""
    return data_dir / "logs" / f"server-{server}.log"


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines across the rotated and the current file."""
    keep: deque[str] = deque(maxlen=max(lines, 0))
    for part in (path.with_name(path.name + ".1"), path):
        try:
            size = part.stat().st_size
            with part.open("rb") as handle:
                if size > TAIL_READ_LIMIT:
                    handle.seek(size - TAIL_READ_LIMIT)
                    handle.readline()
                for raw in handle:
                    keep.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
        except FileNotFoundError:
            continue
    return list(keep)
