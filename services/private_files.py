"""The data dir is its owner's alone: directories we create are 0700, files 0600.

It holds the activity log (tool arguments and results), upstream logs, the
config with the API key, tool approvals, secrets and the process ledger. The
mode is given when a file is created, never left to the umask; a file an older
version created with a looser mode is tightened when we open it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

PRIVATE_DIR_MODE: Final = 0o700
PRIVATE_FILE_MODE: Final = 0o600


def make_private_dir(path: Path) -> None:
    """Create `path` and each missing parent with mode 0700 (`mkdir(parents=True)` gives the parents
    the umask's mode). An existing directory is left as it is: it may be one the user chose."""
    missing = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another of our processes made it just now
            directory.mkdir(mode=PRIVATE_DIR_MODE)


def keep_private(path: Path, *, create: bool = True) -> None:
    """Take group and other bits off `path`; if it is missing, create it empty with mode 0600
    (unless not `create`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0), PRIVATE_FILE_MODE)
    except FileNotFoundError:
        return
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


def private_opener(path: str, flags: int) -> int:
    """For `open(..., opener=private_opener)`: a file it creates gets mode 0600."""
    return os.open(path, flags | os.O_CLOEXEC, PRIVATE_FILE_MODE)


def write_atomically(path: Path, text: str, mode: int = 0o600, *, durable: bool = True) -> None:
    """Temporary file, fsync, rename: readers see the old file or the new one, never a torn one.

    `durable=False` skips both fsyncs: still atomic for every reader, but a machine crash may
    bring the old file back.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
