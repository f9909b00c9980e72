"""Tool and prompt pinning: a tool or prompt is served only as it was approved.

Each approved tool's definition (name, description, input schema,
annotations) is hashed and kept in `<data_dir>/tool_approvals.json`; each
approved prompt's (name, description, arguments) in
`<data_dir>/prompt_approvals.json`. When an upstream later serves a different
definition the tool or prompt is `changed` — hidden and unusable until a
human re-approves it — and one the server did not have before arrives
`pending`. A server with no approvals yet (a trusted server's first tool or
prompt set) is approved as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from bus.messages import HeldPrompt, ToolInfo
from services.config import write_atomically
from services.private_files import make_private_dir

logger = logging.getLogger(__name__)

APPROVED: Final = "approved"
PENDING: Final = "pending"
CHANGED: Final = "changed"


def definition(tool: ToolInfo) -> dict[str, Any]:
    """The parts of a tool an agent relies on: what it says it does and what it takes."""
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "annotations": tool.annotations,
    }


def prompt_definition(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a prompt an agent relies on (the prompt as the upstream listed it, camelCase)."""
    return {
        "name": prompt["name"],
        "description": prompt.get("description"),
        "arguments": prompt.get("arguments") or [],
    }


def digest(pinned: Mapping[str, Any]) -> str:
    canonical = json.dumps(pinned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def tool_hash(tool: ToolInfo) -> str:
    return digest(definition(tool))


def annotate(tools: Iterable[ToolInfo], approved: dict[str, dict[str, Any]]) -> list[ToolInfo]:
    """Each tool with its approval state; a changed tool carries the approved definition for a diff."""
    result = []
    for tool in tools:
        record = approved.get(tool.name)
        if record is None:
            result.append(msgspec.structs.replace(tool, approval=PENDING, previous=None))
        elif record["hash"] == tool_hash(tool):
            result.append(msgspec.structs.replace(tool, approval=APPROVED, previous=None))
        else:
            result.append(msgspec.structs.replace(tool, approval=CHANGED, previous=record["definition"]))
    return result


def held_prompts(
    store: PinStore, server: str, prompts: list[dict[str, Any]], *, trusted: bool
) -> dict[str, HeldPrompt]:
    """The prompts of `server` that are not approved; a trusted server seen for the first time has
    them all approved."""
    definitions = {p["name"]: prompt_definition(p) for p in prompts}
    approved = store.approved(server)
    if approved is None and trusted:
        store.approve_definitions(server, definitions)
        return {}
    held = {}
    for name, pinned in definitions.items():
        record = (approved or {}).get(name)
        if record is None:
            held[name] = HeldPrompt(approval=PENDING)
        elif record["hash"] != digest(pinned):
            held[name] = HeldPrompt(approval=CHANGED, previous=record["definition"])
    return held


def approve_prompts(
    store: PinStore, server: str, prompts: list[dict[str, Any]], names: Iterable[str] | None
) -> list[str]:
    """Approve the current definitions of the prompts `names` (all when None); return the names approved."""
    return store.approve_definitions(server, {p["name"]: prompt_definition(p) for p in prompts}, names)


class PinStore:
    """Approved definitions (of tools, or of prompts) per server, persisted atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._data: dict[str, dict[str, dict[str, Any]]] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self._data = {}

    def pin(self, server: str, tools: list[ToolInfo], *, trusted: bool) -> list[ToolInfo]:
        """Annotate `tools`; a trusted server seen for the first time has them all approved."""
        approved = self._data.get(server)
        if approved is None and trusted:
            self.approve(server, tools, [t.name for t in tools])
            approved = self._data[server]
        return annotate(tools, approved or {})

    def approve(self, server: str, tools: list[ToolInfo], names: Iterable[str] | None = None) -> list[str]:
        """Approve the current definitions of `names` (all when None); return the names approved."""
        return self.approve_definitions(server, {t.name: definition(t) for t in tools}, names)

    def approved(self, server: str) -> dict[str, dict[str, Any]] | None:
        """Per name, the approved hash and definition; None for a server never approved."""
        return self._data.get(server)

    def approve_definitions(
        self, server: str, definitions: Mapping[str, dict[str, Any]], names: Iterable[str] | None = None
    ) -> list[str]:
        """Approve `definitions` of `names` (all when None); return the names approved."""
        wanted = None if names is None else set(names)
        record = self._data.setdefault(server, {})
        done = []
        for name, pinned in definitions.items():
            if wanted is None or name in wanted:
                record[name] = {"hash": digest(pinned), "definition": pinned}
                done.append(name)
        self._save()
        if done:
            logger.info("server %s: approved %s", server, ", ".join(sorted(done)))
        return done

    def forget(self, server: str) -> None:
        if self._data.pop(server, None) is not None:
            self._save()

    def _save(self) -> None:
        make_private_dir(self.path.parent)
        write_atomically(self.path, json.dumps(self._data, indent=1, sort_keys=True) + "\n")
