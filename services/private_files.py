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
