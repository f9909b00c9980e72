"""Tool names written in a search query: a query that names a tool finds it first.

An agent that already knows what it wants writes its name: `github:create_issue`,
`github__create_issue` (as `/mcp/all` lists it), `create_issue`, `create-issue`, `createIssue`.
Names are compared without case, `-` or `_`. A word of the query counts as a name only when it
looks like one (it has `_`, `-`, `:`, a camelCase hump or backticks) or is the whole query, so
"fetch the git log" does not put the `fetch` tool first, while "fetch" or "`fetch`" does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

QUALIFIED_SEPARATORS: Final = (":", "__")
_WORD_RE: Final = re.compile(r"\S+")
_EDGE_PUNCTUATION: Final = "`'\"()[]{}<>,.;!?"
_IDENTIFIER_RE: Final = re.compile(r"[_:\-]|[a-z][A-Z]|^`.+`$")
_FOLD_RE: Final = re.compile(r"[-_\s]")


def fold(name: str) -> str:
    """A name as names are compared: lower case, without `-`, `_` or spaces."""
    return _FOLD_RE.sub("", name).lower()


def named_words(query: str) -> list[str]:
    """The words of `query` that may be tool names: the whole query first, then each word that
    looks like an identifier, stripped of quotes, backticks and trailing punctuation."""
    whole = query.strip().strip(_EDGE_PUNCTUATION)
    words = [whole] if whole else []  # "create issue" too: how someone may spell create_issue
    for raw in _WORD_RE.findall(query):
        word = raw.strip(_EDGE_PUNCTUATION)
        if word and word not in words and _IDENTIFIER_RE.search(raw.rstrip(".,;!?")):
            words.append(word)
    return words


class NameTable:
    """Folded names of the indexed tools -> their keys (server, tool)."""

    def __init__(self) -> None:
        self._bare: dict[str, set[tuple[str, str]]] = {}
        self._qualified: dict[tuple[str, str], tuple[str, str]] = {}

    def add(self, server: str, tools: Iterable[str]) -> None:
        for tool in tools:
            key = (server, tool)
            self._bare.setdefault(fold(tool), set()).add(key)
            self._qualified[(fold(server), fold(tool))] = key

    def remove(self, server: str, tool: str) -> None:
        key = (server, tool)
        keys = self._bare.get(fold(tool))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._bare[fold(tool)]
        if self._qualified.get((fold(server), fold(tool))) == key:
            del self._qualified[(fold(server), fold(tool))]

    def named(self, query: str) -> list[tuple[str, str]]:
        """The tools `query` names, in the order it names them (empty for most queries)."""
        found: dict[tuple[str, str], None] = {}
        for word in named_words(query):
            for key in self._lookup(word):
                found.setdefault(key)
        return list(found)

    def _lookup(self, word: str) -> list[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        for separator in QUALIFIED_SEPARATORS:
            start = word.find(separator)
            while start > 0:  # a server name may hold the separator's characters: try every split
                key = self._qualified.get((fold(word[:start]), fold(word[start + len(separator) :])))
                if key is not None:
                    keys.append(key)
                start = word.find(separator, start + 1)
        if keys:
            return keys
        return sorted(self._bare.get(fold(word), ()))
