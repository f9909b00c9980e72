"""Names agents see: `server:tool` in /mcp, `server__tool` in /mcp/all.

LLM APIs accept tool names matching `^[a-zA-Z0-9_-]{1,64}$`. A `server__tool`
name that does not fit is shortened to a readable prefix plus a stable hash
suffix and remembered in a mapping table; names are never split back on the
separator.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable
from typing import Final

MAX_NAME: Final = 64
SEPARATOR: Final = "__"
_INVALID_RE: Final = re.compile(r"[^a-zA-Z0-9_-]")


def split_qualified(name: str) -> tuple[str, str] | None:
    """`server:tool` -> (server, tool); the tool part may itself contain ':'."""
    server, sep, tool = name.partition(":")
    if not sep or not server or not tool:
        return None
    return server, tool


def direct_name(server: str, tool: str) -> str:
    """The stable /mcp/all name of a tool."""
    raw = f"{server}{SEPARATOR}{tool}"
    clean = _INVALID_RE.sub("_", raw)
    if clean == raw and len(raw) <= MAX_NAME:
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{clean[: MAX_NAME - len(digest) - 1]}_{digest}"


def close_matches(wanted: str, known: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(wanted, list(known), n=n, cutoff=0.5)


def unknown_message(what: str, wanted: str, known: Iterable[str]) -> str:
    suggestions = close_matches(wanted, known)
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
    return f"unknown {what} {wanted!r}.{hint}"
