"""Docker isolation, the pure part: config schema and messages, sizes, extra_args, images, precedence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bus.errors import ConfigError
from services.config import DockerIsolationConfig, parse_config
from services.isolation import (
    DEFAULT_IMAGES,
    LABEL_GENERATION,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_SERVER,
    NODE_IMAGE,
    PYTHON_IMAGE,
    IsolationValueError,
    container_spec,
    image_for,
    instance_id,
    parse_cpus,
    parse_extra_args,
    parse_memory,
)
from supervisor.containers import ContainerJanitor

MIB = 1024 * 1024


def config(servers: list[dict[str, Any]], **top: Any) -> Any:
    return parse_config(json.dumps({"mcpServers": servers, **top}))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512m", 512 * MIB),
        ("1g", 1024 * MIB),
        ("256MiB", 256 * MIB),
        ("64MB", 64 * MIB),
        (10 * MIB, 10 * MIB),
    ],
)
def test_memory_sizes_read_like_docker(value: str | int, expected: int) -> None:
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", ["lots", "512x", "-1m", ""])
def test_a_memory_size_that_is_not_one_is_refused(value: str) -> None:
    with pytest.raises(IsolationValueError, match="invalid memory size"):
        parse_memory(value)


def test_a_memory_size_under_dockers_minimum_is_refused() -> None:
    with pytest.raises(IsolationValueError, match="below Docker's minimum of 6m"):
        parse_memory("4m")


@pytest.mark.parametrize(("value", "nano"), [(1.0, 1_000_000_000), ("0.5", 500_000_000), (2, 2_000_000_000)])
def test_cpu_counts_become_nano_cpus(value: float | str, nano: int) -> None:
    assert parse_cpus(value) == nano


@pytest.mark.parametrize("value", [0, -1, "x", "inf", 0.001])
def test_a_cpu_count_that_docker_cannot_use_is_refused(value: float | str) -> None:
    with pytest.raises(IsolationValueError):
        parse_cpus(value)


def test_extra_args_take_the_docker_run_options_a_server_needs() -> None:
    options = parse_extra_args(
        [
            "-v",
            "/srv/data:/data:ro",
            "--volume=cache:/cache",
            "-e",
            "MODE=strict",
            "-w",
            "/data",
            "--read-only",
            "--tmpfs",
            "/tmp:size=64m",
            "--cap-drop",
            "ALL",
            "--pids-limit=64",
            "--init=false",
        ]
    )
    assert options.binds == ["/srv/data:/data:ro", "cache:/cache"]
    assert options.env == {"MODE": "strict"}
    assert options.working_dir == "/data"
    assert options.read_only is True
    assert options.tmpfs == {"/tmp": "size=64m"}
    assert options.cap_drop == ["ALL"]
    assert options.pids_limit == 64
    assert options.init is False


@pytest.mark.parametrize(
    ("args", "index", "message"),
    [
        (["--read-only", "--privileged"], 1, "would undo the isolation"),
        (["--rm"], 0, "removes its containers itself"),
        (["--memory", "1g"], 0, "use `memory_limit`"),
        (["--network=host"], 0, "use `network_mode`"),
        (["--frobnicate"], 0, "unsupported docker run option"),
        (["-v"], 0, "needs a value"),
        (["-v", "./relative:/x"], 0, "absolute host path or a volume name"),
        (["-e", "NO_EQUALS"], 0, "KEY=VALUE"),
        (["-e", "TOKEN=${keyring:token}"], 1, "pass secrets through the server's `env`"),
    ],
)
def test_extra_args_that_would_break_or_undo_isolation_are_refused_with_their_index(
    args: list[str], index: int, message: str
) -> None:
    with pytest.raises(IsolationValueError, match=message.replace("(", r"\(")) as caught:
        parse_extra_args(args)
    assert caught.value.index == index


def test_the_image_follows_the_command_name_with_default_images_merged_over_the_built_in_map() -> None:
    images = {**DEFAULT_IMAGES, "python": "corp/python:3.12"}
    assert image_for("npx", images) == NODE_IMAGE
    assert image_for("/usr/local/bin/node", images) == NODE_IMAGE
    assert image_for("uvx", images) == PYTHON_IMAGE
    assert image_for("/usr/bin/python3.12", images) == "corp/python:3.12"  # version suffix stripped
    assert image_for("my-server", images) == DEFAULT_IMAGES["binary"]


def test_config_errors_name_the_file_the_path_and_the_problem() -> None:
    cases = [
        (
            {"isolation": {"memory_limit": "lots"}},
            "mcpServers[0].isolation.memory_limit: invalid memory size",
        ),
        ({"isolation": {"cpu_limit": -1}}, "mcpServers[0].isolation.cpu_limit: invalid CPU count"),
        (
            {"isolation": {"network_mode": "two words"}},
            "mcpServers[0].isolation.network_mode: invalid network",
        ),
        (
            {"isolation": {"enabled": "yes"}},
            "mcpServers[0].isolation.enabled: expected boolean or null, got str",
        ),
        (
            {"isolation": {"extra_args": ["-v", "/a:/b", "--pid=host"]}},
            "mcpServers[0].isolation.extra_args[2]: --pid is not",
        ),
    ]
    for isolation, message in cases:
        with pytest.raises(ConfigError, match=r"^mcp_config\.json: " + message.replace("[", r"\[")):
            config([{"name": "s", "command": "npx", **isolation}])
    with pytest.raises(ConfigError, match=r"^mcp_config\.json: docker_isolation\.memory_limit: .*minimum"):
        config([], docker_isolation={"memory_limit": "1m"})
    with pytest.raises(ConfigError, match=r"docker_isolation\.default_images\.npx: invalid image"):
        config([], docker_isolation={"default_images": {"npx": "not an image"}})
    with pytest.raises(ConfigError, match=r"docker_isolation\.timeout: invalid duration"):
        config([], docker_isolation={"timeout": "soon"})


def test_unknown_isolation_keys_are_warned_about_and_kept(caplog: pytest.LogCaptureFixture) -> None:
    config([{"name": "s", "command": "npx", "isolation": {"shiny": True}}], docker_isolation={"new": 1})
    assert "mcpServers[0].isolation: unknown key 'shiny'" in caplog.text
    assert "docker_isolation: unknown key 'new'" in caplog.text


def spec_of(server: dict[str, Any], docker: dict[str, Any] | None = None, generation: int = 1) -> Any:
    parsed = config([{"name": "s", **server}], docker_isolation=docker or {})
    return container_spec(parsed.mcpServers[0], parsed.docker_isolation, "inst", "run0", generation)


def test_a_per_server_value_wins_over_the_global_one() -> None:
    docker = {
        "enabled": True,
        "memory_limit": "512m",
        "cpu_limit": 1.0,
        "network_mode": "bridge",
        "extra_args": ["-v", "/opt:/opt:ro"],
        "timeout": "45s",
    }
    plain = spec_of({"command": "npx"}, docker)
    assert (plain.image, plain.memory_bytes, plain.nano_cpus, plain.network_mode) == (
        NODE_IMAGE,
        512 * MIB,
        1_000_000_000,
        "bridge",
    )
    assert plain.start_timeout_s == 45.0
    tuned = spec_of(
        {
            "command": "npx",
            "isolation": {
                "image": "mine:1",
                "memory_limit": "128m",
                "cpu_limit": "0.25",
                "network_mode": "none",
                "extra_args": ["--read-only"],
            },
        },
        docker,
    )
    assert (tuned.image, tuned.memory_bytes, tuned.nano_cpus, tuned.network_mode) == (
        "mine:1",
        128 * MIB,
        250_000_000,
        "none",
    )
    assert tuned.extra_args == ["-v", "/opt:/opt:ro", "--read-only"]


def test_isolation_follows_the_server_then_the_global_switch_and_never_wraps_docker_itself() -> None:
    assert spec_of({"command": "npx"}) is None  # off by default
    assert spec_of({"command": "npx", "isolation": {"enabled": True}}) is not None
    assert spec_of({"command": "npx", "isolation": {"enabled": False}}, {"enabled": True}) is None
    assert spec_of({"command": "npx", "isolation": {"image": "x:1"}}, {"enabled": True}) is not None
    assert spec_of({"command": "docker", "args": ["run", "-i", "x"]}, {"enabled": True}) is None
    assert spec_of({"url": "https://example.test/mcp"}, {"enabled": True}) is None


def test_every_container_is_labelled_with_the_server_instance_and_generation() -> None:
    spec = spec_of({"command": "npx"}, {"enabled": True}, generation=3)
    assert spec.labels[LABEL_MANAGED] == "true"
    assert spec.labels[LABEL_SERVER] == "s"
    assert spec.labels[LABEL_INSTANCE] == "inst"
    assert spec.labels[LABEL_GENERATION] == "3"
    assert spec.name == "mcpproxy-s-run0-3"


def test_the_instance_id_is_stable_for_a_data_dir_and_differs_between_data_dirs(tmp_path: Path) -> None:
    assert instance_id(tmp_path / "a") == instance_id(tmp_path / "a" / ".." / "a")
    assert instance_id(tmp_path / "a") != instance_id(tmp_path / "b")


def test_a_changed_docker_isolation_restarts_only_the_servers_whose_container_it_changes(
    tmp_path: Path,
) -> None:
    before = config(
        [
            {"name": "boxed", "command": "npx"},
            {"name": "tuned", "command": "npx", "isolation": {"memory_limit": "128m"}},
            {"name": "local", "command": "npx", "isolation": {"enabled": False}},
        ],
        docker_isolation={"enabled": True},
    )
    janitor = ContainerJanitor(tmp_path, before.docker_isolation)
    after = DockerIsolationConfig(enabled=True, memory_limit="1g")
    assert janitor.adopt(after, before.mcpServers, before.mcpServers) == ["boxed"]
    assert janitor.adopt(after, before.mcpServers, before.mcpServers) == []  # nothing changed again


def test_the_first_container_of_a_run_leaves_a_marker_for_the_next_start_sweep(tmp_path: Path) -> None:
    parsed = config([{"name": "boxed", "command": "npx"}], docker_isolation={"enabled": True})
    janitor = ContainerJanitor(tmp_path, parsed.docker_isolation)
    assert not janitor.marker.exists()
    assert janitor.spec_for(parsed.mcpServers[0], 1) is not None
    assert janitor.marker.read_text().strip() == janitor.instance
