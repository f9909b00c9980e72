"""The result cache: the whole text of each tool result that was cut, kept for `read_cache`.

One file per result under `<data dir>/result_cache/` (directory 0700, files 0600,
written atomically), named by the SHA-256 of its handle, so a directory listing
gives no handle away. A handle is 128 random bits: unguessable. Each entry
records the profile of the caller it was made for; another profile reads it as
unknown. Entries expire `ttl_s` after they were made, and when the files
together pass `max_bytes` the oldest go first. Before anything is written the
text is scrubbed of every secret value the supervisor knows, as the activity
log is (services/activity.py).

The methods block (file I/O): callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from services.private_files import make_private_dir, write_atomically
from services.redaction import SecretValues
from services.result_pages import Unit

logger = logging.getLogger(__name__)

CACHE_DIR_NAME: Final = "result_cache"
CACHE_TTL_S: Final = 3600.0
"""An hour: long enough for an agent to page through a result, short enough that results do not pile up."""
CACHE_MAX_BYTES: Final = 256 * 1024 * 1024
HANDLE_PREFIX: Final = "rc_"
_SUFFIX: Final = ".json"


class CacheMissError(LookupError):
    """No entry for this handle and caller: never made, expired, evicted, or another profile's."""


@dataclass(frozen=True)
class Entry:
    text: str
    unit: Unit
    page_chars: int
    """The limit the result was cut at: the largest page `read_cache` gives."""
    profile: str | None
    created: float


class ResultCache:
    def __init__(
        self,
        directory: Path,
        *,
        ttl_s: float = CACHE_TTL_S,
        max_bytes: int = CACHE_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.clock = clock
        self.secrets = SecretValues()
        self._lock = threading.Lock()

    def learn(self, values: list[str]) -> None:
        """The secret values to scrub (the supervisor's `KnownSecrets`)."""
        self.secrets = SecretValues(values)

    def scrub(self, text: str) -> str:
        return self.secrets.scrub_values(text) if self.secrets else text

    def put(self, text: str, unit: Unit, page_chars: int, profile: str | None) -> str:
        """Keep `text` (already scrubbed: see `scrub`) and return its new handle."""
        handle = HANDLE_PREFIX + secrets.token_urlsafe(16)
        created = self.clock()
        body = {
            "created": created,
            "unit": unit,
            "page_chars": page_chars,
            "profile": profile,
            "text": text,
        }
        with self._lock:
            make_private_dir(self.directory)
            # Not fsynced: a cache may lose its newest entries in a machine crash, never be torn.
            path = self._path(handle)
            write_atomically(path, json.dumps(body, ensure_ascii=False), durable=False)
            os.utime(path, (created, created))  # the sweep reads ages off the directory, not the files
            self._sweep()
        return handle

    def get(self, handle: str, profile: str | None) -> Entry:
        """The entry of `handle` made for `profile`; CacheMissError otherwise."""
        if not handle.startswith(HANDLE_PREFIX):
            raise CacheMissError(handle)
        path = self._path(handle)
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise CacheMissError(handle) from None
        entry = Entry(body["text"], body["unit"], body["page_chars"], body["profile"], body["created"])
        if self.clock() - entry.created > self.ttl_s:
            with contextlib.suppress(OSError):
                path.unlink()
            raise CacheMissError(handle)
        if entry.profile != profile:
            raise CacheMissError(handle)
        return entry

    def _path(self, handle: str) -> Path:
        return self.directory / (hashlib.sha256(handle.encode()).hexdigest()[:32] + _SUFFIX)

    def _sweep(self) -> None:
        """Remove expired entries, then the oldest until the rest fit in `max_bytes`."""
        now = self.clock()
        files: list[tuple[float, int, Path]] = []
        with os.scandir(self.directory) as found:
            for item in found:
                if not item.name.endswith(_SUFFIX):
                    continue
                try:
                    stat = item.stat()
                except OSError:
                    continue
                files.append((stat.st_mtime, stat.st_size, Path(item.path)))
        files.sort()
        total = sum(size for _, size, _ in files)
        removed = 0
        for mtime, size, path in files:
            if now - mtime <= self.ttl_s and total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
            total -= size
        if removed:
            logger.debug("result cache: removed %d old entr%s", removed, "y" if removed == 1 else "ies")
