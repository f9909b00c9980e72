"""The README's first section, walked as a new user would: a fresh copy of the checkout, a clean
HOME, and only the documented commands, from nothing to a tool call.

`scripts/run --config examples/mcp_config.json --listen ...` installs and starts the proxy,
`uv tool install .` puts `mcpproxy` on PATH, and `mcpproxy tools call` finds the running proxy
by the example's config alone (the address `--listen` chose is in the run file). The example keeps
its state in ~/.mcpproxy/examples, so the copy stays clean. Only uv's download cache is shared with
this machine (a clean one would fetch the same wheels).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Final

import pytest
import trio

from tests.proxyctl import REPO, alive, descendants, free_port

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        shutil.which("uv") is None, reason="needs uv (scripts/bootstrap fetches it otherwise)"
    ),
]

STEP_TIMEOUT_S: Final = 300.0
READY_DEADLINE_S: Final = 180.0
STOP_DEADLINE_S: Final = 60.0


def git_names(*argv: str) -> set[str]:
    listed = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, check=True, timeout=60)
    return set(filter(None, listed.stdout.decode().split("\0")))


def fresh_copy(into: Path) -> Path:
    """What a clone of the working tree would hold: committed and new files, as they are now."""
    names = git_names("ls-tree", "-r", "-z", "--name-only", "HEAD")
    names |= git_names("ls-files", "-z", "--others", "--exclude-standard")
    for name in sorted(names):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree, not yet in the index
            continue
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return into


def user_environment(home: Path, bin_dir: Path) -> dict[str, str]:
    cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True, timeout=60)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MCPPROXY_", "VIRTUAL_ENV", "UV_", "PYTHON"))
    }
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        UV_CACHE_DIR=cache.stdout.strip(),
        UV_TOOL_DIR=str(home / "uv-tools"),
        UV_TOOL_BIN_DIR=str(bin_dir),
        PYENV_ROOT=os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")),  # where `uv` may be a shim
        npm_config_offline="true",  # the example's npx server may fail here; the echo server carries on
    )
    return env


async def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    with trio.fail_after(STEP_TIMEOUT_S):
        done = await trio.run_process(
            argv, cwd=cwd, env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    return subprocess.CompletedProcess(argv, done.returncode, done.stdout.decode(), done.stderr.decode())


async def test_the_readme_first_section_goes_from_nothing_to_a_tool_call(tmp_path: Path) -> None:
    checkout = fresh_copy(tmp_path / "mcpproxy")
    home = tmp_path / "home"
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    env = user_environment(home, bin_dir)
    readme = (checkout / "README.md").read_text()
    assert "scripts/run --config examples/mcp_config.json" in readme
    assert "uv tool install ." in readme

    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        ["scripts/run", "--config", "examples/mcp_config.json", "--listen", f"127.0.0.1:{free_port()}"],
        cwd=checkout,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: set[int] = set()
    try:
        installed = await run(["uv", "tool", "install", "."], checkout, env)
        assert installed.returncode == 0, installed.stderr
        assert shutil.which("mcpproxy", path=env["PATH"]) == str(bin_dir / "mcpproxy")

        with trio.fail_after(READY_DEADLINE_S):
            while "mcpproxy ready" not in (tmp_path / "serve.log").read_text():
                assert serve.poll() is None, (tmp_path / "serve.log").read_text()
                await trio.sleep(0.1)
            seen = descendants(serve.pid)
            while True:  # the example's echo server starts after the proxy is ready
                added = await run(
                    [
                        "mcpproxy",
                        "tools",
                        "call",
                        "echo:add",
                        "--config",
                        "examples/mcp_config.json",
                        "--args",
                        '{"a": 2, "b": 3}',
                        "-o",
                        "json",
                    ],
                    checkout,
                    env,
                )
                if added.returncode == 0:
                    break
                assert added.returncode != 3, added.stderr  # the proxy was found
                await trio.sleep(0.2)
        assert json.loads(added.stdout)["structuredContent"] == {"sum": 5}
        seen |= descendants(serve.pid)
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
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "examples"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert status.stdout == ""
    assert sorted(p.name for p in (checkout / "examples").iterdir()) == ["mcp_config.json"]
    assert (home / ".mcpproxy" / "examples" / "activity.db").exists()
