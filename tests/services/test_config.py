from __future__ import annotations

import json
import logging
import re
import stat
from pathlib import Path

import pytest

from bus.errors import ConfigError
from services.config import create_default, load_config, parse_config, parse_duration, parse_listen


def test_a_claude_style_server_map_is_read_as_a_list_named_by_its_keys() -> None:
    config = parse_config(json.dumps({"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"]}}}))
    assert [s.name for s in config.mcpServers] == ["fs"]
    assert config.mcpServers[0].transport == "stdio"


def test_defaults_follow_the_documented_values() -> None:
    config = parse_config('{"mcpServers": [{"name": "r", "url": "https://example.test/mcp"}]}')
    server = config.mcpServers[0]
    assert config.listen == "127.0.0.1:8080"
    assert server.enabled is True and server.quarantined is False
    assert server.transport == "streamable-http"
    assert server.init_timeout_s() == 30.0 and server.call_tool_timeout_s() == 120.0
    assert config.close_timeout_s() == 10.0 and config.kill_timeout_s() == 9.0


def test_unknown_keys_are_warned_about_not_rejected(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        parse_config('{"future_key": 1, "mcpServers": [{"name": "a", "command": "x", "shiny": true}]}')
    assert "unknown key 'future_key'" in caplog.text
    assert "mcpServers[0]: unknown key 'shiny'" in caplog.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"mcpServers": [{"name": "a", "command": "x", "env": "A=1"}]},
            "mcpServers[0].env: expected object, got string",
        ),
        ({"mcpServers": [{"name": "", "command": "x"}]}, "mcpServers[0].name: invalid server name ''"),
        ({"mcpServers": [{"name": "x" * 65, "command": "x"}]}, "invalid server name"),
        (
            {"mcpServers": [{"name": "a", "protocol": "stdio"}]},
            "mcpServers[0].command: a stdio server needs a command",
        ),
        ({"mcpServers": [{"name": "a"}]}, "mcpServers[0]: a server needs a command (stdio) or a url (HTTP)"),
        (
            {"mcpServers": [{"name": "a", "command": "x", "enabled": "yes"}]},
            "mcpServers[0].enabled: expected boolean, got string",
        ),
        (
            {"mcpServers": [{"name": "a", "command": "x", "init_timeout": "soon"}]},
            "mcpServers[0].init_timeout",
        ),
        ({"mcpServers": "none"}, "mcpServers: expected array, got string"),
        (
            {"mcpServers": [{"name": "a", "command": "x", "oauth": {}}]},
            "mcpServers[0].oauth: oauth applies to servers with a url, not stdio servers",
        ),
        (
            {"mcpServers": [{"name": "a", "url": "http://h/mcp", "oauth": {"scopes": "repo"}}]},
            "mcpServers[0].oauth.scopes: expected array, got string",
        ),
        (
            {"mcpServers": [{"name": "a", "url": "http://h/mcp", "oauth": {"redirect_port": 80}}]},
            "mcpServers[0].oauth.redirect_port: expected a port between 1024 and 65535",
        ),
        (
            {"mcpServers": [{"name": "a", "url": "http://h/mcp", "oauth": {"client_secret": "s"}}]},
            "mcpServers[0].oauth.client_secret: a client_secret needs a client_id",
        ),
        (
            {"mcpServers": [{"name": "a", "url": "http://h/mcp", "oauth": {"extra_params": {"state": "x"}}}]},
            "mcpServers[0].oauth.extra_params.state: 'state' is set by the sign-in flow",
        ),
        ([], "expected a JSON object at the top level"),
    ],
)
def test_invalid_files_are_rejected_with_the_path_and_the_problem(body: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps(body))
    assert str(caught.value).startswith("mcp_config.json: ")
    assert message in str(caught.value)


def test_durations_accept_seconds_and_go_style_strings() -> None:
    assert parse_duration(5) == 5.0
    assert parse_duration("2m") == 120.0
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ConfigError):
        parse_duration("forever")


@pytest.mark.parametrize("value", [0, -5, "0s", "-5s", 0.0, float("nan"), float("inf")])
def test_a_duration_must_be_a_positive_number_of_seconds(value: float | str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("init_timeout", -5),
        ("init_timeout", 0),
        ("call_tool_timeout", "0s"),
        ("health_check_interval", -1),
    ],
)
def test_a_server_timeout_of_zero_or_less_is_refused(field: str, value: float | str) -> None:
    body = {"mcpServers": [{"name": "a", "command": "x", field: value}]}
    with pytest.raises(ConfigError, match=rf"mcp_config.json: mcpServers\[0\]\.{field}: invalid duration"):
        parse_config(json.dumps(body))


@pytest.mark.parametrize(
    ("top", "where"),
    [
        ({"close_timeout": -1}, "close_timeout"),
        ({"kill_timeout": 0}, "kill_timeout"),
        ({"restart": {"initial_backoff": 0}}, "restart.initial_backoff"),
        ({"restart": {"max_backoff": -60}}, "restart.max_backoff"),
        ({"restart": {"failure_window": 0}}, "restart.failure_window"),
        ({"restart": {"stable_after": -1}}, "restart.stable_after"),
        ({"restart": {"max_failures": 0}}, "restart.max_failures"),
        ({"docker_isolation": {"timeout": -3}}, "docker_isolation.timeout"),
    ],
)
def test_proxy_wide_timeouts_and_restart_settings_of_zero_or_less_are_refused(
    top: dict[str, object], where: str
) -> None:
    with pytest.raises(ConfigError, match=rf"mcp_config.json: {re.escape(where)}: "):
        parse_config(json.dumps({"mcpServers": [], **top}))


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:65535", ("::", 65535)),
        ("localhost:8080", ("localhost", 8080)),
        ("proxy.example.test:443", ("proxy.example.test", 443)),
        (":8080", ("127.0.0.1", 8080)),
    ],
)
def test_listen_is_host_colon_port_with_ipv6_in_brackets(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected
    assert parse_config(json.dumps({"listen": listen})).listen == listen


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("not-a-listen", "expected HOST:PORT"),
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:", "the port must be a number from 0 to 65535"),
        ("127.0.0.1:99999", "the port must be a number from 0 to 65535"),
        ("127.0.0.1:-1", "the port must be a number from 0 to 65535"),
        ("[::1]:80x", "the port must be a number from 0 to 65535"),
        ("::1:8080", "an IPv6 address goes in brackets"),
        ("[not-v6]:8080", "is not an IPv6 address"),
        ("300.1.2.3:8080", "is not an IPv4 address"),
        ("bad host:8080", "is not an IP address or a host name"),
    ],
)
def test_a_listen_that_cannot_be_bound_is_refused_with_the_reason(listen: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps({"listen": listen}))
    assert str(caught.value).startswith(f"mcp_config.json: listen: {listen!r}: ")
    assert problem in str(caught.value)


def test_first_run_writes_a_private_file_with_a_random_key(tmp_path: Path) -> None:
    path = tmp_path / "new" / "mcp_config.json"
    config = load_config(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(config.api_key) >= 32
    assert load_config(path).api_key == config.api_key


def test_a_second_creator_keeps_the_first_key(tmp_path: Path) -> None:
    path = tmp_path / "mcp_config.json"
    create_default(path)
    first = json.loads(path.read_text())["api_key"]
    create_default(path)
    assert json.loads(path.read_text())["api_key"] == first


def test_the_environment_overrides_the_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mcp_config.json"
    path.write_text('{"api_key": "from-file"}')
    monkeypatch.setenv("MCPPROXY_API_KEY", "from-env")
    assert load_config(path).api_key == "from-env"


def test_the_seeds_oauth_example_loads() -> None:
    server = {
        "name": "github-server",
        "url": "https://api.github.com/mcp",
        "protocol": "http",
        "oauth": {"client_id": "your-client-id", "scopes": ["repo", "user"]},
        "enabled": True,
    }
    oauth = parse_config(json.dumps({"mcpServers": [server]})).mcpServers[0].oauth
    assert oauth is not None
    assert (oauth.client_id, oauth.scopes, oauth.redirect_port) == ("your-client-id", ["repo", "user"], None)


def test_the_context_modes_default_to_compact_search_and_full_listings_and_refuse_others() -> None:
    config = parse_config("{}")
    assert (config.tool_response_mode, config.direct_mode) == ("compact", "full")
    config = parse_config(json.dumps({"tool_response_mode": "full", "direct_mode": "deferred"}))
    assert (config.tool_response_mode, config.direct_mode) == ("full", "deferred")
    with pytest.raises(ConfigError, match="direct_mode: unknown mode 'lazy': use full or deferred"):
        parse_config(json.dumps({"direct_mode": "lazy"}))
    with pytest.raises(ConfigError, match="tool_response_mode: unknown mode 'tiny'"):
        parse_config(json.dumps({"tool_response_mode": "tiny"}))
