"""Who may do what, as pure decisions: a tool's tier, a profile's view, a credential's grant (issue 21).

A tool's tier follows the MCP defaults for its annotations (`readOnlyHint` false, `destructiveHint`
true): no annotations at all is destructive, `readOnlyHint: true` is read, `readOnlyHint: false` with
`destructiveHint: false` is write. `tool_tiers` in the config overrides it, per tool
(`"memory:read_graph"`) or per server (`"memory:*"`; keys are globs on `server:tool`, the exact name
winning over a glob).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bus.access import TIERS, ClientGrant, Profile, Tier

TierSource = Literal["annotations", "mcp_default", "config"]
"""Where a tool's tier came from: its own annotations, the MCP defaults (annotations missing), or
`tool_tiers` in the config."""
RANK: Final[Mapping[Tier, int]] = {tier: rank for rank, tier in enumerate(TIERS)}
CALL_VARIANT: Final[Mapping[Tier, str]] = {
    "read": "call_tool_read",
    "write": "call_tool_write",
    "destructive": "call_tool_destructive",
}
VARIANT_TIER: Final[Mapping[str, Tier]] = {variant: tier for tier, variant in CALL_VARIANT.items()}
CREDENTIAL_PREFIX: Final = "mcpp_"
"""Client credentials start with it, so a leaked one is recognizable (secret scanners, logs)."""
_EXPIRY_RE: Final = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_EXPIRY_UNIT_S: Final = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class TierInfo:
    tier: Tier
    source: TierSource

    def shown(self) -> dict[str, str]:
        """As REST, MCP and the CLI show it beside a tool."""
        return {"tier": self.tier, "tier_source": self.source, "call_with": CALL_VARIANT[self.tier]}


def annotated_tier(annotations: Mapping[str, Any] | None) -> TierInfo:
    """The tier the MCP defaults give these annotations."""
    annotations = annotations or {}
    read_only = annotations.get("readOnlyHint")
    destructive = annotations.get("destructiveHint")
    if read_only is True:
        return TierInfo("read", "annotations")
    if destructive is False:
        return TierInfo("write", "annotations")
    if destructive is True:
        return TierInfo("destructive", "annotations")
    return TierInfo("destructive", "mcp_default")


def configured_tier(server: str, tool: str, overrides: Mapping[str, Tier]) -> Tier | None:
    """The `tool_tiers` entry for `server:tool`: the exact key, else the first glob that matches."""
    name = f"{server}:{tool}"
    exact = overrides.get(name)
    if exact is not None:
        return exact
    for pattern in sorted(overrides):
        if fnmatch.fnmatchcase(name, pattern):
            return overrides[pattern]
    return None


def tier_of(
    server: str, tool: str, annotations: Mapping[str, Any] | None, overrides: Mapping[str, Tier]
) -> TierInfo:
    configured = configured_tier(server, tool, overrides)
    if configured is not None:
        return TierInfo(configured, "config")
    return annotated_tier(annotations)


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def profile_has_server(profile: Profile, server: str) -> bool:
    return profile.servers is None or server in profile.servers


def profile_has_tool(profile: Profile, server: str, tool: str, tier: Tier) -> bool:
    """The tool is in the profile: its server is, `tools.allow` takes it, no `tools.deny` does, and its
    tier is at most `max_tier`."""
    name = f"{server}:{tool}"
    return (
        profile_has_server(profile, server)
        and (not profile.tools.allow or matches_any(name, profile.tools.allow))
        and not matches_any(name, profile.tools.deny)
        and RANK[tier] <= RANK[profile.max_tier]
    )


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def find_grant(credential: str, grants: Iterable[ClientGrant]) -> ClientGrant | None:
    """The grant whose hash is the credential's (compared in constant time), expired or not."""
    digest = credential_hash(credential)
    found = None
    for grant in grants:
        if hmac.compare_digest(grant.token_sha256, digest):
            found = grant
    return found


def expired(grant: ClientGrant, now: float) -> bool:
    return grant.expires_at is not None and now >= grant.expires_at


def parse_expiry(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w` as seconds; ValueError says what is accepted."""
    match = _EXPIRY_RE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"invalid expiry {text!r}: use a positive number with m, h, d or w, like 30d")
    return int(match.group(1)) * _EXPIRY_UNIT_S[match.group(2)]
