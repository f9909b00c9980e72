"""The bus's CurveZMQ keys: which process holds which, where they come from, how they are made.

One server keypair for the bound sockets (the supervisor's control ROUTER, each gateway's calls
ROUTER), one client keypair for gateways and one for workers. A process takes each key from its
`MCPPROXY_BUS_*` variable (a Kubernetes Secret mounted with `envFrom`), else from the secrets
store under `bus_*` (`mcpproxy keys generate` puts them there). Only public keys are ever printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Literal

from bus.errors import ConfigError
from bus.transport import CurveKeys, curve_key_problem, new_curve_keypair

Role = Literal["supervisor", "gateway", "worker"]
ROLES: Final[tuple[Role, ...]] = ("supervisor", "gateway", "worker")
PAIRS: Final = ("server", "gateway", "worker")
KEY_NAMES: Final = tuple(f"{pair}_{half}" for pair in PAIRS for half in ("public", "secret"))
NEEDS: Final[Mapping[Role, tuple[str, ...]]] = {
    # The supervisor hands the worker keypair to the workers it spawns.
    "supervisor": ("server_public", "server_secret", "gateway_public", "worker_public", "worker_secret"),
    "gateway": ("server_public", "server_secret", "gateway_public", "gateway_secret", "worker_public"),
    "worker": ("server_public", "worker_public", "worker_secret"),
}

Lookup = Callable[[str], str | None]


def env_var(key: str) -> str:
    return f"MCPPROXY_BUS_{key.upper()}"


def store_name(key: str) -> str:
    return f"bus_{key}"


def generate() -> dict[str, str]:
    """Every key of a new bus, by key name (`server_public`, `server_secret`, ...)."""
    keys: dict[str, str] = {}
    for pair in PAIRS:
        keys[f"{pair}_public"], keys[f"{pair}_secret"] = new_curve_keypair()
    return keys


def lookup_from(environ: Mapping[str, str], store_get: Lookup | None) -> Lookup:
    """A key by name: its environment variable first, then the secrets store (when given)."""

    def lookup(key: str) -> str | None:
        value = environ.get(env_var(key))
        if value is None and store_get is not None:
            value = store_get(store_name(key))
        return value

    return lookup


def role_values(role: Role, lookup: Lookup) -> dict[str, str]:
    """The keys `role` needs, checked; ConfigError names each missing or malformed one and the fix."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for key in NEEDS[role]:
        value = lookup(key)
        if value is None:
            problems.append(f"{env_var(key)} (or secret {store_name(key)}) is not set")
        elif problem := curve_key_problem(value):
            problems.append(f"{env_var(key)}: {problem}")
        else:
            values[key] = value
    if problems:
        raise ConfigError(
            f"the {role} uses a tcp:// bus but its CurveZMQ keys are incomplete: {'; '.join(problems)}. "
            "Run `mcpproxy keys generate` on the host, or mount `mcpproxy keys export " + role + "`"
        )
    return values


def curve_keys(role: Role, lookup: Lookup) -> CurveKeys:
    """What `role`'s sockets use: the pinned server key, its client keypair, what its binds accept."""
    values = role_values(role, lookup)
    match role:
        case "supervisor":
            return CurveKeys(
                server_public=values["server_public"],
                server_secret=values["server_secret"],
                allowed=frozenset({values["gateway_public"], values["worker_public"]}),
            )
        case "gateway":
            return CurveKeys(
                server_public=values["server_public"],
                public=values["gateway_public"],
                secret=values["gateway_secret"],
                server_secret=values["server_secret"],
                allowed=frozenset({values["worker_public"]}),
            )
        case "worker":
            return CurveKeys(
                server_public=values["server_public"],
                public=values["worker_public"],
                secret=values["worker_secret"],
            )


def worker_environment(lookup: Lookup) -> dict[str, str]:
    """The variables a worker this process spawns needs (the supervisor sets them on itself)."""
    values = role_values("worker", lookup)
    return {env_var(key): value for key, value in values.items()}
