"""What `mcpproxy connect` wrote where, so `disconnect` can undo exactly that.

The record (`<data dir>/connections.json`, 0600) keeps, per client file: the entry's name, the
client credential made for it, whether connect created the file or its servers object, the
backup it took and a digest of the text it wrote. While the file still has that digest, undoing
is putting the backup back; after the client (or a person) changed the file, only our entry is
taken out.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from services.private_files import PRIVATE_FILE_MODE, make_private_dir, write_atomically

RECORD_NAME: Final = "connections.json"
BACKUP_SUFFIX: Final = ".mcpproxy-backup"


@dataclass
class Connection:
    client: str
    scope: str
    file: str
    entry: str
    credential_client: str | None
    created_file: bool
    created_container: bool
    backup: str | None
    written_sha256: str
    connected_at: float


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Connections:
    """The record in a data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / RECORD_NAME

    def load(self) -> dict[str, Connection]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        found = {}
        for key, item in raw.items() if isinstance(raw, dict) else ():
            try:
                found[key] = Connection(**item)
            except TypeError:
                continue  # written by another version; that file is then undone by its entry alone
        return found

    def get(self, file: Path) -> Connection | None:
        return self.load().get(str(file))

    def put(self, connection: Connection) -> None:
        record = self.load()
        record[connection.file] = connection
        self._save(record)

    def drop(self, file: Path) -> None:
        record = self.load()
        if record.pop(str(file), None) is not None:
            self._save(record)

    def _save(self, record: dict[str, Connection]) -> None:
        make_private_dir(self.path.parent)
        body = {key: asdict(value) for key, value in sorted(record.items())}
        write_atomically(self.path, json.dumps(body, indent=2) + "\n")


def real_path(path: Path) -> Path:
    """The file a symlink points at (dotfile managers link ~/.claude.json and friends): we write
    through the link, never replace it with a file."""
    return path.resolve() if path.is_symlink() else path


def read_text(path: Path) -> str | None:
    """The file's text, or None if there is none."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def backup(path: Path) -> Path:
    """A copy of `path` beside it, named by the time, readable by its owner only."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}{BACKUP_SUFFIX}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.{stamp}-{counter}{BACKUP_SUFFIX}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as out, path.open("rb") as source:
        shutil.copyfileobj(source, out)
    return target


def write_client_file(path: Path, text: str) -> None:
    """Atomically, keeping an existing file's mode; a new file (and folder) is private."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        make_private_dir(path.parent)
        mode = PRIVATE_FILE_MODE
    write_atomically(path, text, mode)


def loosely_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o077)
    except FileNotFoundError:
        return False


def unified_diff(path: Path, before: str | None, after: str | None) -> str:
    """A unified diff of the change; empty when there is none."""
    lines = difflib.unified_diff(
        (before or "").splitlines(keepends=True),
        (after or "").splitlines(keepends=True),
        fromfile=str(path) if before is not None else "/dev/null",
        tofile=str(path) if after is not None else "/dev/null",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
