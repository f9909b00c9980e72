"""Resource caps in the config (`limits`, per server and global): the schema, its validation, and the
per-server resolution into the `ResourceLimits` a worker enforces (services/limits.py).

`limits: {memory: "512m", cpu: 0.5, pids: 256, open_files: 1024}`; each field set on a server wins
over the global one. They apply to local stdio upstreams; a Docker-isolated server keeps its
container's limits (`isolation.memory_limit`, `cpu_limit`) and a remote one has no process of ours.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypedDict

import msgspec

from bus.values import ResourceLimits
from services.config_values import config_error

if TYPE_CHECKING:
    from services.config import ProxyConfig, ServerConfig

MIN_MEMORY_BYTES: Final = 4 * 1024 * 1024
"""Below this no interpreter starts: a smaller cap is a typo, not a limit."""
MIN_CPU: Final = 0.01
"""One hundredth of a core: the CFS quota's floor (1 ms per 100 ms period)."""
CGROUP_PREFIX: Final = "mcpproxy-"
GENERATION_MARK: Final = "@"
"""Between a server's name and its generation in a cgroup's name: never part of a server name."""
_MEMORY_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNIT_BYTES: Final = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class LimitsConfig(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """`limits` (global) and `mcpServers[i].limits`: caps on one upstream's process tree."""

    memory: str | int | None = None
    """Bytes, or a size like "512m" or "1g" (powers of 1024)."""
    cpu: float | None = None
    """CPUs' worth of time: 0.5 is half of one core."""
    pids: int | None = None
    """Processes and threads of the upstream's whole tree."""
    open_files: int | None = None
    """Open file descriptors of each of its processes."""


def parse_memory(value: str | int) -> int:
    """Bytes from a number of bytes or a size like "512m", "1g", "256MiB"; ValueError saying why not."""
    if isinstance(value, bool):
        raise ValueError(f"invalid memory size {value!r}: use a string like '512m' or '1g'")
    if isinstance(value, int):
        size = value
    else:
        match = _MEMORY_RE.match(value)
        if not match:
            raise ValueError(f"invalid memory size {value!r}: use a number of bytes or a size like '512m'")
        size = int(float(match.group(1)) * _UNIT_BYTES[match.group(2).lower()])
    if size < MIN_MEMORY_BYTES:
        raise ValueError(f"memory size {value!r} is below the minimum of 4m")
    return size


def memory_text(value: str | int) -> str:
    """How a configured size is named in errors: as written ("512m"), bytes as a number."""
    return value.strip() if isinstance(value, str) else str(value)


def validate_limits(limits: LimitsConfig, file: str, path: str) -> None:
    """Each field in range; ConfigError naming the file and the field otherwise."""
    if limits.memory is not None:
        try:
            parse_memory(limits.memory)
        except ValueError as exc:
            raise config_error(file, f"{path}.memory", str(exc)) from None
    if limits.cpu is not None and not (math.isfinite(limits.cpu) and limits.cpu >= MIN_CPU):
        raise config_error(
            file, f"{path}.cpu", f"{limits.cpu!r}: expected CPUs, {MIN_CPU} or more (0.5: half a core)"
        )
    for field in ("pids", "open_files"):
        value = getattr(limits, field)
        if value is not None and value < 1:
            raise config_error(file, f"{path}.{field}", f"{value!r}: expected 1 or more")


def effective_limits(global_limits: LimitsConfig, own: LimitsConfig | None) -> LimitsConfig:
    """Field by field: the server's value where it sets one, else the global one."""
    if own is None:
        return global_limits
    return LimitsConfig(
        memory=own.memory if own.memory is not None else global_limits.memory,
        cpu=own.cpu if own.cpu is not None else global_limits.cpu,
        pids=own.pids if own.pids is not None else global_limits.pids,
        open_files=own.open_files if own.open_files is not None else global_limits.open_files,
    )


def cgroup_group(data_dir: Path) -> str:
    """The cgroup of one proxy instance (host and data dir, as Docker labels name it)."""
    from services.isolation import instance_id

    return f"{CGROUP_PREFIX}{instance_id(data_dir)}"


def resource_limits(
    config: ProxyConfig, server: ServerConfig, data_dir: Path, generation: int
) -> ResourceLimits | None:
    """What the worker of `server`'s `generation` enforces on its upstream; None for a remote or
    Docker-isolated server, or when no limit is set."""
    from services.isolation import isolated

    if server.transport != "stdio" or isolated(server, config.docker_isolation):
        return None
    limits = effective_limits(config.limits, server.limits)
    if limits == LimitsConfig():
        return None
    return ResourceLimits(
        cgroup=f"{cgroup_group(data_dir)}/{server.name}{GENERATION_MARK}{generation}",
        memory=memory_text(limits.memory) if limits.memory is not None else None,
        memory_bytes=parse_memory(limits.memory) if limits.memory is not None else None,
        cpu=limits.cpu,
        pids=limits.pids,
        open_files=limits.open_files,
    )


def upstream_env(config: ProxyConfig, server: ServerConfig) -> dict[str, str]:
    """The `env` a stdio upstream is given: the global block overlaid with the server's own."""
    return {**config.env, **server.env} if server.transport == "stdio" else dict(server.env)


class StdioFields(TypedDict):
    """The fields of an UpstreamSpec that the global config shapes: `env` and `limits`."""

    env: dict[str, str]
    limits: ResourceLimits | None


def own_stdio_fields(server: ServerConfig, generation: int) -> StdioFields:
    """Without a global config: the server's own `env`, no limits."""
    return StdioFields(env=dict(server.env), limits=None)


def stdio_fields(config: ProxyConfig, server: ServerConfig, data_dir: Path, generation: int) -> StdioFields:
    return StdioFields(
        env=upstream_env(config, server), limits=resource_limits(config, server, data_dir, generation)
    )


def stdio_defaults_changed(before: ProxyConfig, after: ProxyConfig) -> list[str]:
    """Servers unchanged themselves whose upstream a new global `env` or `limits` changes."""
    if before.env == after.env and before.limits == after.limits:
        return []
    previous = {server.name: server for server in before.mcpServers}
    return [
        server.name
        for server in after.mcpServers
        if server.transport == "stdio" and previous.get(server.name) == server
    ]
