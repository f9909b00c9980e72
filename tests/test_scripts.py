"""scripts/run and scripts/test share one environment and never undo each other's install.

Each runs against a throwaway environment ($UV_PROJECT_ENVIRONMENT, which uv and both scripts
honour) built from the lock file, so the checkout's own .venv is never touched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parent.parent
SCRIPT_TIMEOUT_S: Final = 300.0
DEV_ONLY: Final = ("pytest", "ruff", "mypy")


def installed(venv: Path) -> set[str]:
    site = next((venv / "lib").glob("python3*/site-packages"))
    return {entry.name for entry in site.iterdir() if entry.name.endswith(".dist-info")}


def script(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)  # uv would warn that it differs from the project environment
    return subprocess.run(
        [str(REPO / "scripts" / argv[0]), *argv[1:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )


def test_scripts_run_keeps_what_scripts_test_installed_and_each_later_sync_changes_nothing(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    # What scripts/test installs first: everything, dev tools included.
    assert (tested := script(venv, "bootstrap")).returncode == 0, tested.stderr
    with_dev = installed(venv)
    assert all(any(name.startswith(f"{tool}-") for name in with_dev) for tool in DEV_ONLY)

    run = script(venv, "run", "--help")  # bootstraps as for a start, then `mcpproxy serve --help`
    assert run.returncode == 0, run.stderr
    assert "Start the proxy" in run.stdout
    assert installed(venv) == with_dev

    assert (again := script(venv, "bootstrap")).returncode == 0, again.stderr
    assert installed(venv) == with_dev
