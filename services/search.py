"""Tool search: a BM25F index over tool name, server, description and parameters.

Fields are tokenized with snake_case / camelCase / kebab-case splitting and a
light suffix stemmer, weighted per field, and scored with BM25 (k1, b) over the
weighted term frequencies. The index is incremental: a server's tools are
replaced without touching the others.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

K1: Final = 1.2
B: Final = 0.75
FIELD_WEIGHTS: Final[Mapping[str, float]] = {
    "name": 3.0,
    "server": 1.5,
    "description": 1.0,
    "params": 1.5,
    "param_docs": 0.5,
}
STOPWORDS: Final = frozenset(
    (
        "a an and are as at be by for from has have i in is it its me my of on or that the this to was "
        "were will with you your can do does how what which"
    ).split()
)
_SPLIT_RE: Final = re.compile(r"[^0-9A-Za-z]+")
_CAMEL_RE: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SUFFIXES: Final = ("ing", "ies", "ied", "es", "ed", "s")


def stem(word: str) -> str:
    """A deliberately light stemmer: enough to match "files"/"file", "listing"/"list"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            root = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return root + "y"
            if suffix == "es" and not root.endswith(("s", "x", "z", "ch", "sh")):
                continue
            if suffix == "ing" and len(root) > 3 and root[-1] == root[-2]:
                return root[:-1]
            return root
    return word


def tokenize(text: str) -> list[str]:
    tokens = []
    for chunk in _SPLIT_RE.split(text):
        for part in _CAMEL_RE.split(chunk):
            word = part.lower()
            if word and word not in STOPWORDS:
                tokens.append(stem(word))
    return tokens


@dataclass(frozen=True)
class Hit:
    server: str
    tool: str
    score: float


def _param_texts(schema: Mapping[str, Any] | None) -> tuple[str, str]:
    props = (schema or {}).get("properties") or {}
    if not isinstance(props, dict):
        return "", ""
    names = " ".join(props)
    docs = " ".join(str(p.get("description", "")) for p in props.values() if isinstance(p, dict))
    return names, docs


class ToolIndex:
    """Incremental BM25F index keyed by (server, tool)."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Counter[str]] = {}
        self._lengths: dict[tuple[str, str], float] = {}
        self._postings: dict[str, dict[tuple[str, str], float]] = {}
        self._by_server: dict[str, list[tuple[str, str]]] = {}
        self._total_length = 0.0

    def __len__(self) -> int:
        return len(self._docs)

    def replace_server(self, server: str, tools: Iterable[tuple[str, str, Mapping[str, Any] | None]]) -> None:
        """Set the tools of `server` to (name, description, input schema) triples."""
        self.remove_server(server)
        keys = []
        for name, description, schema in tools:
            key = (server, name)
            params, param_docs = _param_texts(schema)
            fields = {
                "name": name,
                "server": server,
                "description": description,
                "params": params,
                "param_docs": param_docs,
            }
            weighted: Counter[str] = Counter()
            for field, text in fields.items():
                weight = FIELD_WEIGHTS[field]
                for token in tokenize(text):
                    weighted[token] += weight
            length = sum(weighted.values())
            self._docs[key] = weighted
            self._lengths[key] = length
            self._total_length += length
            for token, tf in weighted.items():
                self._postings.setdefault(token, {})[key] = tf
            keys.append(key)
        self._by_server[server] = keys

    def remove_server(self, server: str) -> None:
        for key in self._by_server.pop(server, []):
            weighted = self._docs.pop(key)
            self._total_length -= self._lengths.pop(key)
            for token in weighted:
                posting = self._postings.get(token)
                if posting is not None:
                    posting.pop(key, None)
                    if not posting:
                        del self._postings[token]

    def search(self, query: str, limit: int = 15) -> list[Hit]:
        n = len(self._docs)
        if not n:
            return []
        avg = self._total_length / n
        scores: dict[tuple[str, str], float] = {}
        for token in set(tokenize(query)):
            posting = self._postings.get(token)
            if not posting:
                continue
            idf = math.log(1.0 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            lengths = self._lengths
            for key, tf in posting.items():
                norm = tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths[key] / avg))
                scores[key] = scores.get(key, 0.0) + idf * norm
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [Hit(server, tool, round(score, 4)) for (server, tool), score in best]
