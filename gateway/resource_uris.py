"""Resource URIs agents see, and pages of aggregated lists. Pure: no I/O.

Every resource and template a server lists is shown as `mcpproxy://<server>/<original>`: the
original URI (or URI template) follows the server name verbatim, not encoded, so a client that
expands a template `mcpproxy://fs/file:///{path}` gets exactly `mcpproxy://fs/` plus what the
upstream's own template would have produced. Server names (`A-Z a-z 0-9 _ . -`) are valid URI
authorities, and `/` never occurs in one, so the split is unambiguous: two servers that both serve
`file:///README.md` are `mcpproxy://a/file:///README.md` and `mcpproxy://b/file:///README.md`.

A URI without the prefix (a resource link inside a tool result or prompt, an MCP App's `ui://`
resource named in a tool's `_meta`) is still readable: it goes to the servers that own it (see
`gateway/catalog.py`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Final, TypeVar

PREFIX: Final = "mcpproxy://"
PAGE_SIZE: Final = 100
"""Entries per page of an aggregated list (resources, templates, prompts)."""

_EXPRESSION_RE: Final = re.compile(r"\{([+#./;?&]?)([^{}]*)\}")

T = TypeVar("T")


def qualify(server: str, uri: str) -> str:
    """The URI agents see for `uri` of `server`."""
    return f"{PREFIX}{server}/{uri}"


def unqualify(uri: str) -> tuple[str, str] | None:
    """`mcpproxy://<server>/<original>` -> (server, original); None for any other URI."""
    if not uri.startswith(PREFIX):
        return None
    server, sep, original = uri[len(PREFIX) :].partition("/")
    if not sep or not server or not original:
        return None
    return server, original


def template_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the URIs an RFC 6570 template expands to (operators `+` and `#` may span `/`)."""
    parts: list[str] = []
    position = 0
    for match in _EXPRESSION_RE.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        operator = match.group(1)
        if operator in ("+", "#"):
            parts.append(("#" if operator == "#" else "") + ".*")
        elif operator in ("?", "&"):
            parts.append(r"[?&].*")
        elif operator in (".", "/", ";"):
            parts.append(re.escape(operator) + r"[^?#]*")
        else:
            parts.append(r"[^/?#]*")
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts))


def matches_template(template: str, uri: str) -> bool:
    return template_pattern(template).fullmatch(uri) is not None


def encode_cursor(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str] | None:
    """The key a cursor stands for; None for a cursor we did not make."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError):
        return None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key)):
        return None
    return key[0], key[1]


def page(
    entries: Sequence[tuple[tuple[str, str], T]], cursor: str | None, size: int = PAGE_SIZE
) -> tuple[list[T], str | None] | None:
    """One page of `entries` (sorted by key) after `cursor`, and the next cursor; None for a bad cursor.

    A cursor names the last key it returned, not an offset: servers that come or go between
    two pages shift no entry of another server into a gap or a repeat.
    """
    after = None
    if cursor is not None:
        after = decode_cursor(cursor)
        if after is None:
            return None
    remaining = [(key, value) for key, value in entries if after is None or key > after]
    chosen = remaining[:size]
    next_cursor = encode_cursor(chosen[-1][0]) if len(remaining) > size else None
    return [value for _, value in chosen], next_cursor
