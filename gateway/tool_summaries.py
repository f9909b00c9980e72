"""A tool in one line: its parameters as a signature, its description cut to the first sentence.

What compact `retrieve_tools` hits and schema-deferred `/mcp/all` listings show instead of the
input schema (gateway/tool_views.py): enough to choose a tool and, for most tools, to call it;
`describe_tool` gives the rest.

    signature({"properties": {"owner": {"type": "string"}, "state": {"enum": ["open", "closed"]}},
               "required": ["owner"]})
    -> 'owner: string, state?: "open"|"closed"'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

MAX_ENUM: Final = 8
"""Enum values shown before `|…`: a longer list is a catalogue, not a type."""
MAX_DEPTH: Final = 3
"""How deep a type is spelled out (`string[][]`); deeper parts read `object`."""
MAX_SENTENCE: Final = 200
"""Characters of a first sentence; a longer one is cut at a word and ends in `…`."""
ABBREVIATIONS: Final = frozenset({"e.g.", "i.e.", "etc.", "vs.", "approx.", "incl.", "no.", "cf."})

_BLANK_LINE_RE: Final = re.compile(r"\n\s*\n")
_SENTENCE_END_RE: Final = re.compile(r"[.!?](?=\s|$)")
_SPACE_RE: Final = re.compile(r"\s+")


def signature(schema: Mapping[str, Any] | None) -> str:
    """The parameters of an input schema as `name: type`, optional ones marked `name?`."""
    properties = (schema or {}).get("properties")
    if not isinstance(properties, Mapping):
        return ""
    required = (schema or {}).get("required")
    needed = set(required) if isinstance(required, list) else set()
    return ", ".join(
        f"{name}{'' if name in needed else '?'}: {type_text(spec)}" for name, spec in properties.items()
    )


def type_text(spec: Any, depth: int = 0) -> str:
    """A JSON Schema as a short type: `string`, `integer[]`, `"a"|"b"`, `string|null`, `object`."""
    if not isinstance(spec, Mapping) or depth >= MAX_DEPTH:
        return "any" if not isinstance(spec, Mapping) else "object"
    if "const" in spec:
        return json.dumps(spec["const"], ensure_ascii=False)
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        shown = "|".join(json.dumps(value, ensure_ascii=False) for value in enum[:MAX_ENUM])
        return shown + ("|…" if len(enum) > MAX_ENUM else "")
    for combinator in ("anyOf", "oneOf"):
        choices = spec.get(combinator)
        if isinstance(choices, list) and choices:
            return "|".join(dict.fromkeys(type_text(choice, depth + 1) for choice in choices))
    kind = spec.get("type")
    if isinstance(kind, list):
        return "|".join(_single_type(spec, str(k), depth) for k in kind) or "any"
    if isinstance(kind, str):
        return _single_type(spec, kind, depth)
    ref = spec.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1] or "object"
    if "properties" in spec:
        return "object"
    return "any"


def _single_type(spec: Mapping[str, Any], kind: str, depth: int) -> str:
    if kind != "array":
        return kind
    items = spec.get("items")
    if not isinstance(items, Mapping):
        return "array"
    inner = type_text(items, depth + 1)
    return f"({inner})[]" if "|" in inner else f"{inner}[]"


def first_sentence(text: str) -> str:
    """The description's first sentence, on one line: up to the first `.`, `!` or `?` that ends a
    sentence (not `e.g.`), within its first paragraph, at most MAX_SENTENCE characters."""
    paragraph = _BLANK_LINE_RE.split(text.strip(), maxsplit=1)[0]
    line = _SPACE_RE.sub(" ", paragraph).strip()
    for end in _SENTENCE_END_RE.finditer(line):
        word = line[: end.end()].rsplit(" ", 1)[-1].lower()
        if word not in ABBREVIATIONS:
            line = line[: end.end()]
            break
    if len(line) <= MAX_SENTENCE:
        return line
    cut = line[:MAX_SENTENCE].rsplit(" ", 1)[0].rstrip(",;:")
    return f"{cut}…"
