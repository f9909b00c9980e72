"""What an agent may change in the config, and how the rest waits for a human.

An agent is any caller of the MCP management tools (`source == "mcp"`). It
must never change what runs or where credentials go on its own, so:

- a change to a *launch field* (below) of an existing server is not applied:
  it is stored beside the server as `pending_change` and the server goes back
  to quarantine (it stops); a human approves the proposal (which applies it)
  or rejects it (which restores the approved spec and its quarantine state);
- a server it adds is quarantined (unless `quarantine_enabled` is off);
- it may not reference a secret (`${keyring:…}`, `${env:…}`) that the server
  did not already use, so it cannot route a stored secret anywhere new;
- removing, disabling or enabling a server needs the management right: the
  API key on `/mcp` (a keyless loopback caller is refused).

Pure decisions on the parsed JSON; `ConfigAdmin` applies them under its lock.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any, Final

from services.config_doc import LAUNCH_FIELDS, ConfigDocument, PatchError, launch_spec
from services.references import references_in

AGENT_TUNABLE_FIELDS: Final = frozenset({"init_timeout", "call_tool_timeout", "health_check_interval"})
"""Fields an agent may change directly: they run nothing new and send nothing anywhere."""

MANAGEMENT_ACTIONS: Final = frozenset({"remove", "disable", "enable"})
"""Actions that need the management right when an agent asks for them."""

PENDING: Final = "pending_change"


class AgentRefusedError(PatchError):
    """What an agent asked for needs a human (or the API key); status 403."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=403)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def references(value: Any) -> set[str]:
    """Every `${kind:NAME}` reference anywhere in a JSON value, as written."""
    return {f"${{{kind}:{name}}}" for text in _strings(value) for kind, name in references_in(text)}


def check_references(proposed: dict[str, Any], approved: dict[str, Any] | None) -> None:
    """Refuse references the approved server does not already use."""
    allowed = references(approved) if approved is not None else set()
    new = sorted(references(proposed) - allowed)
    if new:
        raise AgentRefusedError(
            f"secret references cannot be added from MCP: {', '.join(new)}; a human can add them "
            "(REST, `mcpproxy upstream patch`, the Web UI)"
        )


def check_management(action: str, keyed: bool) -> None:
    if action in MANAGEMENT_ACTIONS and not keyed:
        raise AgentRefusedError(
            f"{action}: managing servers from MCP needs the API key (send X-API-Key or "
            "Authorization: Bearer); a human can also use the REST API, the CLI or the Web UI"
        )


def prepare_add(server: dict[str, Any], quarantine: bool) -> dict[str, Any]:
    """A server an agent adds: no secret references, quarantined."""
    check_references(server, None)
    added = dict(server)
    added.pop(PENDING, None)
    if quarantine:
        added["quarantined"] = True
    return added


def change_id(proposed: dict[str, Any]) -> str:
    """A short fingerprint of a proposal, so an approval names what the human reviewed."""
    digest = hashlib.sha256(json.dumps(proposed, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def propose(doc: ConfigDocument, name: str, patch: Any) -> str:
    """Apply an agent's patch: tunables directly, launch fields as a proposal. Returns what happened.

    Raises for unknown fields (agents get an allow-list, not a deny-list) and
    for new secret references.
    """
    if not isinstance(patch, dict):
        raise PatchError("body: expected a JSON object (a JSON Merge Patch of the server)")
    unknown = sorted(set(patch) - LAUNCH_FIELDS - AGENT_TUNABLE_FIELDS - {"name"})
    if unknown:
        raise AgentRefusedError(f"{', '.join(unknown)}: cannot be changed from MCP")
    current = doc.server(name)
    tunables = {k: v for k, v in patch.items() if k in AGENT_TUNABLE_FIELDS}
    launch = {k: v for k, v in patch.items() if k in LAUNCH_FIELDS or k == "name"}
    if tunables:
        doc.patch(name, tunables)
        current = doc.server(name)
    if not set(launch) - {"name"}:
        return "applied"
    pending = current.get(PENDING)
    # The proposal builds on the previous one, so two agent patches read as one change to review.
    scratch = doc.copy()
    base = dict(current)
    if isinstance(pending, dict) and isinstance(pending.get("proposed"), dict):
        base = {**{k: v for k, v in base.items() if k not in LAUNCH_FIELDS}, **pending["proposed"]}
    scratch.servers[scratch.servers.index(scratch.server(name))] = base
    scratch.patch(name, launch)
    proposed = launch_spec(scratch.server(name))
    check_references(proposed, current)
    if proposed == launch_spec(current):
        current.pop(PENDING, None)
        return "applied" if tunables else "unchanged"
    restore = pending.get("restore_quarantined") if isinstance(pending, dict) else None
    current[PENDING] = {
        "id": change_id(proposed),
        "source": "mcp",
        "proposed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "proposed": proposed,
        "restore_quarantined": bool(current.get("quarantined", False) if restore is None else restore),
    }
    current["quarantined"] = True
    # The whole file must still be valid with the proposal in force, or a human could not approve it.
    check = doc.copy()
    approve(check, name, None)
    check.validated()
    return "proposed"


def approve(doc: ConfigDocument, name: str, expected_id: str | None) -> bool:
    """A human takes the server out of quarantine, applying its pending change if it has one."""
    server = doc.server(name)
    pending = server.get(PENDING)
    if isinstance(pending, dict):
        if expected_id is not None and expected_id != pending.get("id"):
            raise PatchError(
                f"the pending change of {name!r} is now {pending.get('id')}, not {expected_id}: "
                "review it again",
                status=409,
            )
        proposed = pending.get("proposed")
        kept = {k: v for k, v in server.items() if k not in LAUNCH_FIELDS and k != PENDING}
        server.clear()
        server.update({**kept, **copy.deepcopy(proposed if isinstance(proposed, dict) else {})})
    elif expected_id is not None:
        raise PatchError(f"{name!r} has no pending change (it may have been rejected)", status=409)
    server["quarantined"] = False
    return isinstance(pending, dict)


def reject(doc: ConfigDocument, name: str) -> None:
    """A human turns a proposal down: the approved spec stays, with the quarantine it had."""
    server = doc.server(name)
    pending = server.pop(PENDING, None)
    if not isinstance(pending, dict):
        raise PatchError(f"{name!r} has no pending change to reject", status=409)
    server["quarantined"] = bool(pending.get("restore_quarantined", False))
