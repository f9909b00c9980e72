"""`mcpproxy doctor`'s checks of what an upstream gets from this machine: which mechanism enforces
each resource limit here (services/limits.py), and which environment variables each stdio upstream
is given (names only, never values)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from services.config import ProxyConfig
from services.limits import machine_support
from services.worker.stdio import upstream_environment

if TYPE_CHECKING:
    from cli.doctor_cmd import Check


def limits_check() -> Check:
    """What would enforce `limits` for a proxy run by this user here (a cgroup is made and removed)."""
    from cli.doctor_cmd import Check

    support = machine_support()
    detail = "; ".join(f"{name}: {how}" for name, how in support.items())
    if all("cgroup" in support[name] for name in ("memory", "pids", "cpu")):
        return Check("limits", "ok", detail)
    return Check(
        "limits",
        "info",
        detail,
        "for per-upstream caps, run the proxy where it may create cgroups (root with v1, or a delegated "
        "v2 subtree, e.g. systemd Delegate=yes); see README 'Resource limits'",
    )


def env_checks(config: ProxyConfig, environ: Mapping[str, str] | None = None) -> list[Check]:
    """Per local stdio server: the variables its upstream gets, from this shell, the global `env`
    and its own `env` (a proxy started from another environment passes that one's)."""
    from cli.doctor_cmd import Check
    from services.isolation import isolated

    environ = os.environ if environ is None else environ
    inherited = sorted(upstream_environment({}, environ))
    checks = []
    for server in config.mcpServers:
        if server.transport != "stdio":
            continue
        if isolated(server, config.docker_isolation):
            own = sorted({**config.env, **server.env})
            detail = f"in a container: {', '.join(own) or 'no variables'} (global and own env)"
        else:
            glob = sorted(set(config.env) - set(server.env))
            parts = [f"from this shell: {', '.join(inherited) or 'none'}"]
            if glob:
                parts.append(f"global env: {', '.join(glob)}")
            if server.env:
                parts.append(f"own env: {', '.join(sorted(server.env))}")
            detail = "; ".join(parts)
        checks.append(Check(f"env {server.name}", "info", detail))
    return checks
