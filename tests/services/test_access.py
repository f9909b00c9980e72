"""Tiers, profiles and credentials as pure decisions (services/access.py, services/access_config.py)."""

from __future__ import annotations

import pytest

from bus.access import ClientGrant, Profile, ProfileTools
from bus.errors import ConfigError
from services.access import (
    annotated_tier,
    credential_hash,
    expired,
    find_grant,
    parse_expiry,
    profile_has_tool,
    tier_of,
)
from services.config import parse_config


@pytest.mark.parametrize(
    ("annotations", "tier", "source"),
    [
        (None, "destructive", "mcp_default"),
        ({}, "destructive", "mcp_default"),
        ({"title": "x"}, "destructive", "mcp_default"),
        ({"readOnlyHint": True}, "read", "annotations"),
        ({"readOnlyHint": True, "destructiveHint": True}, "read", "annotations"),
        ({"readOnlyHint": False}, "destructive", "mcp_default"),
        ({"readOnlyHint": False, "destructiveHint": False}, "write", "annotations"),
        ({"destructiveHint": False}, "write", "annotations"),
        ({"readOnlyHint": False, "destructiveHint": True}, "destructive", "annotations"),
    ],
)
def test_a_tools_tier_follows_the_mcp_defaults_for_its_annotations(
    annotations: dict[str, bool] | None, tier: str, source: str
) -> None:
    info = annotated_tier(annotations)
    assert (info.tier, info.source) == (tier, source)


def test_tool_tiers_override_annotations_and_the_exact_name_wins_over_a_glob() -> None:
    overrides = {"memory:*": "write", "memory:read_graph": "read"}
    assert tier_of("memory", "read_graph", None, overrides).shown() == {
        "tier": "read",
        "tier_source": "config",
        "call_with": "call_tool_read",
    }
    assert tier_of("memory", "delete_entities", None, overrides).tier == "write"
    assert tier_of("git", "git_reset", None, overrides).source == "mcp_default"


def test_a_profile_holds_its_servers_allowed_tools_up_to_its_max_tier_less_its_denied_ones() -> None:
    profile = Profile(
        name="coding",
        servers=["git", "memory"],
        max_tier="write",
        tools=ProfileTools(allow=["git:*", "memory:read_*"], deny=["git:git_reset"]),
    )
    assert profile_has_tool(profile, "git", "git_status", "read")
    assert profile_has_tool(profile, "git", "git_commit", "write")
    assert not profile_has_tool(profile, "git", "git_push", "destructive")
    assert not profile_has_tool(profile, "git", "git_reset", "read")
    assert profile_has_tool(profile, "memory", "read_graph", "read")
    assert not profile_has_tool(profile, "memory", "create_entities", "write")
    assert not profile_has_tool(profile, "github", "get_issue", "read")
    assert profile_has_tool(Profile(name="all"), "anything", "at_all", "destructive")


def test_a_credential_is_found_by_its_hash_and_an_expired_grant_is_known_as_expired() -> None:
    grant = ClientGrant(
        name="job", profile="p", token_sha256=credential_hash("mcpp_x"), created_at=0.0, expires_at=100.0
    )
    assert find_grant("mcpp_x", [grant]) is grant
    assert find_grant("mcpp_y", [grant]) is None
    assert not expired(grant, 99.0) and expired(grant, 100.0)


def test_expiry_durations_are_minutes_hours_days_or_weeks() -> None:
    assert parse_expiry("30d") == 30 * 86400
    assert parse_expiry("90m") == 5400
    for bad in ("30", "0d", "1y", "-1d", "d"):
        with pytest.raises(ValueError, match="like 30d"):
            parse_expiry(bad)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ('{"tool_tiers": {"read_graph": "read"}}', "tool_tiers.read_graph: keys are `server:tool`"),
        ('{"tool_tiers": {"a:b": "readonly"}}', "invalid enum value 'readonly'"),
        ('{"profiles": [{"name": "Coding"}]}', "profiles[0].name: 'Coding'"),
        ('{"profiles": [{"name": "a"}, {"name": "a"}]}', "profiles[1].name: duplicate profile name 'a'"),
        ('{"profiles": [{"name": "a", "max_tier": "all"}]}', "profiles[0].max_tier: invalid enum value"),
        ('{"profiles": [{"name": "a", "tools": {"deny": ["git"]}}]}', "profiles[0].tools.deny[0]"),
        ('{"profiles": [{"name": "a", "sever": []}]}', "unknown field `sever`"),
        ('{"anonymous_profile": "chat"}', "anonymous_profile: no profile named 'chat'"),
    ],
)
def test_access_settings_are_validated_with_the_path_and_the_problem(config: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(config)
    assert problem in str(raised.value)


def test_no_access_settings_is_todays_config() -> None:
    config = parse_config("{}")
    assert (config.profiles, config.tool_tiers, config.require_mcp_auth, config.anonymous_profile) == (
        [],
        {},
        None,
        None,
    )
