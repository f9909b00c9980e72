"""JSON and JSONC documents edited in place: one member set or removed, every other byte kept.

MCP clients keep their servers in files people edit by hand (VS Code's are JSONC: comments and
trailing commas). Re-serializing such a file would drop its comments and may reorder or re-indent
it, so `mcpproxy connect` edits the text: it finds the spans of an object's members and splices
one member in or out. A member is inserted before the first one of its object (or alone, in an
empty one) and written in the file's own indentation, so removing it again gives back the same
bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

WHITESPACE_RE: Final = re.compile(r"[ \t\r\n]*")
NUMBER_RE: Final = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
STRING_RE: Final = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
LITERALS: Final = {"true": True, "false": False, "null": None}
DEFAULT_INDENT: Final = "  "


class JsoncError(ValueError):
    """The text is not JSON (nor JSONC); `line` and `column` count from 1."""

    def __init__(self, message: str, text: str, offset: int) -> None:
        self.line = text.count("\n", 0, offset) + 1
        self.column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        super().__init__(f"{message} at line {self.line} column {self.column}")


@dataclass
class Node:
    """A value and where it stands in the text: [start, end)."""

    start: int
    end: int
    value: Any
    members: list[Member] = field(default_factory=list)
    """An object's members, in order (empty for anything else)."""


@dataclass
class Member:
    key: str
    key_start: int
    node: Node
    comma_end: int | None = None
    """Just after the comma that follows the member, if one does."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> JsoncError:
        return JsoncError(message, self.text, self.pos)

    def skip(self) -> None:
        """Whitespace and comments."""
        text = self.text
        while True:
            self.pos = WHITESPACE_RE.match(text, self.pos).end()  # type: ignore[union-attr]
            if text.startswith("//", self.pos):
                newline = text.find("\n", self.pos)
                self.pos = len(text) if newline < 0 else newline
            elif text.startswith("/*", self.pos):
                close = text.find("*/", self.pos + 2)
                if close < 0:
                    raise self.fail("unterminated comment")
                self.pos = close + 2
            else:
                return

    def value(self) -> Node:
        self.skip()
        start, text = self.pos, self.text
        char = text[start : start + 1]
        if char == "{":
            return self.obj()
        if char == "[":
            return self.array()
        if char == '"':
            return self.string()
        for word, literal in LITERALS.items():
            if text.startswith(word, start):
                self.pos += len(word)
                return Node(start, self.pos, literal)
        if number := NUMBER_RE.match(text, start):
            self.pos = number.end()
            return Node(start, self.pos, json.loads(number.group()))
        raise self.fail("expected a value" if char else "unexpected end of file")

    def string(self) -> Node:
        found = STRING_RE.match(self.text, self.pos)
        if found is None:
            raise self.fail("invalid string")
        self.pos = found.end()
        return Node(found.start(), found.end(), json.loads(found.group()))

    def obj(self) -> Node:
        start = self.pos
        self.pos += 1
        members: list[Member] = []
        while True:
            self.skip()
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return Node(start, self.pos, {m.key: m.node.value for m in members}, members)
            if members:
                if not self.text.startswith(",", self.pos):
                    raise self.fail("expected ',' or '}'")
                self.pos += 1
                members[-1].comma_end = self.pos
                self.skip()
                if self.text.startswith("}", self.pos):
                    continue
            key = self.string() if self.text.startswith('"', self.pos) else None
            if key is None:
                raise self.fail("expected a member name in double quotes")
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expected ':'")
            self.pos += 1
            members.append(Member(key.value, key.start, self.value()))

    def array(self) -> Node:
        start = self.pos
        self.pos += 1
        items: list[Any] = []
        while True:
            self.skip()
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return Node(start, self.pos, items)
            if items:
                if not self.text.startswith(",", self.pos):
                    raise self.fail("expected ',' or ']'")
                self.pos += 1
                self.skip()
                if self.text.startswith("]", self.pos):
                    continue
            items.append(self.value().value)


def parse(text: str) -> Node:
    """The document's root; JSONC comments and trailing commas are accepted."""
    parser = _Parser(text)
    root = parser.value()
    parser.skip()
    if parser.pos != len(text):
        raise parser.fail("unexpected text after the document")
    return root


def loads(text: str) -> Any:
    return parse(text).value


def _line_indent(text: str, offset: int) -> str | None:
    """The whitespace that starts the line of `offset`, or None if something else precedes it."""
    line_start = text.rfind("\n", 0, offset) + 1
    lead = text[line_start:offset]
    return lead if not lead.strip() else None


def _opens_line(text: str, offset: int) -> bool:
    """Only whitespace follows `offset` up to the end of its line."""
    newline = text.find("\n", offset)
    return newline >= 0 and not text[offset:newline].strip()


def indent_unit(text: str, root: Node) -> str | None:
    """One level of the file's indentation, or None for a one-line file."""
    if root.members and (lead := _line_indent(text, root.members[0].key_start)) is not None:
        return lead or DEFAULT_INDENT
    return None if root.members and "\n" not in text[root.start : root.end] else DEFAULT_INDENT


def _render(value: Any, unit: str | None, base: str) -> str:
    if unit is None:
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, indent=unit, ensure_ascii=False).replace("\n", "\n" + base)


def find(root: Node, path: tuple[str, ...]) -> Node | None:
    """The node at `path` (member names from the root), if every step is an object member."""
    node: Node | None = root
    for key in path:
        member = next((m for m in node.members if m.key == key), None) if node is not None else None
        node = member.node if member is not None else None
    return node


def set_member(text: str, path: tuple[str, ...], key: str, value: Any) -> str:
    """`text` with member `key` of the object at `path` set to `value`; missing objects are made."""
    root = parse(text)
    if not isinstance(root.value, dict):
        raise JsoncError("the document is not an object", text, root.start)
    unit = indent_unit(text, root)
    node, depth = root, 0
    for step in path:
        child = find(node, (step,))
        if child is None:
            break
        if not isinstance(child.value, dict):
            raise JsoncError(f"{'.'.join(path[: depth + 1])} is not an object", text, child.start)
        node, depth = child, depth + 1
    for step in reversed(path[depth:]):
        key, value = step, {key: value}
    existing = next((m for m in node.members if m.key == key), None)
    if existing is not None:
        base = _line_indent(text, existing.key_start) or ""
        rendered = _render(value, unit, base)
        return text[: existing.node.start] + rendered + text[existing.node.end :]
    return _insert(text, node, key, value, unit)


def _insert(text: str, node: Node, key: str, value: Any, unit: str | None) -> str:
    name = json.dumps(key, ensure_ascii=False)
    if node.members:
        first = node.members[0].key_start
        base = _line_indent(text, first)
        if base is None or unit is None:
            return text[:first] + f"{name}: {_render(value, None, '')}, " + text[first:]
        # On the line after the brace, above any comment that belongs to the first member.
        opening = node.start + 1
        if _opens_line(text, opening):
            return text[:opening] + f"\n{base}{name}: {_render(value, unit, base)}," + text[opening:]
        return text[:first] + f"{name}: {_render(value, unit, base)},\n{base}" + text[first:]
    inner = text[node.start + 1 : node.end - 1]
    if unit is None:
        member = f"{name}: {_render(value, None, '')}"
        return text[: node.start + 1] + member + text[node.end - 1 :]
    line_start = text.rfind("\n", 0, node.start) + 1
    outer = re.match(r"[ \t]*", text[line_start:]).group()  # type: ignore[union-attr]
    base = outer + unit
    member = f"\n{base}{name}: {_render(value, unit, base)}"
    if not inner.strip():
        return text[: node.start + 1] + member + "\n" + outer + text[node.end - 1 :]
    return text[: node.start + 1] + member + text[node.start + 1 :]


def remove_member(text: str, path: tuple[str, ...], key: str) -> str:
    """`text` without member `key` of the object at `path` (unchanged if there is none)."""
    root = parse(text)
    node = find(root, path)
    if node is None:
        return text
    members = node.members
    index = next((i for i, m in enumerate(members) if m.key == key), None)
    if index is None:
        return text
    member = members[index]
    if index == 0 and member.comma_end is not None and len(members) > 1 and _opens_line(text, node.start + 1):
        gap = text[node.start + 1 : member.key_start]
        if not gap.strip() and gap.startswith("\n"):
            return text[: node.start + 1] + text[member.comma_end :]
    if index + 1 < len(members):
        return text[: member.key_start] + text[members[index + 1].key_start :]
    if index > 0:
        return text[: members[index - 1].node.end] + text[member.node.end :]
    after = text[member.node.end : node.end - 1]
    before = text[node.start + 1 : member.key_start]
    rest = after.lstrip(" \t\r\n,") if not after.strip(" \t\r\n,") else after
    inner = before.rstrip(" \t") if before.strip() else ""
    inner = inner + rest if (inner + rest).strip() else ""
    return text[: node.start + 1] + inner + text[node.end - 1 :]
