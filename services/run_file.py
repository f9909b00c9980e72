"""Where a running proxy can be found, and its key: `<data_dir>/run/gateway.json`, by the gateway.

The gateway writes it once it listens (so it holds the address actually bound,
port 0 included, and `--listen` whatever the config says) and removes it when it
stops. `mcpproxy serve` waits for the record naming its own gateway's pid before
it probes `/readyz` (a probe of the address alone would reach whatever else
listens there), and every other command reads it to find the proxy of a config
or data dir without `--url`. A record whose pid is gone, or is no gateway, is a
crashed run's leftover and is ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from services.config import write_atomically
from services.private_files import make_private_dir

RUN_DIR_NAME: Final = "run"
RUN_FILE_NAME: Final = "gateway.json"
LOCK_FILE_NAME: Final = "supervisor.lock"
"""The supervisor holds an exclusive flock on it while it runs (supervisor/ledger.py)."""


@dataclass(frozen=True)
class RunRecord:
    """A gateway that is listening: its pid, the address it bound and the API key it requires.

    The key is there for a run whose key is not in the config (generated for the run, or from
    $MCPPROXY_API_KEY): the file is as private as the config (0600 in a 0700 directory).
    """

    pid: int
    host: str
    port: int
    api_key: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """The base URL a client on this machine uses (a wildcard bind is reached on loopback)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def run_file_path(data_dir: Path) -> Path:
    return data_dir.expanduser() / RUN_DIR_NAME / RUN_FILE_NAME


def write_run_record(data_dir: Path, record: RunRecord) -> None:
    path = run_file_path(data_dir)
    make_private_dir(path.parent)
    body = {
        "pid": record.pid,
        "host": record.host,
        "port": record.port,
        "url": record.url,
        "api_key": record.api_key,
    }
    write_atomically(path, json.dumps(body) + "\n", durable=False)


def remove_run_record(data_dir: Path, pid: int) -> None:
    """Remove the record if it is the one `pid` wrote (a newer gateway's stays)."""
    path = run_file_path(data_dir)
    record = _parse(path)
    if record is not None and record.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_run_record(data_dir: Path) -> RunRecord | None:
    """The record of a gateway that still runs, else None."""
    record = _parse(run_file_path(data_dir))
    if record is None or not _is_gateway(record.pid):
        return None
    return record


def data_dir_in_use(data_dir: Path) -> bool:
    """Whether a supervisor holds this data dir's lock (a probe: the lock is released at once)."""
    try:
        fd = os.open(data_dir.expanduser() / RUN_DIR_NAME / LOCK_FILE_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock
    return False


def _parse(path: Path) -> RunRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = RunRecord(
            pid=int(data["pid"]),
            host=str(data["host"]),
            port=int(data["port"]),
            api_key=str(data.get("api_key") or ""),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _is_gateway(pid: int) -> bool:
    if not Path("/proc/self").exists():  # no procfs: liveness is all that can be told
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"gateway" in argv
