"""What the supervisor tells the gateway of the config beside the servers: access (profiles, tiers,
MCP auth, client grants) and how long a tool result may be. Sent after Snapshot and whenever the
config or the clients change (supervisor/control.py)."""

from __future__ import annotations

from collections.abc import Iterable

from bus.access import ClientGrant
from bus.messages import AccessPolicy, ResultLimits
from services.config import ProxyConfig


def result_limits(config: ProxyConfig) -> ResultLimits:
    return ResultLimits(
        tool_response_limit=config.tool_response_limit,
        server_limits={
            s.name: s.tool_response_limit for s in config.mcpServers if s.tool_response_limit is not None
        },
        max_result_size_chars=config.max_result_size_chars,
    )


def access_policy(config: ProxyConfig, grants: Iterable[ClientGrant]) -> AccessPolicy:
    return AccessPolicy(
        tool_tiers=config.tool_tiers,
        profiles=config.profiles,
        require_mcp_auth=config.require_mcp_auth,
        anonymous_profile=config.anonymous_profile,
        clients=list(grants),
    )
