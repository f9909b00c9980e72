"""Who is calling /mcp, and what they may see and do there (issue 21).

The front door (gateway/frontdoor.py) decides each MCP request's `Identity` from its credential and
path, and puts it in `scope["state"]["identity"]`; every MCP surface (/mcp, /mcp/all, prompts and
resources, the fast lane) filters by it. A profile is a filtered view: what is outside it is not
listed, not found by search and not callable, and the refusal names nothing beyond it.

- the admin API key: everything, with the management right (on `/mcp/p/<name>`, that profile's view);
- a client credential: its profile's view, the management right if the profile has `management`;
- no credential (allowed unless `require_mcp_auth`): `anonymous_profile`'s view, or every server,
  and no management right unless `anonymous_profile` grants it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from bus.access import Profile
from bus.messages import AccessPolicy, ToolInfo
from services.access import TierInfo, expired, find_grant, profile_has_server, profile_has_tool, tier_of

PROFILE_PREFIX: Final = "/mcp/p/"


@dataclass(frozen=True)
class Identity:
    """Who an MCP request comes from and what it may see."""

    admin: bool = False
    """Presented the API key."""
    client: str | None = None
    """The client credential's name."""
    profile: Profile | None = None
    """The view it is served (None: every server and tool)."""
    management: bool = False
    """May use the management tools."""

    @property
    def profile_name(self) -> str | None:
        return self.profile.name if self.profile is not None else None


NOBODY: Final = Identity()
"""A caller the front door did not look at (REST and others): no profile, no management right."""


def identity_of(scope: Any) -> Identity:
    """The identity the front door put in an ASGI scope (or a Starlette request's scope)."""
    found = (scope.get("state") or {}).get("identity") if isinstance(scope, dict) else None
    return found if isinstance(found, Identity) else NOBODY


def identity_of_request(request: Any) -> Identity:
    return identity_of(request.scope) if request is not None else NOBODY


class AccessRefusedError(Exception):
    """The request is refused before any MCP handling: `status` and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_REQUESTER: ContextVar[Identity] = ContextVar("mcpproxy_requester", default=NOBODY)

Handler = Callable[..., Awaitable[Any]]


def as_requested(handler: Handler) -> Handler:
    """`handler(ctx, params)` run with `current_identity()` the identity of `ctx`'s request: for code
    that filters deep inside a handler (the catalog), without passing it down every call."""

    @functools.wraps(handler)
    async def run(ctx: Any, *args: Any) -> Any:
        token = _REQUESTER.set(identity_of_request(getattr(ctx, "request", None)))
        try:
            return await handler(ctx, *args)
        finally:
            _REQUESTER.reset(token)

    return run


def current_identity() -> Identity:
    """Inside a handler wrapped by `as_requested`, or anywhere under an MCP request the front door
    admitted (`serving`): its request's identity (else NOBODY's full view)."""
    return _REQUESTER.get()


def serving(identity: Identity) -> None:
    """The front door admitted an MCP request from `identity`: what runs for it from here on, and the
    tasks it starts (a 2025-era session's, which answers `initialize`), see it as current_identity()."""
    _REQUESTER.set(identity)


def requires_auth(policy: AccessPolicy, loopback: bool) -> bool:
    return policy.require_mcp_auth if policy.require_mcp_auth is not None else not loopback


def split_profile_path(path: str) -> tuple[str | None, str]:
    """`/mcp/p/<name>/all` -> (`name`, `/mcp/all`); any other path -> (None, path)."""
    if not path.startswith(PROFILE_PREFIX):
        return None, path
    name, _, rest = path[len(PROFILE_PREFIX) :].partition("/")
    return name, "/mcp" + (f"/{rest}" if rest else "")


def decide(
    policy: AccessPolicy,
    *,
    admin: bool,
    credential: str | None,
    path_profile: str | None,
    auth_required: bool,
    now: float | None = None,
) -> Identity:
    """The identity of an MCP request, or AccessRefusedError (401 for a credential, 403/404 for a profile)."""
    profiles = {p.name: p for p in policy.profiles}
    if path_profile is not None and path_profile not in profiles:
        raise AccessRefusedError(404, f"no profile named {path_profile!r}")
    wanted = profiles.get(path_profile) if path_profile is not None else None
    if admin:
        return Identity(admin=True, profile=wanted, management=True)
    if credential is not None:
        grant = find_grant(credential, policy.clients)
        if grant is None or expired(grant, time.time() if now is None else now):
            raise AccessRefusedError(
                401, "invalid, revoked or expired credential: ask the proxy's owner for a new one"
            )
        profile = profiles.get(grant.profile)
        if profile is None:
            raise AccessRefusedError(403, f"the profile of client {grant.name!r} is no longer configured")
        if wanted is not None and wanted.name != profile.name:
            raise AccessRefusedError(403, f"client {grant.name!r} may use only /mcp/p/{profile.name}")
        return Identity(client=grant.name, profile=profile, management=profile.management)
    if auth_required:
        raise AccessRefusedError(
            401, "this endpoint needs a credential: send Authorization: Bearer or X-API-Key"
        )
    if wanted is not None:
        return Identity(profile=wanted)
    anonymous = profiles.get(policy.anonymous_profile) if policy.anonymous_profile else None
    return Identity(profile=anonymous, management=anonymous is not None and anonymous.management)


class View:
    """One identity's view of the registry's tools, servers, prompts and resources."""

    def __init__(self, policy: AccessPolicy, identity: Identity) -> None:
        self.policy = policy
        self.profile = identity.profile

    def tier(self, server: str, tool: ToolInfo) -> TierInfo:
        return tier_of(server, tool.name, tool.annotations, self.policy.tool_tiers)

    def has_server(self, server: str) -> bool:
        return self.profile is None or profile_has_server(self.profile, server)

    def has_tool(self, server: str, tool: ToolInfo) -> bool:
        if self.profile is None:
            return True
        return profile_has_tool(self.profile, server, tool.name, self.tier(server, tool).tier)
