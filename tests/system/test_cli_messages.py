"""The CLI says what actually happened: patch flags that would change nothing or never be used,
the timeout flags, `secrets set` without a terminal, counts, `activity watch -o json` and the
Docker line of `doctor` (the real `mcpproxy` CLI against a real proxy)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from tests.proxyctl import PYTHON, Proxy, echo_server, free_port, running_proxy

pytestmark = pytest.mark.system

CLI: Final = str(Path(PYTHON).parent / "mcpproxy")
CLI_DEADLINE_S: Final = 60.0
WATCH_DEADLINE_S: Final = 45.0


async def mcpproxy(
    proxy: Proxy | None, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    target = ["--config", str(proxy.config_path), "--url", proxy.base_url] if proxy else []
    cut = argv.index("--") if "--" in argv else len(argv)  # after `--` comes an upstream's command
    with trio.fail_after(CLI_DEADLINE_S):
        done = await trio.run_process(
            [CLI, *argv[:cut], *target, *argv[cut:]],
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def on_disk(proxy: Proxy, name: str) -> dict[str, Any]:
    servers = json.loads(proxy.config_path.read_text())["mcpServers"]
    found: dict[str, Any] = next(s for s in servers if s["name"] == name)
    return found


async def test_patch_and_add_say_what_changes_and_refuse_flags_that_would_never_be_used(
    tmp_path: Path,
) -> None:
    remote = {"name": "remote", "url": f"http://127.0.0.1:{free_port()}/mcp", "headers": {"X-Old": "1"}}
    async with running_proxy(tmp_path, [echo_server(), remote]) as proxy:
        await proxy.wait_for("echo", "running")
        before = proxy.config_path.read_text()

        missing = await mcpproxy(proxy, "upstream", "patch", "remote", "--header-remove", "X-Nope")
        assert missing.returncode == 0
        assert missing.stderr.splitlines() == ["remote has no header X-Nope; nothing to remove"]
        assert missing.stdout.splitlines() == ["remote: nothing changed"]
        env_missing = await mcpproxy(proxy, "upstream", "patch", "echo", "--env-remove", "NOPE")
        assert env_missing.stderr.splitlines() == ["echo has no variable NOPE; nothing to remove"]
        assert proxy.config_path.read_text() == before

        header_on_stdio = await mcpproxy(proxy, "upstream", "patch", "echo", "--header", "X-Trace: on")
        assert header_on_stdio.returncode == 2
        assert "echo is a stdio server (a command): it sends no HTTP headers" in header_on_stdio.stderr
        env_on_remote = await mcpproxy(proxy, "upstream", "patch", "remote", "--env", "A=1")
        assert env_on_remote.returncode == 2 and "remote is a remote server (a URL)" in env_on_remote.stderr
        add_stdio = await mcpproxy(proxy, "upstream", "add", "x", "--header", "A: b", "--", PYTHON, "-V")
        assert add_stdio.returncode == 2 and "x is a stdio server" in add_stdio.stderr
        assert proxy.config_path.read_text() == before

        mixed = await mcpproxy(
            proxy, "upstream", "patch", "remote", "--header-remove", "X-Old", "--header-remove", "X-Nope"
        )
        assert mixed.returncode == 0, mixed.stderr
        assert mixed.stdout.strip() == "patched remote: removed header X-Old"
        assert "headers" not in on_disk(proxy, "remote") or on_disk(proxy, "remote")["headers"] == {}

        timeouts = await mcpproxy(
            proxy, "upstream", "patch", "echo", "--init-timeout", "45", "--call-tool-timeout", "2m"
        )
        assert timeouts.returncode == 0, timeouts.stderr
        assert timeouts.stdout.strip() == "patched echo: init_timeout set to 45; call_tool_timeout set to 2m"
        assert on_disk(proxy, "echo")["init_timeout"] == 45
        assert on_disk(proxy, "echo")["call_tool_timeout"] == "2m"
        added = await mcpproxy(
            proxy, "upstream", "add", "slow", "--call-tool-timeout", "300", "--disabled", "--", PYTHON, "-V"
        )
        assert added.returncode == 0, added.stderr
        assert on_disk(proxy, "slow")["call_tool_timeout"] == 300

        # Enabling what is enabled (disabling what is disabled) says so and writes nothing.
        unchanged = proxy.config_path.read_text()
        for action, name, state in (("enable", "echo", "enabled"), ("disable", "slow", "disabled")):
            again = await mcpproxy(proxy, "upstream", action, name)
            assert (
                again.returncode == 0 and again.stdout.strip() == f"{name}: already {state}; nothing changed"
            )
        assert proxy.config_path.read_text() == unchanged
        nothing_pending = await mcpproxy(proxy, "upstream", "reject", "echo")
        assert nothing_pending.returncode == 1 and "has no pending change to reject" in nothing_pending.stderr


async def test_secrets_set_without_a_terminal_says_how_to_pass_the_value(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, []) as proxy:
        result = await mcpproxy(proxy, "secrets", "set", "gh_token")
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            "mcpproxy: no terminal to type the value of gh_token on: pipe it with --from-stdin, or name a "
            "variable that holds it with --from-env VAR"
        ]
        assert "Warning" not in result.stderr and "Traceback" not in result.stderr


async def test_doctor_counts_in_words_and_names_what_to_check_when_docker_is_missing(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        nowhere = f"unix://{tmp_path}/no-docker.sock"
        report = await mcpproxy(proxy, "doctor", "-o", "json", env={"DOCKER_HOST": nowhere})
        checks = {check["name"]: check for check in json.loads(report.stdout)["checks"]}
        assert checks["config"]["detail"].endswith("is valid (1 server)")
        assert checks["docker"]["detail"] == (
            f"not available: no engine socket at {nowhere} (is dockerd running? is DOCKER_HOST right?)"
        )


async def test_activity_watch_prints_one_json_object_per_call(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        watched: list[subprocess.CompletedProcess[str]] = []

        async def watch() -> None:
            watched.append(await mcpproxy(proxy, "activity", "watch", "-o", "json", "--count", "2"))

        with trio.fail_after(WATCH_DEADLINE_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                # The watcher subscribes at some point: calls go on until it has seen two.
                async with proxy.mcp("/mcp/all") as session:
                    while not watched:
                        await session.call_tool("echo__echo", {"message": "seen"})
                        await trio.sleep(0.1)
        result = watched[0]
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 2
        for line in lines:
            call = json.loads(line)
            assert (call["server"], call["tool"], call["status"]) == ("echo", "echo", "ok")
