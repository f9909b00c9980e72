"""Installing the peer proxies the bench compares against, outside the repo's venv, once.

Python peers get a venv each under PEERS_HOME (with uv when it is on PATH,
else `python -m venv` and pip), npm peers one `npm install --prefix`. A peer
counts as installed once `installed.json` beside it records what was asked
for; later runs use it as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

PEERS_HOME: Final = Path(os.environ.get("MCPPROXY_BENCH_PEERS", "/tmp/mcpproxy-bench-peers"))
INSTALL_DEADLINE_S: Final = 300.0
MARKER: Final = "installed.json"
ERROR_CHARS: Final = 400


class NotInstalledError(Exception):
    """A peer could not be installed; the message says why."""


@dataclass(frozen=True)
class Installed:
    """An installed peer: its version and the command that runs it."""

    version: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class PythonPackage:
    """A peer from PyPI: the requirements to install, the distribution and the script to run."""

    name: str
    requirements: tuple[str, ...]
    script: str


@dataclass(frozen=True)
class NpmPackage:
    """A peer from npm: the package and its bin name."""

    name: str
    package: str
    script: str


async def _run(argv: list[str]) -> str:
    """Run an install step to completion within the deadline; its output, or NotInstalledError."""
    try:
        with trio.fail_after(INSTALL_DEADLINE_S):
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    except trio.TooSlowError:
        raise NotInstalledError(f"`{' '.join(argv[:3])} ...` took over {INSTALL_DEADLINE_S:.0f}s") from None
    except OSError as exc:
        raise NotInstalledError(f"cannot run {argv[0]}: {exc}") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise NotInstalledError(f"`{' '.join(argv[:4])} ...` failed: {output[-ERROR_CHARS:]}")
    return done.stdout.decode(errors="replace").strip()


def _cached(home: Path, wanted: object, command: tuple[str, ...]) -> Installed | None:
    try:
        recorded = json.loads((home / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if recorded.get("wanted") != wanted or not Path(command[0]).exists():
        return None
    return Installed(str(recorded["version"]), command)


def _announce(name: str, home: Path) -> None:
    print(f"bench: installing peer {name} into {home} (first use; cached afterwards)", file=sys.stderr)


async def ensure_python(peer: PythonPackage) -> Installed:
    home = PEERS_HOME / peer.name
    python = home / "venv" / "bin" / "python"
    command = (str(home / "venv" / "bin" / peer.script),)
    wanted = list(peer.requirements)
    if (found := _cached(home, wanted, command)) is not None:
        return found
    _announce(peer.name, home)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    uv = shutil.which("uv")
    if uv is not None:
        await _run([uv, "venv", "--quiet", "--python", sys.executable, str(home / "venv")])
        await _run([uv, "pip", "install", "--quiet", "--python", str(python), *peer.requirements])
    else:
        await _run([sys.executable, "-m", "venv", str(home / "venv")])
        await _run([str(python), "-m", "pip", "install", "--quiet", *peer.requirements])
    version = await _run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({peer.name!r}))"]
    )
    (home / MARKER).write_text(json.dumps({"wanted": wanted, "version": version}))
    return Installed(version, command)


async def ensure_npm(peer: NpmPackage) -> Installed:
    home = PEERS_HOME / "npm"
    command = (str(home / "node_modules" / ".bin" / peer.script),)
    if (found := _cached(home / peer.name, peer.package, command)) is not None:
        return found
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise NotInstalledError("npm or node not found on PATH")
    _announce(peer.name, home)
    (home / peer.name).mkdir(parents=True, exist_ok=True)
    await _run([npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", "--silent", peer.package])
    package_json = home / "node_modules" / peer.package / "package.json"
    try:
        version = str(json.loads(package_json.read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise NotInstalledError(
            f"npm installed {peer.package} but {package_json} is unreadable: {exc}"
        ) from None
    (home / peer.name / MARKER).write_text(json.dumps({"wanted": peer.package, "version": version}))
    return Installed(version, command)
