"""`mcpproxy serve` starting beside another proxy, and the other commands finding the proxy that runs.

Every command is the real `mcpproxy` CLI in a subprocess; the proxies are real.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import trio

from tests.proxyctl import PYTHON, echo_server, free_port, running_proxy, write_config

pytestmark = pytest.mark.system

CLI = str(Path(PYTHON).parent / "mcpproxy")
CLI_DEADLINE_S = 60.0
LOG_DEADLINE_S = 30.0


async def mcpproxy(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("MCPPROXY_URL", "MCPPROXY_API_KEY")}
    with trio.fail_after(CLI_DEADLINE_S):
        done = await trio.run_process(
            [CLI, *argv],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**environment, **(env or {})},
        )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


async def printed(log: Path, prefix: str) -> str:
    """The first line of `log` (serve's stdout and stderr) that starts with `prefix`."""
    with trio.fail_after(LOG_DEADLINE_S):
        while True:
            for line in log.read_text().splitlines():
                if line.startswith(prefix):
                    return line
            await trio.sleep(0.05)


def subdir(parent: Path, name: str) -> Path:
    (parent / name).mkdir()
    return parent / name


def upstream_names(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [s["name"] for s in json.loads(result.stdout)]


async def test_a_second_serve_on_the_same_data_dir_or_port_says_so_in_one_line_and_prints_nothing_else(
    tmp_path: Path,
) -> None:
    async with running_proxy(subdir(tmp_path, "first"), [echo_server()]) as first:
        await printed(tmp_path / "first" / "proxy.log", "mcpproxy ready")
        listen = f"127.0.0.1:{first.port}"
        same_dir = await mcpproxy(
            "serve", "--config", str(first.config_path), "--data-dir", str(first.data_dir), "--listen", listen
        )
        assert same_dir.returncode == 1
        assert same_dir.stdout == ""
        assert same_dir.stderr.splitlines() == [
            f"mcpproxy: another mcpproxy is already running with the data dir {first.data_dir} "
            f"(serving at {first.base_url}); stop it first or use --data-dir to run a second one"
        ]

        other = subdir(tmp_path, "second")
        config = write_config(other, [echo_server()])
        same_port = await mcpproxy(
            "serve", "--config", str(config), "--data-dir", str(other / "data"), "--listen", listen
        )
        assert same_port.returncode == 1
        assert same_port.stdout == ""
        assert same_port.stderr.splitlines() == [
            f"mcpproxy: cannot listen on {listen}: Address already in use; stop what listens there "
            "or choose another address with --listen HOST:PORT"
        ]
        elsewhere = await mcpproxy(
            "serve", "--config", str(config), "--data-dir", str(other / "data"), "--listen", "192.0.2.7:8080"
        )
        assert elsewhere.returncode == 1 and elsewhere.stdout == ""
        assert elsewhere.stderr.splitlines() == [  # 192.0.2.0/24 is TEST-NET-1: no machine's address
            "mcpproxy: cannot listen on 192.0.2.7:8080: Cannot assign requested address; choose another "
            "address with --listen HOST:PORT"
        ]
        # The first proxy is untouched.
        assert (await first.servers())["echo"]["state"] in ("starting", "running")


async def test_serve_names_where_the_api_key_comes_from(tmp_path: Path) -> None:
    async with running_proxy(subdir(tmp_path, "file"), []):
        line = await printed(tmp_path / "file" / "proxy.log", "  REST API")
        assert line.endswith(f"(API key in {tmp_path / 'file' / 'mcp_config.json'})")
    async with running_proxy(
        subdir(tmp_path, "env"), [], env={"MCPPROXY_API_KEY": "from-the-environment-0123"}
    ):
        line = await printed(tmp_path / "env" / "proxy.log", "  REST API")
        assert line.endswith("(API key from $MCPPROXY_API_KEY)")
    async with running_proxy(subdir(tmp_path, "none"), [], api_key="") as proxy:
        line = await printed(tmp_path / "none" / "proxy.log", "  REST API")
        assert line.endswith("(API key generated for this run, printed above)")
        generated = await printed(tmp_path / "none" / "proxy.log", "mcpproxy: ")
        assert "has no api_key; using " in generated
        # The commands find that run's key where they find its address: no --api-key needed.
        listed = await mcpproxy(
            "upstream",
            "list",
            "-o",
            "json",
            "--config",
            str(proxy.config_path),
            "--data-dir",
            str(proxy.data_dir),
        )
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr


async def test_commands_find_the_proxy_that_serves_the_config_without_url_and_honour_url_anywhere(
    tmp_path: Path,
) -> None:
    # The file says port 0 and keeps its data dir apart: only the run file can tell where it listens.
    data_dir = tmp_path / "data"
    async with running_proxy(tmp_path, [echo_server()], data_dir=str(data_dir)) as proxy:
        config = str(proxy.config_path)
        assert upstream_names(await mcpproxy("upstream", "list", "-o", "json", "--config", config)) == [
            "echo"
        ]
        # --data-dir names the proxy as well as the config does (another config file, same data dir).
        other_config = str(write_config(subdir(tmp_path, "elsewhere"), []))
        by_dir = await mcpproxy(
            "upstream", "list", "-o", "json", "--config", other_config, "--data-dir", str(data_dir)
        )
        assert upstream_names(by_dir) == ["echo"]

        # --url before the command, after it, and $MCPPROXY_URL; after the command wins.
        url = proxy.base_url
        before = await mcpproxy("--url", url, "upstream", "list", "-o", "json", "--config", other_config)
        assert upstream_names(before) == ["echo"]
        from_env = await mcpproxy(
            "upstream", "list", "-o", "json", "--config", other_config, env={"MCPPROXY_URL": url}
        )
        assert upstream_names(from_env) == ["echo"]
        nowhere = f"http://127.0.0.1:{free_port()}"
        overridden = await mcpproxy(
            "--url", nowhere, "upstream", "list", "-o", "json", "--config", config, "--url", url
        )
        assert upstream_names(overridden) == ["echo"]
        wrong = await mcpproxy("upstream", "list", "--config", config, env={"MCPPROXY_URL": nowhere})
        assert wrong.returncode == 3
        assert f"no proxy is running at {nowhere} ($MCPPROXY_URL)" in wrong.stderr
    # Stopped: the run file is gone, and the message names the address it tried and why.
    assert not (data_dir / "run" / "gateway.json").exists()
    stopped = await mcpproxy("status", "--config", config)
    assert stopped.returncode == 3
    assert stopped.stderr.startswith(
        f"mcpproxy: no proxy is running at http://127.0.0.1:0 (`listen` in {config})"
    )
