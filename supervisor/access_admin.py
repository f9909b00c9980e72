"""Changes to the access settings of mcp_config.json: profiles, tool tier overrides, MCP auth.

Each function changes a copy of the config document; ConfigAdmin validates the whole file and writes
it atomically, and the new AccessPolicy reaches the gateway before the answer does. Only a person
changes these (REST with the API key, which the CLI and the Web UI use): an AI client never widens
its own access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from bus.access import TIERS, Profile
from services.config_doc import ConfigDocument, PatchError


def access_view(doc: ConfigDocument) -> dict[str, Any]:
    """The access settings as stored (no secret is among them)."""
    data = doc.data
    return {
        "profiles": list(data.get("profiles") or []),
        "tool_tiers": dict(data.get("tool_tiers") or {}),
        "anonymous_profile": data.get("anonymous_profile"),
        "require_mcp_auth": data.get("require_mcp_auth"),
    }


def set_profile(doc: ConfigDocument, name: str, body: Any) -> bool:
    """Create or replace profile `name`; True when it is new."""
    if not isinstance(body, dict):
        raise PatchError('body: expected a profile object, like {"servers": ["git"], "max_tier": "read"}')
    if body.get("name", name) != name:
        raise PatchError("name: a profile cannot be renamed; add a new one and remove this one")
    try:
        profile = msgspec.convert({**body, "name": name}, Profile)
    except msgspec.ValidationError as exc:
        raise PatchError(f"profile: {exc}") from None
    stored = msgspec.to_builtins(profile)
    profiles: list[dict[str, Any]] = list(doc.data.get("profiles") or [])
    for index, existing in enumerate(profiles):
        if existing.get("name") == name:
            profiles[index] = stored
            doc.data["profiles"] = profiles
            return False
    doc.data["profiles"] = [*profiles, stored]
    return True


def remove_profile(doc: ConfigDocument, name: str, bound_clients: Sequence[str]) -> None:
    """Remove profile `name`, unless something still depends on it (say what, and how to free it)."""
    profiles: list[dict[str, Any]] = list(doc.data.get("profiles") or [])
    if not any(p.get("name") == name for p in profiles):
        raise PatchError(f"unknown profile {name!r}", status=404)
    if bound_clients:
        listed = ", ".join(sorted(bound_clients))
        raise PatchError(
            f"profile {name!r} is used by client(s) {listed}: revoke them (`mcpproxy clients revoke NAME`) "
            "or bind them to another profile first",
            status=409,
        )
    if doc.data.get("anonymous_profile") == name:
        raise PatchError(
            f"profile {name!r} is the anonymous_profile: set another one (or none) first", status=409
        )
    doc.data["profiles"] = [p for p in profiles if p.get("name") != name]


def set_tool_tier(doc: ConfigDocument, pattern: str, body: Any) -> None:
    """Override the tier of the tools matching `pattern` (`server:tool`, globs allowed)."""
    tier = body.get("tier") if isinstance(body, dict) else None
    if tier not in TIERS:
        raise PatchError(f'body: expected {{"tier": "read" | "write" | "destructive"}}, got {body!r}')
    doc.data["tool_tiers"] = {**(doc.data.get("tool_tiers") or {}), pattern: tier}


def clear_tool_tier(doc: ConfigDocument, pattern: str) -> None:
    """Drop an override: the tools' tier comes from their annotations again."""
    tiers = dict(doc.data.get("tool_tiers") or {})
    if pattern not in tiers:
        raise PatchError(f"no tier override for {pattern!r}", status=404)
    del tiers[pattern]
    if tiers:
        doc.data["tool_tiers"] = tiers
    else:
        doc.data.pop("tool_tiers", None)


def set_access(doc: ConfigDocument, body: Any) -> None:
    """`require_mcp_auth` (true, false, or null for the default) and `anonymous_profile` (a name or null)."""
    if not isinstance(body, dict) or not body or set(body) - {"require_mcp_auth", "anonymous_profile"}:
        raise PatchError(
            'body: expected {"require_mcp_auth": true | false | null, "anonymous_profile": "name" | null}'
        )
    for key, value in body.items():
        if key == "require_mcp_auth" and value is not None and not isinstance(value, bool):
            raise PatchError("require_mcp_auth: expected true, false or null (the default)")
        if key == "anonymous_profile" and value is not None and not isinstance(value, str):
            raise PatchError("anonymous_profile: expected a profile name or null")
        if value is None:
            doc.data.pop(key, None)
        else:
            doc.data[key] = value
