"""Where the processes of one proxy instance meet: the private ipc:// directory of a data dir."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from bus.transport import ipc_endpoint, private_runtime_dir


@dataclass(frozen=True)
class Endpoints:
    control: str
    calls: str


def runtime_dir_for(data_dir: Path) -> Path:
    """A short 0700 path (AF_UNIX paths are capped at 107 bytes) derived from the data dir."""
    digest = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:12]
    return Path(f"/tmp/mcpproxy-{os.getuid()}") / digest


def endpoints_for(data_dir: Path) -> Endpoints:
    runtime = runtime_dir_for(data_dir)
    private_runtime_dir(runtime.parent)
    private_runtime_dir(runtime)
    return Endpoints(control=ipc_endpoint(runtime, "control"), calls=ipc_endpoint(runtime, "calls"))
