"""The `mcpproxy` command line as a user runs it: a real subprocess against a real proxy."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.proxyctl import API_KEY, PYTHON, SERVERS, Proxy, echo_server, free_port, running_proxy

pytestmark = pytest.mark.system

CLI = str(Path(PYTHON).parent / "mcpproxy")
CLI_TIMEOUT_S = 90.0
EFFECT_TIMEOUT_S = 45.0


async def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    with trio.fail_after(CLI_TIMEOUT_S):
        done = await trio.run_process(
            [CLI, *argv],
            stdin=stdin.encode() if stdin is not None else b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


async def cli(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `mcpproxy ARGS` against `proxy` (its options go before a `--`, if there is one)."""
    target = ["--config", str(proxy.config_path), "--data-dir", str(proxy.data_dir), "--url", proxy.base_url]
    if "--" in args:
        cut = args.index("--")
        return await run(*args[:cut], *target, *args[cut:])
    return await run(*args, *target)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def disk_server(proxy: Proxy, name: str) -> dict[str, Any]:
    return next(s for s in json.loads(proxy.config_path.read_text())["mcpServers"] if s["name"] == name)


def backup_server(proxy: Proxy, name: str) -> dict[str, Any]:
    backup = proxy.config_path.with_name(proxy.config_path.name + ".bak")
    return next(s for s in json.loads(backup.read_text())["mcpServers"] if s["name"] == name)


async def eventually(
    proxy: Proxy, tool: str, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Call `tool` through `mcpproxy tools call` until its JSON text satisfies `check`."""
    seen: Any = None
    with trio.move_on_after(EFFECT_TIMEOUT_S):
        while True:
            result = await cli(proxy, "tools", "call", tool, "-o", "json")
            if result.returncode == 0:
                seen = json.loads(json.loads(result.stdout)["content"][0]["text"])
                if check(seen):
                    return dict(seen)
            else:
                seen = result.stderr
            await trio.sleep(0.2)
    raise AssertionError(f"{what}: not seen within {EFFECT_TIMEOUT_S}s; last: {seen}")


@contextmanager
def headers_upstream() -> Iterator[str]:
    """Our HTTP MCP server that reports the headers it receives; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, str(SERVERS / "headers_server.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def test_the_seeds_patch_examples_reach_the_file_and_the_upstreams(tmp_path: Path) -> None:
    with headers_upstream() as url:
        servers = [
            {
                "name": "synapbus",
                "url": url,
                "protocol": "http",
                "headers": {"Authorization": "Bearer old-token", "X-Stale": "1", "X-Old": "o"},
                "allow_secret_echo": True,  # the headers tool shows the rotated token (else: ••••)
            },
            echo_server(
                "obsidian-pilot", env={"ECHO_SERVER_REPORT_ENV": "LOG_LEVEL,OBSOLETE", "OBSOLETE": "yes"}
            ),
        ]
        async with running_proxy(tmp_path, servers) as proxy:
            await proxy.wait_for("synapbus", "running")
            await proxy.wait_for("obsidian-pilot", "running")

            def headers_now(check: Callable[[dict[str, str]], bool], what: str) -> Any:
                return eventually(
                    proxy,
                    "synapbus:headers",
                    lambda seen: check({k.lower(): v for k, v in seen.items()}),
                    what,
                )

            # mcpproxy upstream patch synapbus --header "X-Trace: on"
            done = ok(await cli(proxy, "upstream", "patch", "synapbus", "--header", "X-Trace: on"))
            assert "X-Trace" in done.stdout
            assert disk_server(proxy, "synapbus")["headers"] == {
                "Authorization": "Bearer old-token",
                "X-Stale": "1",
                "X-Old": "o",
                "X-Trace": "on",
            }
            await headers_now(lambda h: h.get("x-trace") == "on", "X-Trace: on")

            # mcpproxy upstream patch synapbus --header "Authorization: Bearer new-token"
            rotated = ok(
                await cli(
                    proxy, "upstream", "patch", "synapbus", "--header", "Authorization: Bearer new-token"
                )
            )
            assert "new-token" not in rotated.stdout + rotated.stderr
            assert disk_server(proxy, "synapbus")["headers"]["Authorization"] == "Bearer new-token"
            await headers_now(lambda h: h.get("authorization") == "Bearer new-token", "rotated token")

            # mcpproxy upstream patch synapbus --header-remove "X-Stale"
            ok(await cli(proxy, "upstream", "patch", "synapbus", "--header-remove", "X-Stale"))
            assert "X-Stale" not in disk_server(proxy, "synapbus")["headers"]
            await headers_now(lambda h: "x-stale" not in h and h.get("x-trace") == "on", "X-Stale gone")

            # mcpproxy upstream patch synapbus --header "X-New: v" --header-remove "X-Old"  (one round trip)
            mixed = ok(
                await cli(
                    proxy,
                    "upstream",
                    "patch",
                    "synapbus",
                    "--header",
                    "X-New: v",
                    "--header-remove",
                    "X-Old",
                    "-o",
                    "json",
                )
            )
            shown = json.loads(mixed.stdout)
            assert shown["headers"]["X-New"] == "v" and "X-Old" not in shown["headers"]
            assert shown["headers"]["Authorization"] == "••••en (16 chars)"  # masked, as REST shows it
            after, before = disk_server(proxy, "synapbus"), backup_server(proxy, "synapbus")
            assert after["headers"] == {"Authorization": "Bearer new-token", "X-Trace": "on", "X-New": "v"}
            # The file was written once: the backup is the state before both changes, not between them.
            assert "X-Old" in before["headers"] and "X-New" not in before["headers"]
            await headers_now(lambda h: h.get("x-new") == "v" and "x-old" not in h, "X-New set, X-Old gone")

            # mcpproxy upstream patch obsidian-pilot --env "LOG_LEVEL=debug"
            ok(await cli(proxy, "upstream", "patch", "obsidian-pilot", "--env", "LOG_LEVEL=debug"))
            assert disk_server(proxy, "obsidian-pilot")["env"]["LOG_LEVEL"] == "debug"
            await eventually(
                proxy,
                "obsidian-pilot:whoami",
                lambda seen: seen["env"] == {"LOG_LEVEL": "debug", "OBSOLETE": "yes"},
                "LOG_LEVEL=debug in the upstream's environment",
            )

            # mcpproxy upstream patch obsidian-pilot --env-remove "OBSOLETE"
            ok(await cli(proxy, "upstream", "patch", "obsidian-pilot", "--env-remove", "OBSOLETE"))
            assert "OBSOLETE" not in disk_server(proxy, "obsidian-pilot")["env"]
            await eventually(
                proxy,
                "obsidian-pilot:whoami",
                lambda seen: seen["env"] == {"LOG_LEVEL": "debug", "OBSOLETE": None},
                "OBSOLETE gone from the upstream's environment",
            )


async def test_json_output_exit_codes_tools_logs_and_restart_wait(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")

        listed = json.loads(ok(await cli(proxy, "upstream", "list", "-o", "json")).stdout)
        assert [(s["name"], s["state"], s["tool_count"]) for s in listed] == [("echo", "running", 6)]
        status = json.loads(ok(await cli(proxy, "status", "-o", "json")).stdout)
        assert status["servers_total"] == 1 and status["servers"][0]["name"] == "echo"
        table = ok(await cli(proxy, "upstream", "list")).stdout
        assert "echo" in table and "running" in table

        # unknown names: 4; bad usage: 2
        for argv in (
            ("upstream", "show", "nope"),
            ("upstream", "restart", "nope"),
            ("upstream", "patch", "nope", "--env", "A=1"),
            ("upstream", "logs", "nope"),
            ("tools", "call", "nope:echo"),
            ("tools", "call", "echo:nope"),
        ):
            result = await cli(proxy, *argv)
            assert result.returncode == 4, (argv, result.stderr)
            assert result.stdout == "" and "nope" in result.stderr
        for argv in (
            ("upstream", "patch", "echo"),
            ("upstream", "patch", "echo", "--header", "no colon here"),
            ("tools", "call", "echo:add", "--args", "not json"),
            ("upstream", "frobnicate"),
        ):
            assert (await cli(proxy, *argv)).returncode == 2, argv

        # tools: search and call go through /mcp; the variant follows the tool's annotations
        hits = json.loads(ok(await cli(proxy, "tools", "search", "add two numbers", "-o", "json")).stdout)
        assert hits[0]["name"] == "echo:add" and hits[0]["call_with"] == "call_tool_read"
        summed = json.loads(
            ok(
                await cli(proxy, "tools", "call", "echo:add", "--args", '{"a": 2, "b": 3}', "-o", "json")
            ).stdout
        )
        assert summed["structuredContent"] == {"sum": 5} and not summed.get("isError")
        assert (
            ok(await cli(proxy, "tools", "call", "echo:delete_everything")).stdout.strip()
            == "nothing deleted"
        )
        failed = await cli(proxy, "tools", "call", "echo:fail", "--args", '{"message": "boom"}')
        assert failed.returncode == 1 and "boom" in failed.stderr
        tools = json.loads(ok(await cli(proxy, "tools", "list", "echo", "-o", "json")).stdout)
        assert {t["name"] for t in tools} >= {"echo", "add", "delete_everything"}

        logs = json.loads(
            ok(await cli(proxy, "upstream", "logs", "echo", "--tail", "20", "-o", "json")).stdout
        )
        assert "echo_server ready" in logs["lines"]

        # restart --wait: back to running, with progress on stderr and a fresh upstream
        pid_before = (await proxy.servers())["echo"]["upstream_pid"]
        restarted = ok(await cli(proxy, "upstream", "restart", "echo", "--wait", "--timeout", "60"))
        assert "echo: running" in restarted.stdout and "stopping" in restarted.stderr
        now = (await proxy.servers())["echo"]
        assert now["state"] == "running" and now["upstream_pid"] != pid_before

        # add --wait, disable, remove
        added = await cli(
            proxy, "upstream", "add", "second", "--wait", "--", PYTHON, str(SERVERS / "echo_server.py")
        )
        ok(added)
        assert disk_server(proxy, "second")["command"] == PYTHON
        assert (await proxy.servers())["second"]["state"] == "running"
        ok(await cli(proxy, "upstream", "disable", "second"))
        await proxy.wait_for("second", "stopped")
        assert disk_server(proxy, "second")["enabled"] is False
        removed = json.loads(
            ok(await cli(proxy, "upstream", "remove", "second", "--yes", "-o", "json")).stdout
        )
        assert removed == {"name": "second", "removed": True}
        assert [s["name"] for s in json.loads(proxy.config_path.read_text())["mcpServers"]] == ["echo"]


async def test_without_a_proxy_commands_say_how_to_start_one_and_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "mcp_config.json"
    config.write_text(json.dumps({"listen": "127.0.0.1:0", "api_key": API_KEY, "mcpServers": []}))
    nowhere = f"http://127.0.0.1:{free_port()}"
    for argv in (
        ("status",),
        ("upstream", "list", "-o", "json"),
        ("upstream", "restart", "x", "--wait"),
        ("tools", "search", "anything"),
        ("doctor",),
    ):
        result = await run(*argv, "--config", str(config), "--url", nowhere)
        assert result.returncode == 3, (argv, result.stdout, result.stderr)
        if argv[0] != "doctor":
            assert result.stdout == ""
            assert result.stderr.count("\n") == 1 and "mcpproxy serve" in result.stderr
    doctor = await run("doctor", "-o", "json", "--config", str(config), "--url", nowhere)
    report = json.loads(doctor.stdout)
    proxy_check = next(c for c in report["checks"] if c["name"] == "proxy")
    assert proxy_check["level"] == "fail" and "mcpproxy serve" in proxy_check["fix"]


async def test_import_of_a_claude_desktop_file_quarantines_and_dry_run_adds_nothing(tmp_path: Path) -> None:
    claude = tmp_path / "claude_desktop_config.json"
    echo = echo_server()
    claude.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "echo": {"command": "something-else"},
                    "notes": {
                        "command": echo["command"],
                        "args": echo["args"],
                        "env": {"API_TOKEN": "tok-123456"},
                    },
                    "helper": {"command": echo["command"], "args": echo["args"]},
                }
            }
        )
    )
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        before = proxy.config_path.read_bytes()

        dry = json.loads(ok(await cli(proxy, "import", str(claude), "--dry-run", "-o", "json")).stdout)
        assert dry["dry_run"] and dry["added"] == [] and sorted(dry["would_add"]) == ["helper", "notes"]
        assert {"name": "echo", "reason": "already exists"} in dry["skipped"]
        assert "tok-123456" not in json.dumps(dry)
        assert proxy.config_path.read_bytes() == before
        assert set(await proxy.servers()) == {"echo"}

        done = ok(await cli(proxy, "import", str(claude)))
        assert "already exists" in done.stdout and "approve" in done.stdout
        for name in ("notes", "helper"):
            assert disk_server(proxy, name)["quarantined"] is True
            await proxy.wait_for(name, "stopped", quarantined=True)
        assert disk_server(proxy, "notes")["env"] == {"API_TOKEN": "tok-123456"}
        assert disk_server(proxy, "echo")["command"] == echo["command"]  # the existing one is untouched

        approved = ok(await cli(proxy, "upstream", "approve", "helper", "--wait"))
        assert "helper: running" in approved.stdout
        assert disk_server(proxy, "helper")["quarantined"] is False

        trusted_file = tmp_path / "trusted.json"
        trusted_file.write_text(
            json.dumps({"mcpServers": {"trusted": {"command": echo["command"], "args": echo["args"]}}})
        )
        ok(await cli(proxy, "import", str(trusted_file), "--trust"))
        assert disk_server(proxy, "trusted")["quarantined"] is False
        await proxy.wait_for("trusted", "running")


async def test_doctor_names_why_a_broken_server_fails_and_what_to_do(tmp_path: Path) -> None:
    servers = [echo_server(), {"name": "broken", "command": "/nonexistent"}]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("echo", "running")
        await proxy.wait_for("broken", "backoff")

        doctor = await cli(proxy, "doctor")
        assert doctor.returncode == 1, doctor.stderr
        line = next(x for x in doctor.stdout.splitlines() if "server broken" in x)
        assert "/nonexistent" in line  # its state varies as it retries: backoff, starting, exited
        assert "fix:" in doctor.stdout and "upstream patch broken --command" in doctor.stdout
        assert "docker" in doctor.stdout  # available or "not available: <reason>", never a failure

        report = json.loads((await cli(proxy, "doctor", "-o", "json")).stdout)
        checks = {c["name"]: c for c in report["checks"]}
        assert report["ok"] is False
        assert checks["config"]["level"] == "ok" and checks["proxy"]["level"] == "ok"
        assert checks["secrets"]["detail"].startswith("backend: ")
        assert checks["docker"]["level"] in ("ok", "info")
        assert checks["server echo"]["level"] == "ok"
        assert (
            checks["server broken"]["level"] == "fail" and "/nonexistent" in checks["server broken"]["detail"]
        )

        waited = await cli(proxy, "upstream", "restart", "broken", "--wait", "--timeout", "30")
        assert waited.returncode == 1 and "/nonexistent" in waited.stderr
