"""`mcpproxy serve` starts the gateway and the supervisor first thing, before it imports trio or httpx2.

Launch to ready is the gateway's own start (importing the MCP SDK and hypercorn is
most of it), so every import this process makes before spawning it adds to that
wait, and every import after it runs on the other core meanwhile. This module
therefore needs only the standard library and the config; the children lead
sessions of their own, as `services.process.spawn` makes them, and `cli.serve`
adopts them once trio is imported.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from services.config import API_KEY_ENV, ProxyConfig, parse_listen
from services.run_file import data_dir_in_use, read_run_record

PARENT_PID_ENV: Final = "MCPPROXY_PARENT_PID"
"""services/process.py's (not imported here: serve starts its children before heavy imports)."""
LAUNCH_ORDER: Final = ("gateway", "supervisor")
"""The gateway first: its start is the longer one, and the supervisor's is not waited for."""


@dataclass
class Launched:
    """The two children, started, how to start each again, and the environment they share."""

    children: dict[str, subprocess.Popen[bytes]]
    env: dict[str, str]
    argv: dict[str, list[str]]
    api_key_origin: str
    """Where this run's API key comes from, as `serve` tells the user."""

    def respawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start child `name` again, as it was first started (`mcpproxy serve` restarts a crashed one)."""
        self.children[name] = spawn_child(self.argv[name], self.env)
        return self.children[name]


def preflight(listen: str, data_dir: Path) -> str | None:
    """Why this proxy cannot start, if that can be told before anything is spawned; else None.

    The supervisor's data-dir lock and the gateway's bind stay the authorities (another proxy may
    start between this check and them); checking first lets `serve` say so in one line and exit,
    before printing anything that another instance's answers would make false.
    """
    if data_dir_in_use(data_dir):
        record = read_run_record(data_dir)
        where = f" (serving at {record.url})" if record else ""
        return (
            f"another mcpproxy is already running with the data dir {data_dir}{where}; stop it first "
            "or use --data-dir to run a second one"
        )
    host, port = parse_listen(listen)
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen on {listen}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as hypercorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            fix = "stop what listens there or " if exc.errno == errno.EADDRINUSE else ""
            reason = exc.strerror or str(exc)
            return f"cannot listen on {shown}: {reason}; {fix}choose another address with --listen HOST:PORT"
    return None


def child_argv(
    module: str, config_path: Path, data_dir: Path | None, listen: str | None, log_level: str
) -> list[str]:
    # -P: `-m` would put the working directory first on sys.path, where a `gateway/` or `supervisor/`
    # of the user's would hide ours (cli/installation.py checks the rest of the path).
    argv = [sys.executable, "-P", "-m", module, "--config", str(config_path), "--log-level", log_level]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    if listen is not None and module == "gateway":
        argv += ["--listen", listen]
    return argv


def spawn_child(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, start_new_session=True, close_fds=True)


def launch(
    config: ProxyConfig, config_path: Path, data_dir: Path | None, listen: str | None, log_level: str
) -> Launched:
    env = dict(os.environ)
    if env.get(API_KEY_ENV):
        origin = f"API key from ${API_KEY_ENV}"
    elif config.api_key:
        origin = f"API key in {config_path}"
    else:
        # A file without a key still gets a protected API: one key for this run, shared by both processes.
        env[API_KEY_ENV] = secrets.token_urlsafe(32)
        origin = "API key generated for this run, printed above"
        print(
            f"mcpproxy: {config_path} has no api_key; using {env[API_KEY_ENV]} for this run", file=sys.stderr
        )
    env[PARENT_PID_ENV] = str(os.getpid())  # they die with us, even if we die as they start
    argv = {name: child_argv(name, config_path, data_dir, listen, log_level) for name in LAUNCH_ORDER}
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in LAUNCH_ORDER:
            children[name] = spawn_child(argv[name], env)
    except OSError:
        for child in children.values():
            child.kill()
            child.wait()
        raise
    return Launched(children, env, argv, origin)
