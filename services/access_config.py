"""Validation of the access settings in the config: `tool_tiers`, `profiles`, `anonymous_profile`.

Server names in them are not checked against `mcpServers`: a profile may name a server that is added
later, and removing a server must not make the file invalid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from bus.access import Profile, Tier
from bus.errors import ConfigError

PROFILE_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""Profile names appear in URLs (`/mcp/p/<name>`): lower case, digits, `-` and `_`."""
_TOOL_GLOB_RE: Final = re.compile(r"[^:\s]+:[^\s]+")


def _error(file: str, path: str, problem: str) -> ConfigError:
    return ConfigError(f"{file}: {path}: {problem}")


def _check_globs(patterns: list[str], file: str, path: str) -> None:
    for index, pattern in enumerate(patterns):
        if not _TOOL_GLOB_RE.fullmatch(pattern):
            raise _error(file, f"{path}[{index}]", f"{pattern!r} is not a `server:tool` glob (like 'git:*')")


def validate_access(
    tool_tiers: Mapping[str, Tier], profiles: list[Profile], anonymous_profile: str | None, file: str
) -> None:
    """Raise ConfigError naming the path and the problem (msgspec has checked the types and tiers)."""
    for key in tool_tiers:
        if not _TOOL_GLOB_RE.fullmatch(key):
            raise _error(file, f"tool_tiers.{key}", "keys are `server:tool` (globs allowed, like 'memory:*')")
    seen: set[str] = set()
    for index, profile in enumerate(profiles):
        path = f"profiles[{index}]"
        if not PROFILE_NAME_RE.fullmatch(profile.name):
            raise _error(
                file, f"{path}.name", f"{profile.name!r}: use lower case letters, digits, '-' and '_'"
            )
        if profile.name in seen:
            raise _error(file, f"{path}.name", f"duplicate profile name {profile.name!r}")
        seen.add(profile.name)
        _check_globs(profile.tools.allow, file, f"{path}.tools.allow")
        _check_globs(profile.tools.deny, file, f"{path}.tools.deny")
    if anonymous_profile is not None and anonymous_profile not in seen:
        known = ", ".join(sorted(seen)) or "none configured"
        raise _error(file, "anonymous_profile", f"no profile named {anonymous_profile!r} (profiles: {known})")
