"""What each server offered the last time it ran, kept in the data dir for on-demand servers.

`<data_dir>/tool_cache/<server>.json` (0600) holds the tools as the upstream described them, each
with its pinning hash (services/pinning.py), and the catalog (prompts, resources, templates). An
on-demand server that is not running is listed from it (supervisor/on_demand.py): its tools are
pinned again against the approvals when read, so a tool that changed since it was approved stays
held, and a tool whose cached definition no longer matches its hash is left out. The cache is
rewritten whenever a running server's tools or catalog change, and removed with the server.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

import msgspec

from bus.messages import Catalog, ToolInfo
from services.pinning import tool_hash
from services.private_files import make_private_dir, write_atomically

logger = logging.getLogger(__name__)

CACHE_DIR: Final = "tool_cache"


class CachedServer(msgspec.Struct, frozen=True, kw_only=True):
    """One server's offer as of `saved_at` (wall-clock seconds)."""

    tools: list[ToolInfo]
    hashes: dict[str, str] = msgspec.field(default_factory=dict)
    """Each tool's pinning hash when it was cached."""
    catalog: Catalog = msgspec.field(default_factory=Catalog)
    server_version: str | None = None
    summary: str = ""
    saved_at: float = 0.0


_DECODER: Final = msgspec.json.Decoder(CachedServer)


class ToolCache:
    """Reads and writes the per-server cache files; a missing or unreadable file is no cache."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / CACHE_DIR

    def _path(self, server: str) -> Path:
        return self.directory / f"{server}.json"

    def save(
        self,
        server: str,
        tools: list[ToolInfo],
        catalog: Catalog,
        *,
        server_version: str | None = None,
        summary: str = "",
    ) -> None:
        """Keep `tools` as the upstream described them (approval states are the store's, not ours)."""
        plain = [msgspec.structs.replace(t, approval="approved", previous=None) for t in tools]
        entry = CachedServer(
            tools=plain,
            hashes={t.name: tool_hash(t) for t in plain},
            catalog=msgspec.structs.replace(catalog, held_prompts={}),
            server_version=server_version,
            summary=summary,
            saved_at=time.time(),
        )
        try:
            make_private_dir(self.directory)
            # Not fsynced: losing it to a machine crash costs one start to learn the tools again.
            write_atomically(self._path(server), msgspec.json.encode(entry).decode(), durable=False)
        except OSError as exc:
            logger.warning("server %s: could not cache its tools: %s", server, exc)

    def load(self, server: str) -> CachedServer | None:
        try:
            entry = _DECODER.decode(self._path(server).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as exc:
            logger.warning("server %s: ignoring its tool cache: %s", server, exc)
            return None
        intact = [t for t in entry.tools if entry.hashes.get(t.name) == tool_hash(t)]
        if len(intact) != len(entry.tools):
            logger.warning(
                "server %s: %d cached tool(s) do not match their hash", server, len(entry.tools) - len(intact)
            )
            entry = msgspec.structs.replace(entry, tools=intact)
        return entry

    def forget(self, server: str) -> None:
        self._path(server).unlink(missing_ok=True)
