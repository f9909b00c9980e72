"""Where the processes of one proxy instance meet: the private ipc:// directory of a data dir, or
tcp:// endpoints named in the environment when the processes run on different hosts (docs/scale-out.md)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bus.errors import ConfigError
from bus.transport import ipc_endpoint, private_runtime_dir

CONTROL_ENV: Final = "MCPPROXY_BUS_CONTROL"
"""The supervisor's control endpoint as the gateway and workers dial it, e.g. tcp://supervisor:7001."""
CONTROL_BIND_ENV: Final = "MCPPROXY_BUS_CONTROL_BIND"
"""Where the supervisor binds it, when that differs (tcp://0.0.0.0:7001 in a pod)."""
CALLS_ENV: Final = "MCPPROXY_BUS_CALLS"
"""The gateway's calls endpoint as workers dial it (the supervisor hands it to them); with several
gateway replicas, each one's, comma-separated (services/worker/gateways.py)."""
CALLS_BIND_ENV: Final = "MCPPROXY_BUS_CALLS_BIND"
"""Where the gateway binds it, when that differs."""
GATEWAY_ID_ENV: Final = "MCPPROXY_GATEWAY_ID"
"""Names one gateway replica among several subscribed to the same supervisor (`gateway/<id>`)."""


@dataclass(frozen=True)
class Endpoints:
    control: str
    calls: str
    control_bind: str = ""
    calls_bind: str = ""

    def bind_control(self) -> str:
        return self.control_bind or self.control

    def bind_calls(self) -> str:
        address = self.calls_bind or self.calls
        if "," in address:
            raise ConfigError(
                f"{CALLS_ENV} lists several gateways ({address}); a gateway binds one: "
                f"set {CALLS_BIND_ENV} to its own"
            )
        return address

    @property
    def uses_tcp(self) -> bool:
        return any(
            address.startswith("tcp://")
            for address in (self.control, self.calls, self.control_bind, self.calls_bind)
        )


def runtime_dir_for(data_dir: Path) -> Path:
    """A short 0700 path (AF_UNIX paths are capped at 107 bytes) derived from the data dir."""
    digest = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:12]
    return Path(f"/tmp/mcpproxy-{os.getuid()}") / digest


def endpoints_for(data_dir: Path, environ: Mapping[str, str] | None = None) -> Endpoints:
    """The data dir's ipc:// endpoints, each replaced by its MCPPROXY_BUS_* variable where one is set."""
    env = os.environ if environ is None else environ
    control, calls = env.get(CONTROL_ENV, ""), env.get(CALLS_ENV, "")
    if not (control and calls):
        runtime = runtime_dir_for(data_dir)
        private_runtime_dir(runtime.parent)
        private_runtime_dir(runtime)
        control = control or ipc_endpoint(runtime, "control")
        calls = calls or ipc_endpoint(runtime, "calls")
    return Endpoints(
        control=control,
        calls=calls,
        control_bind=env.get(CONTROL_BIND_ENV, ""),
        calls_bind=env.get(CALLS_BIND_ENV, ""),
    )


def gateway_identity(environ: Mapping[str, str] | None = None) -> bytes:
    """The gateway's routing id on the control socket: `gateway`, or `gateway/<id>` for one of several."""
    replica = (os.environ if environ is None else environ).get(GATEWAY_ID_ENV, "")
    return f"gateway/{replica}".encode() if replica else b"gateway"
