"""Wire types of access control: tool tiers, profiles and client grants (issue 21).

The supervisor reads them from the config and the clients file and sends them to the gateway as one
`AccessPolicy` (bus/messages.py); the gateway decides each request with them (gateway/access.py).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

Tier = Literal["read", "write", "destructive"]
"""What a tool may do, least to most: only reads; changes something; may delete or overwrite."""
TIERS: Final[tuple[Tier, ...]] = ("read", "write", "destructive")
ClientAction = Literal["list", "add", "rotate", "revoke"]


class ProfileTools(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Globs on `server:tool`: a tool is in the profile when it matches `allow` (empty: every tool)
    and no `deny`."""

    allow: list[str] = msgspec.field(default_factory=list)
    deny: list[str] = msgspec.field(default_factory=list)


class Profile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """A named view of the proxy: which servers and tools, up to which tier, and the management right."""

    name: str
    title: str = ""
    servers: list[str] | None = None
    """The servers in the profile; None (unset): every server."""
    max_tier: Tier = "destructive"
    tools: ProfileTools = msgspec.field(default_factory=ProfileTools)
    management: bool = False
    """May use the management tools (`upstream_servers` beyond `list`, `quarantine_security`)."""


class ClientGrant(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One client credential as stored: never the credential, only its SHA-256."""

    name: str
    profile: str
    token_sha256: str
    created_at: float
    expires_at: float | None = None
    """Unix time after which the credential is refused; None: never."""


class ClientInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A client as shown to people: no hash."""

    name: str
    profile: str
    created_at: float
    expires_at: float | None = None
