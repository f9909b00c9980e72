"""`mcpproxy serve --config examples/mcp_config.json`, as the README says, keeps its state out of the
repository: the example names a data dir under ~/.mcpproxy, and the checkout stays clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Final

import pytest
import trio

from tests.proxyctl import PYTHON, REPO, alive, descendants, free_port

pytestmark = pytest.mark.system

EXAMPLE: Final = REPO / "examples" / "mcp_config.json"
CLI: Final = str(Path(PYTHON).parent / "mcpproxy")
READY_DEADLINE_S: Final = 60.0
STOP_DEADLINE_S: Final = 60.0


def examples_status() -> str:
    """What git sees changed or added under examples/, ignored files included."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "examples"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


async def test_serving_the_example_config_writes_nothing_into_the_checkout(tmp_path: Path) -> None:
    assert json.loads(EXAMPLE.read_text())["data_dir"] == "~/.mcpproxy/examples"
    before = examples_status()
    home = tmp_path / "home"
    home.mkdir()
    # npx may not fetch here: server-everything fails fast (its failure is logged in the data dir too).
    env = {**os.environ, "HOME": str(home), "npm_config_offline": "true"}
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [CLI, "serve", "--config", "examples/mcp_config.json", "--listen", f"127.0.0.1:{free_port()}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    data_dir = home / ".mcpproxy" / "examples"
    seen: set[int] = set()
    try:
        with trio.fail_after(READY_DEADLINE_S):
            while (
                not (data_dir / "logs" / "server-echo.log").exists()
                or "mcpproxy ready" not in (tmp_path / "serve.log").read_text()
            ):
                assert serve.poll() is None, (tmp_path / "serve.log").read_text()
                await trio.sleep(0.05)
        seen = descendants(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=STOP_DEADLINE_S)
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait(timeout=10)
            for pid in alive(seen):
                os.kill(pid, signal.SIGKILL)
            log.close()
    assert examples_status() == before
    assert (data_dir / "run").is_dir() and (data_dir / "activity.db").exists()
