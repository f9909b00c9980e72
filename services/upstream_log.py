"""Per-server log files: an upstream's stderr (and the worker's notes), size-capped and rotated.

One current file plus one rotated file (`NAME.log.1`), so disk use per server
never exceeds twice the cap. Once the worker knows the secret values it gives
its upstream, they never reach the file (`RotatingLog.hide`), not even when
an upstream prints its environment or a value arrives split across reads.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Final

from services.private_files import make_private_dir
from services.redaction import SCRUBBED, SecretValues, scrub_urls

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
        self._secrets = SecretValues()
        self._hidden: tuple[bytes, ...] = ()
        self._held = b""
        """The end of the last write that may be the start of a secret value: written once it is not."""

    def hide(self, secrets: SecretValues) -> None:
        """From now on, these values are written as `••••`."""
        self._secrets = secrets
        self._hidden = tuple(value.encode() for value in secrets.values)

    def write(self, data: bytes) -> None:
        """Upstream output, as it comes (any chunking): hidden values never reach the file."""
        if self._hidden:
            data = self._held + data
            for value in self._hidden:
                data = data.replace(value, _SCRUBBED_BYTES)
            keep = self._open_prefix(data)
            data, self._held = data[: len(data) - keep], data[len(data) - keep :]
        self._append(data)

    def note(self, line: str) -> None:
        """A line from the proxy itself, marked so it is not mistaken for upstream output."""
        self.flush()
        self._append(f"[mcpproxy] {scrub_urls(self._secrets.scrub_values(line))}\n".encode(errors="replace"))

    def flush(self) -> None:
        """Write what `write` held back (the output ended: it was not a secret after all)."""
        held, self._held = self._held, b""
        if held:
            self._append(held)

    def _open_prefix(self, data: bytes) -> int:
        """How many bytes at the end of `data` begin some hidden value (the rest may follow)."""
        longest = 0
        for value in self._hidden:
            for size in range(min(len(value) - 1, len(data)), longest, -1):
                if data.endswith(value[:size]):
                    longest = size
                    break
        return longest

    def _append(self, data: bytes) -> None:
        # Local appends of a few KiB do not block in practice; this runs on the event loop.
        if not data:
            return
        if self._size + len(data) > self.max_bytes:
            self._rotate()
        os.write(self._fd, data[: self.max_bytes])
        self._size += min(len(data), self.max_bytes)

    def _rotate(self) -> None:
        os.close(self._fd)
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._size = 0

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


_SCRUBBED_BYTES: Final = SCRUBBED.encode()


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


STDERR_WORDS_LINES: Final = 3
STDERR_WORDS_WIDTH: Final = 240
STDERR_WORDS_READ: Final = 64 * 1024
"""How much of the end of the log is searched: a failure path on the supervisor's event loop."""
_NOTE: Final = "[mcpproxy] "
_RUN_START: Final = "[mcpproxy] started"


def last_stderr_lines(path: Path, lines: int = STDERR_WORDS_LINES) -> list[str]:
    """The last non-empty lines the upstream itself wrote to stderr in its latest run (the proxy's
    own `[mcpproxy]` notes left out), each cut to STDERR_WORDS_WIDTH characters.

    A run starts at the worker's `[mcpproxy] started ...` note, so what an earlier run printed is
    never blamed on this one. The file is scrubbed as it is written (`RotatingLog.hide`).
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - STDERR_WORDS_READ))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    found: list[str] = []
    for line in reversed(text.splitlines()[1 if size > STDERR_WORDS_READ else 0 :]):
        if line.startswith(_RUN_START):
            break
        if line.startswith(_NOTE) or not line.strip():
            continue
        shown = line.strip()
        found.append(shown if len(shown) <= STDERR_WORDS_WIDTH else shown[: STDERR_WORDS_WIDTH - 1] + "…")
        if len(found) == lines:
            break
    return found[::-1]


def with_stderr(error: str, path: Path) -> str:
    """`error`, followed by the upstream's last stderr lines when it has any that `error` lacks."""
    words = [line for line in last_stderr_lines(path) if line not in error]
    return f"{error}; its stderr ended: {' | '.join(words)}" if words else error
