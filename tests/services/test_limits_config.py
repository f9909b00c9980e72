"""`limits` and the global `env` in the config: parsing, validation, and what a worker is given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bus.errors import ConfigError
from services.config import parse_config
from services.limits_config import (
    LimitsConfig,
    effective_limits,
    parse_memory,
    resource_limits,
    stdio_defaults_changed,
    stdio_fields,
)
from services.worker.stdio import upstream_environment

DATA_DIR = Path("/srv/mcpproxy")


def config(**top: Any) -> Any:
    servers = top.pop("servers", [{"name": "s", "command": "run-it"}])
    return parse_config(json.dumps({"mcpServers": servers, **top}))


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 << 20), ("1g", 1 << 30), ("256MiB", 256 << 20), ("64M", 64 << 20), (8 << 20, 8 << 20)],
)
def test_memory_sizes_are_powers_of_1024_as_docker_reads_them(text: str | int, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("limits", "field", "problem"),
    [
        ({"memory": "lots"}, "memory", "invalid memory size"),
        ({"memory": "1m"}, "memory", "below the minimum of 4m"),
        ({"cpu": 0}, "cpu", "0.01 or more"),
        ({"pids": 0}, "pids", "1 or more"),
        ({"open_files": -1}, "open_files", "1 or more"),
    ],
)
def test_a_bad_limit_names_the_file_the_field_and_the_problem(
    limits: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=rf"mcpServers\[0\]\.limits\.{field}: .*{problem}"):
        config(servers=[{"name": "s", "command": "c", "limits": limits}])
    with pytest.raises(ConfigError, match=rf"limits\.{field}: .*{problem}"):
        config(limits=limits)


def test_an_unknown_limit_is_refused_rather_than_silently_ignored() -> None:
    with pytest.raises(ConfigError, match="limits"):
        config(limits={"memroy": "512m"})


def test_each_limit_a_server_sets_wins_over_the_global_one_field_by_field() -> None:
    merged = effective_limits(LimitsConfig(memory="1g", pids=100), LimitsConfig(memory="256m", cpu=0.5))
    assert merged == LimitsConfig(memory="256m", cpu=0.5, pids=100)


def test_a_stdio_server_gets_its_cgroup_name_and_resolved_limits() -> None:
    parsed = config(
        limits={"memory": "512m", "open_files": 1024},
        servers=[{"name": "db.main", "command": "c", "limits": {"pids": 64}}],
    )
    limits = resource_limits(parsed, parsed.mcpServers[0], DATA_DIR, 3)
    assert limits is not None
    assert limits.cgroup.startswith("mcpproxy-") and limits.cgroup.endswith("/db.main@3")
    assert (limits.memory, limits.memory_bytes, limits.pids, limits.open_files) == (
        "512m",
        512 << 20,
        64,
        1024,
    )
    assert limits.cpu is None


def test_remote_docker_isolated_and_unlimited_servers_get_no_limits() -> None:
    parsed = config(
        limits={"memory": "512m"},
        servers=[
            {"name": "remote", "url": "https://example.com/mcp"},
            {"name": "boxed", "command": "npx", "isolation": {"enabled": True}},
        ],
    )
    assert [resource_limits(parsed, s, DATA_DIR, 1) for s in parsed.mcpServers] == [None, None]
    assert resource_limits(config(), config().mcpServers[0], DATA_DIR, 1) is None


def test_the_global_env_reaches_stdio_servers_under_their_own_and_not_remote_ones() -> None:
    parsed = config(
        env={"HTTPS_PROXY": "http://proxy:3128", "TOKEN": "${keyring:corp}"},
        servers=[
            {"name": "s", "command": "c", "env": {"TOKEN": "own"}},
            {"name": "r", "url": "https://example.com/mcp"},
        ],
    )
    local, remote = (stdio_fields(parsed, s, DATA_DIR, 1)["env"] for s in parsed.mcpServers)
    assert local == {"HTTPS_PROXY": "http://proxy:3128", "TOKEN": "own"}
    assert remote == {}


def test_a_new_global_env_or_limits_restarts_only_unchanged_stdio_servers() -> None:
    servers = [{"name": "s", "command": "c"}, {"name": "r", "url": "https://example.com/mcp"}]
    before = config(servers=servers)
    assert stdio_defaults_changed(before, config(servers=servers)) == []
    assert stdio_defaults_changed(before, config(servers=servers, env={"A": "1"})) == ["s"]
    assert stdio_defaults_changed(before, config(servers=servers, limits={"pids": 9})) == ["s"]


def test_the_allow_list_passes_the_ca_and_proxy_variables_in_both_cases() -> None:
    parent = {
        "PATH": "/bin",
        "SSL_CERT_FILE": "/ca.pem",
        "SSL_CERT_DIR": "/certs",
        "REQUESTS_CA_BUNDLE": "/ca.pem",
        "NODE_EXTRA_CA_CERTS": "/extra.pem",
        "HTTP_PROXY": "http://p:1",
        "https_proxy": "http://p:2",
        "NO_PROXY": "localhost",
        "no_proxy": "localhost",
        "AWS_SECRET_ACCESS_KEY": "not for upstreams",
    }
    env = upstream_environment({"OWN": "1"}, parent)
    assert env == {**{k: v for k, v in parent.items() if k != "AWS_SECRET_ACCESS_KEY"}, "OWN": "1"}
