"""Docker isolation in the config (`docker_isolation`, `mcpServers[i].isolation`): the schema and
its validation; services/isolation.py turns it into a container's settings."""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec

from bus.errors import ConfigError
from services.config_values import config_error, parse_duration
from services.isolation import (
    IsolationValueError,
    check_image,
    check_network_mode,
    parse_cpus,
    parse_extra_args,
    parse_memory,
)

logger = logging.getLogger(__name__)

DOCKER_TIMEOUT_S: Final = 30.0


class IsolationConfig(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """`mcpServers[i].isolation`: this stdio server in a container; each value set here wins over
    `docker_isolation`. `enabled` unset follows `docker_isolation.enabled`."""

    enabled: bool | None = None
    image: str | None = None
    network_mode: str | None = None
    memory_limit: str | int | None = None
    cpu_limit: float | str | None = None
    extra_args: list[str] = msgspec.field(default_factory=list)


class DockerIsolationConfig(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """`docker_isolation`: the defaults of every isolated stdio server (see services/isolation.py)."""

    enabled: bool = False
    memory_limit: str | int = "512m"
    cpu_limit: float | str = 1.0
    network_mode: str = "bridge"
    default_images: dict[str, str] = msgspec.field(default_factory=dict)
    """Merged over the built-in map (npx/node/npm -> a Node image, uvx/python/pip -> a Python image)."""
    timeout: float | str = DOCKER_TIMEOUT_S
    """Bounds starting the container: engine checks, pulling a missing image, create, start."""
    extra_args: list[str] = msgspec.field(default_factory=list)

    def timeout_s(self) -> float:
        return parse_duration(self.timeout)


def _isolation_value(file: str, path: str, check: Any, value: Any) -> None:
    try:
        check(value)
    except IsolationValueError as exc:
        raise config_error(file, path, str(exc)) from None


def _check_extra_args(file: str, path: str, args: list[str]) -> None:
    try:
        parse_extra_args(args)
    except IsolationValueError as exc:
        where = f"{path}[{exc.index}]" if exc.index is not None else path
        raise config_error(file, where, str(exc)) from None


def validate_isolation(isolation: IsolationConfig, transport: str, file: str, path: str) -> None:
    """`mcpServers[i].isolation`: every value that is set must be usable by Docker."""
    if transport != "stdio":
        logger.warning("%s: %s applies only to stdio servers; ignored", file, path)
    if isolation.image is not None:
        _isolation_value(file, f"{path}.image", check_image, isolation.image)
    if isolation.network_mode is not None:
        _isolation_value(file, f"{path}.network_mode", check_network_mode, isolation.network_mode)
    if isolation.memory_limit is not None:
        _isolation_value(file, f"{path}.memory_limit", parse_memory, isolation.memory_limit)
    if isolation.cpu_limit is not None:
        _isolation_value(file, f"{path}.cpu_limit", parse_cpus, isolation.cpu_limit)
    _check_extra_args(file, f"{path}.extra_args", isolation.extra_args)


def validate_docker_isolation(docker: DockerIsolationConfig, file: str) -> None:
    """`docker_isolation`: the global defaults."""
    path = "docker_isolation"
    _isolation_value(file, f"{path}.memory_limit", parse_memory, docker.memory_limit)
    _isolation_value(file, f"{path}.cpu_limit", parse_cpus, docker.cpu_limit)
    _isolation_value(file, f"{path}.network_mode", check_network_mode, docker.network_mode)
    for key, image in docker.default_images.items():
        _isolation_value(file, f"{path}.default_images.{key}", check_image, image)
    _check_extra_args(file, f"{path}.extra_args", docker.extra_args)
    try:
        if docker.timeout_s() <= 0:
            raise ConfigError(f"invalid duration {docker.timeout!r}: it must be greater than 0")
    except ConfigError as exc:
        raise config_error(file, f"{path}.timeout", str(exc)) from None
