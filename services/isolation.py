"""Docker isolation, the pure part: sizes, CPU counts, the `docker run` arguments we accept, images, labels.

A stdio server with isolation runs its `command` and `args` inside a
container instead of as our child. What the container gets is decided here,
from the server's `isolation` block over the global `docker_isolation` one
(a per-server value wins), and travels to the worker as a `ContainerSpec`.

`extra_args` uses `docker run` syntax, but only the options in RUN_OPTIONS:
the ones a stdio server may need (bind mounts, environment, working dir,
user, read-only root, capabilities, ...). Options that the proxy owns
(`--rm`, `-i`, `--name`, `--network`, `--memory`, `--cpus`) or that would
undo the isolation (`--privileged`, `--pid=host`) are refused with a clear
message, at config load.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bus.messages import ContainerSpec

if TYPE_CHECKING:
    from services.config import DockerIsolationConfig, ServerConfig

LABEL_MANAGED: Final = "com.mcpproxy.managed"
LABEL_SERVER: Final = "com.mcpproxy.server"
LABEL_INSTANCE: Final = "com.mcpproxy.instance"
LABEL_RUN: Final = "com.mcpproxy.run"
LABEL_GENERATION: Final = "com.mcpproxy.generation"

PYTHON_IMAGE: Final = "ghcr.io/astral-sh/uv:python3.12-bookworm-slim"
NODE_IMAGE: Final = "node:22"
SHELL_IMAGE: Final = "debian:bookworm-slim"
FALLBACK_KEY: Final = "binary"
DEFAULT_IMAGES: Final = {
    "python": PYTHON_IMAGE,
    "python3": PYTHON_IMAGE,
    "pip": PYTHON_IMAGE,
    "pip3": PYTHON_IMAGE,
    "pipx": PYTHON_IMAGE,
    "uv": PYTHON_IMAGE,
    "uvx": PYTHON_IMAGE,
    "node": NODE_IMAGE,
    "npm": NODE_IMAGE,
    "npx": NODE_IMAGE,
    "yarn": NODE_IMAGE,
    "pnpm": NODE_IMAGE,
    "bun": "oven/bun:1",
    "bunx": "oven/bun:1",
    "deno": "denoland/deno:2",
    "go": "golang:1.23",
    "sh": SHELL_IMAGE,
    "bash": SHELL_IMAGE,
    FALLBACK_KEY: SHELL_IMAGE,
}
"""Image per command name; `docker_isolation.default_images` is merged over it."""

NOT_ISOLATED_COMMANDS: Final = frozenset({"docker", "podman"})
"""Commands that start containers themselves: wrapping them would be Docker-in-Docker."""

MIN_MEMORY_BYTES: Final = 6 * 1024 * 1024
"""Docker refuses a memory limit under 6 MiB."""

_MEMORY_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNIT_BYTES: Final = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_NETWORK_RE: Final = re.compile(r"^(?:container:)?[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IMAGE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:@+-]*$")
_VERSION_SUFFIX_RE: Final = re.compile(r"[\d.]+$")
_CONTAINER_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")


class IsolationValueError(ValueError):
    """A value in `isolation` / `docker_isolation` is not acceptable; `index` points into extra_args."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


# --- sizes, CPUs, network, image ------------------------------------------------


def parse_memory(value: str | int) -> int:
    """Bytes from a number of bytes or a docker-style size ("512m", "1g", "256MiB")."""
    if isinstance(value, bool):
        raise IsolationValueError(f"invalid memory size {value!r}: use a string like '512m' or '1g'")
    if isinstance(value, int):
        size = value
    else:
        match = _MEMORY_RE.match(value)
        if not match:
            raise IsolationValueError(
                f"invalid memory size {value!r}: use a number of bytes or a string like '512m' or '1g'"
            )
        size = int(float(match.group(1)) * _UNIT_BYTES[match.group(2).lower()])
    if size < MIN_MEMORY_BYTES:
        raise IsolationValueError(f"memory size {value!r} is below Docker's minimum of 6m")
    return size


def parse_cpus(value: float | str) -> int:
    """Nano-CPUs (what the Docker API takes) from a CPU count like 1.0, 0.5 or "1.5"."""
    if isinstance(value, bool):
        raise IsolationValueError(f"invalid CPU count {value!r}: use a number of CPUs like 1.0 or 0.5")
    try:
        cpus = float(value)
    except ValueError:
        raise IsolationValueError(
            f"invalid CPU count {value!r}: use a number of CPUs like 1.0 or 0.5"
        ) from None
    if not 0 < cpus < float("inf"):
        raise IsolationValueError(f"invalid CPU count {value!r}: it must be greater than 0")
    nano = round(cpus * 1e9)
    if nano < 10_000_000:
        raise IsolationValueError(f"CPU count {value!r} is below Docker's minimum of 0.01")
    return nano


def check_network_mode(value: str) -> str:
    if not _NETWORK_RE.fullmatch(value):
        raise IsolationValueError(
            f"invalid network mode {value!r}: use bridge, none, host, container:NAME or a network name"
        )
    return value


def check_image(value: str) -> str:
    if not _IMAGE_RE.fullmatch(value):
        raise IsolationValueError(f"invalid image reference {value!r}: expected something like 'node:22'")
    return value


def runtime_key(command: str) -> str:
    """The name an image is chosen by: `/usr/bin/python3.12` -> `python3` or `python`."""
    return os.path.basename(command)


def image_for(command: str, images: dict[str, str]) -> str:
    """The image for `command`: by its name, then without a version suffix, then the fallback."""
    name = runtime_key(command)
    for key in (name, _VERSION_SUFFIX_RE.sub("", name)):
        if key in images:
            return images[key]
    return images.get(FALLBACK_KEY, SHELL_IMAGE)


# --- extra_args -----------------------------------------------------------------


@dataclass
class RunOptions:
    """What `extra_args` asks of the container, in Docker API terms."""

    binds: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    read_only: bool = False
    init: bool = True
    tmpfs: dict[str, str] = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    pids_limit: int | None = None
    extra_hosts: dict[str, str] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)
    shm_size: int | None = None


_FLAGS: Final = frozenset({"--read-only", "--init"})
_VALUED: Final = {
    "-v": "--volume",
    "--volume": "--volume",
    "-e": "--env",
    "--env": "--env",
    "-w": "--workdir",
    "--workdir": "--workdir",
    "-u": "--user",
    "--user": "--user",
    "--tmpfs": "--tmpfs",
    "--cap-add": "--cap-add",
    "--cap-drop": "--cap-drop",
    "--security-opt": "--security-opt",
    "--pids-limit": "--pids-limit",
    "--add-host": "--add-host",
    "--dns": "--dns",
    "--shm-size": "--shm-size",
}
RUN_OPTIONS: Final = tuple(sorted({*_FLAGS, *_VALUED}))
_OWNED: Final = {
    "--rm": "the proxy removes its containers itself",
    "-i": "stdin is always attached",
    "--interactive": "stdin is always attached",
    "-t": "a TTY would corrupt the JSON-RPC stream",
    "--tty": "a TTY would corrupt the JSON-RPC stream",
    "-d": "the proxy attaches to the container",
    "--detach": "the proxy attaches to the container",
    "--name": "the proxy names its containers",
    "--network": "use `network_mode`",
    "--net": "use `network_mode`",
    "-m": "use `memory_limit`",
    "--memory": "use `memory_limit`",
    "--cpus": "use `cpu_limit`",
    "--label": "the proxy sets its own labels",
    "-l": "the proxy sets its own labels",
    "--privileged": "it would undo the isolation",
    "--pid": "it would undo the isolation",
    "--ipc": "it would undo the isolation",
    "--userns": "it would undo the isolation",
}
_MOUNT_MODES: Final = frozenset(
    {"ro", "rw", "z", "Z", "shared", "slave", "private", "rshared", "rslave", "rprivate", "nocopy"}
)
_VOLUME_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BOOL: Final = {"true": True, "1": True, "false": False, "0": False}


def _split(arg: str) -> tuple[str, str | None]:
    if arg.startswith("--") and "=" in arg:
        name, _, value = arg.partition("=")
        return name, value
    return arg, None


def parse_extra_args(args: list[str]) -> RunOptions:
    """Parse `docker run`-style options; raise IsolationValueError naming the offending index."""
    for index, arg in enumerate(args):
        if "${keyring:" in arg or "${env:" in arg:
            raise IsolationValueError(
                "secret references are not resolved in extra_args; pass secrets through the server's `env`",
                index,
            )
    options = RunOptions()
    index = 0
    while index < len(args):
        start = index
        name, value = _split(args[index])
        index += 1
        if name in _OWNED:
            raise IsolationValueError(f"{name} is not allowed here: {_OWNED[name]}", start)
        if name in _FLAGS:
            flag = True
            if value is not None:
                if value.lower() not in _BOOL:
                    raise IsolationValueError(f"{name} takes true or false, got {value!r}", start)
                flag = _BOOL[value.lower()]
            if name == "--read-only":
                options.read_only = flag
            else:
                options.init = flag
            continue
        if name not in _VALUED:
            raise IsolationValueError(
                f"unsupported docker run option {args[start]!r}: use one of {', '.join(RUN_OPTIONS)}", start
            )
        if value is None:
            if index >= len(args):
                raise IsolationValueError(f"{name} needs a value", start)
            value = args[index]
            index += 1
        try:
            _apply(options, _VALUED[name], value)
        except IsolationValueError as exc:
            raise IsolationValueError(str(exc), start) from None
    return options


def _apply(options: RunOptions, option: str, value: str) -> None:
    match option:
        case "--volume":
            options.binds.append(_check_volume(value))
        case "--env":
            key, sep, val = value.partition("=")
            if not key or not sep:
                raise IsolationValueError(f"--env needs KEY=VALUE, got {value!r}")
            options.env[key] = val
        case "--workdir":
            if not value.startswith("/"):
                raise IsolationValueError(
                    f"--workdir must be an absolute path in the container, got {value!r}"
                )
            options.working_dir = value
        case "--user":
            options.user = value
        case "--tmpfs":
            path, _, mount_options = value.partition(":")
            if not path.startswith("/"):
                raise IsolationValueError(f"--tmpfs needs an absolute path, got {value!r}")
            options.tmpfs[path] = mount_options
        case "--cap-add":
            options.cap_add.append(value)
        case "--cap-drop":
            options.cap_drop.append(value)
        case "--security-opt":
            options.security_opt.append(value)
        case "--pids-limit":
            try:
                options.pids_limit = int(value)
            except ValueError:
                raise IsolationValueError(f"--pids-limit needs an integer, got {value!r}") from None
        case "--add-host":
            host, sep, address = value.partition(":")
            if not host or not sep or not address:
                raise IsolationValueError(f"--add-host needs HOST:IP, got {value!r}")
            options.extra_hosts[host] = address
        case "--dns":
            options.dns.append(value)
        case "--shm-size":
            options.shm_size = parse_memory(value)


def _check_volume(value: str) -> str:
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise IsolationValueError(f"--volume needs SOURCE:TARGET[:OPTIONS], got {value!r}")
    source, target = parts[0], parts[1]
    if not (source.startswith("/") or _VOLUME_NAME_RE.fullmatch(source)):
        raise IsolationValueError(
            f"--volume source must be an absolute host path or a volume name: {value!r}"
        )
    if not target.startswith("/"):
        raise IsolationValueError(f"--volume target must be an absolute path in the container: {value!r}")
    if len(parts) == 3 and not set(parts[2].split(",")) <= _MOUNT_MODES:
        raise IsolationValueError(
            f"--volume options must be among {', '.join(sorted(_MOUNT_MODES))}: {value!r}"
        )
    return value


# --- identity and labels ----------------------------------------------------------


def instance_id(data_dir: Path) -> str:
    """This proxy instance, stable across restarts: the host and the data dir, hashed."""
    where = f"{socket.gethostname()}:{data_dir.expanduser().resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def labels(server: str, instance: str, run: str, generation: int) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_SERVER: server,
        LABEL_INSTANCE: instance,
        LABEL_RUN: run,
        LABEL_GENERATION: str(generation),
    }


def instance_labels(instance: str, server: str | None = None) -> dict[str, str]:
    """The labels that select every container of a proxy instance (or of one of its servers)."""
    selected = {LABEL_MANAGED: "true", LABEL_INSTANCE: instance}
    if server is not None:
        selected[LABEL_SERVER] = server
    return selected


def container_name(server: str, run: str, generation: int) -> str:
    return f"mcpproxy-{_CONTAINER_NAME_UNSAFE.sub('_', server)}-{run[:8]}-{generation}"


# --- the effective settings of one server -------------------------------------------


def isolated(server: ServerConfig, docker: DockerIsolationConfig) -> bool:
    """Whether `server` runs in a container: its own `isolation.enabled`, else the global one."""
    if server.transport != "stdio" or not server.command:
        return False
    if runtime_key(server.command) in NOT_ISOLATED_COMMANDS:
        return False
    own = server.isolation.enabled if server.isolation is not None else None
    return docker.enabled if own is None else own


def container_spec(
    server: ServerConfig, docker: DockerIsolationConfig, instance: str, run: str, generation: int
) -> ContainerSpec | None:
    """The container `server` runs in (per-server values over global ones), or None when not isolated."""
    if not isolated(server, docker):
        return None
    assert server.command is not None
    own = server.isolation
    images = {**DEFAULT_IMAGES, **docker.default_images}
    memory = own.memory_limit if own is not None and own.memory_limit is not None else docker.memory_limit
    cpus = own.cpu_limit if own is not None and own.cpu_limit is not None else docker.cpu_limit
    network = own.network_mode if own is not None and own.network_mode else docker.network_mode
    return ContainerSpec(
        image=own.image if own is not None and own.image else image_for(server.command, images),
        name=container_name(server.name, run, generation),
        network_mode=network,
        memory_bytes=parse_memory(memory),
        nano_cpus=parse_cpus(cpus),
        extra_args=[*docker.extra_args, *(own.extra_args if own is not None else [])],
        labels=labels(server.name, instance, run, generation),
        start_timeout_s=docker.timeout_s(),
    )
