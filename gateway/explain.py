"""`GET /api/v1/access/explain?tool=server:tool&client=NAME`: the checks a call would meet (issue 21).

In the order a real call meets them — credential, profile, server, quarantine, server state,
approval, the profile's tool rules, tier — each with whether it passes; the first that fails says
how to fix it, and the checks after it are not reached. Decided from the same policy and registry
the call path uses (gateway/access.py, gateway/calling.py), so what it says is what a call does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.access import Profile
from gateway.access import requires_auth
from gateway.guard import approve_hint, approve_tool_hint
from gateway.registry import Registry
from gateway.rest import fail, ok
from gateway.tool_names import split_qualified
from services.access import CALL_VARIANT, RANK, expired, matches_any, profile_has_server


@dataclass
class Explanation:
    checks: list[dict[str, Any]] = field(default_factory=list)
    failed: str | None = None

    def passed(self, check: str, detail: str) -> None:
        self.checks.append({"check": check, "ok": True, "detail": detail})

    def refused(self, check: str, detail: str, fix: str) -> Explanation:
        self.checks.append({"check": check, "ok": False, "detail": detail, "fix": fix})
        self.failed = check
        return self


def explain(
    registry: Registry, server: str, tool: str, client: str | None, loopback: bool, now: float
) -> Explanation:
    """The checks a call of `server:tool` by `client` (None: no credential, on /mcp) meets."""
    policy = registry.access
    profiles = {p.name: p for p in policy.profiles}
    out = Explanation()
    profile: Profile | None
    if client is not None:
        grant = next((g for g in policy.clients if g.name == client), None)
        if grant is None:
            return out.refused(
                "credential", f"no client named {client!r}", "mcpproxy clients add NAME --profile P"
            )
        if expired(grant, now):
            return out.refused(
                "credential",
                f"client {client!r} has expired",
                f"mcpproxy clients rotate {client} --expires 30d",
            )
        out.passed("credential", f"client {client!r}")
        profile = profiles.get(grant.profile)
        if profile is None:
            return out.refused(
                "profile",
                f"client {client!r} is bound to {grant.profile!r}, which the config no longer has",
                f"add profile {grant.profile!r} back under `profiles`, or revoke the client",
            )
    else:
        if requires_auth(policy, loopback):
            return out.refused(
                "credential",
                "a caller without a credential is refused (require_mcp_auth)",
                "give the caller a credential: mcpproxy clients add NAME --profile P",
            )
        out.passed("credential", "no credential (allowed: loopback, require_mcp_auth off)")
        profile = profiles.get(policy.anonymous_profile) if policy.anonymous_profile else None
    out.passed("profile", f"profile {profile.name!r}" if profile else "no profile: every server and tool")
    status = registry.servers.get(server)
    if status is None:
        return out.refused("server", f"no server named {server!r}", "mcpproxy upstream add")
    if profile is not None and not profile_has_server(profile, server):
        return out.refused(
            "server",
            f"{server!r} is not among profile {profile.name!r}'s servers",
            "add it to its `servers`",
        )
    out.passed("server", f"server {server!r}")
    if status.quarantined:
        return out.refused("quarantine", f"server {server!r} is quarantined", approve_hint(server))
    out.passed("quarantine", "not quarantined")
    if status.state != "running" or not status.enabled:
        why = (
            "disabled"
            if not status.enabled
            else f"{status.state}" + (f": {status.last_error}" if status.last_error else "")
        )
        fix = (
            f"mcpproxy upstream enable {server}"
            if not status.enabled
            else f"mcpproxy upstream restart {server}"
        )
        return out.refused("server state", f"server {server!r} is {why}", fix)
    out.passed("server state", "running")
    held = registry.held_tool(server, tool)
    if held is not None:
        why = "is new" if held.approval == "pending" else "changed since it was approved"
        return out.refused("approval", f"tool {tool!r} {why}", approve_tool_hint(server, tool))
    found = registry.find_tool(server, tool)
    if found is None:
        return out.refused(
            "approval", f"server {server!r} has no tool {tool!r}", f"mcpproxy tools list {server}"
        )
    out.passed("approval", "approved")
    name = f"{server}:{tool}"
    if profile is not None:
        if profile.tools.allow and not matches_any(name, profile.tools.allow):
            return out.refused(
                "tools", f"{name} matches none of tools.allow", "add a glob for it to tools.allow"
            )
        if matches_any(name, profile.tools.deny):
            return out.refused("tools", f"{name} matches tools.deny", "remove its glob from tools.deny")
        out.passed("tools", "allowed by the profile's tool rules")
    tier = registry.tier(server, found)
    detail = f"{tier.tier} ({tier.source}): call it with {CALL_VARIANT[tier.tier]}"
    if profile is not None and RANK[tier.tier] > RANK[profile.max_tier]:
        return out.refused(
            "tier",
            f"{detail}, above profile {profile.name!r}'s max_tier {profile.max_tier}",
            f"raise max_tier, or if the tool is milder than that, say so: tool_tiers {{{name!r}: ...}}",
        )
    out.passed("tier", detail)
    return out


class ExplainApi:
    def __init__(self, registry: Registry, loopback: bool) -> None:
        self.registry = registry
        self.loopback = loopback

    def routes(self) -> list[Route]:
        return [Route("/api/v1/access/explain", self.explain, methods=["GET"])]

    async def explain(self, request: Request) -> Response:
        qualified = request.query_params.get("tool", "")
        parsed = split_qualified(qualified)
        if parsed is None:
            return fail(request, 400, "tool: expected `server:tool`, like ?tool=github:create_issue")
        client = request.query_params.get("client") or None
        result = explain(self.registry, *parsed, client, self.loopback, time.time())
        return ok(
            {
                "tool": qualified,
                "client": client,
                "allowed": result.failed is None,
                "failed": result.failed,
                "checks": result.checks,
            }
        )
