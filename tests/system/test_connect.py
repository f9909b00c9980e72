"""`mcpproxy connect` / `disconnect` as a user runs them: the real CLI, a real proxy, a temp HOME
holding each client's config file as that client writes it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import trio

from services.client_configs import AUTH_ENV, client_file, parse
from tests.proxyctl import Proxy, echo_server, running_proxy
from tests.system.test_cli import CLI, CLI_TIMEOUT_S

pytestmark = pytest.mark.system

FIXTURES: Final = Path(__file__).resolve().parent.parent / "fixtures" / "clients"
PLACES: Final = {
    "claude-desktop": (".config/Claude/claude_desktop_config.json", "claude_desktop_config.json"),
    "claude-code": (".claude.json", "claude.json"),
    "cursor": (".cursor/mcp.json", "cursor_mcp.json"),
    "vscode": (".config/Code/User/mcp.json", "vscode_mcp.json"),
    "windsurf": (".codeium/windsurf/mcp_config.json", "windsurf_mcp_config.json"),
    "codex": (".codex/config.toml", "codex_config.toml"),
    "gemini": (".gemini/settings.json", "gemini_settings.json"),
}
PROFILES: Final = [{"name": "coding", "servers": ["echo"]}]


def make_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    for place, fixture in PLACES.values():
        (home / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / fixture, home / place)
    return home


async def cli_at(home: Path, proxy: Proxy, *args: str) -> subprocess.CompletedProcess[str]:
    """`mcpproxy ARGS` with HOME at `home` (and no variable that would lead a client elsewhere)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "CODEX_HOME", "CLAUDE_CONFIG_DIR")
    }
    env["HOME"] = str(home)
    target = ["--config", str(proxy.config_path), "--data-dir", str(proxy.data_dir), "--url", proxy.base_url]
    with trio.fail_after(CLI_TIMEOUT_S):
        done = await trio.run_process(
            [CLI, *args, *target], capture_stdout=True, capture_stderr=True, check=False, env=env, cwd=home
        )
    result = subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )
    assert result.returncode == 0, f"{args}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def credential_in(client: str, path: Path) -> str:
    file = client_file(client)
    entry = parse(None, path.read_text(), toml=file.toml)[file.kind.container]["mcpproxy"]
    if client == "claude-desktop":
        value = entry["env"][AUTH_ENV]
    else:
        value = entry["http_headers" if client == "codex" else "headers"]["Authorization"]
    assert value.startswith("Bearer mcpp_")
    return str(value.removeprefix("Bearer "))


async def client_names(proxy: Proxy) -> dict[str, str]:
    response = await proxy.get("/api/v1/clients")
    return {c["name"]: c["profile"] for c in response.json()["data"]["clients"]}


async def test_connect_all_gives_each_client_its_own_credential_and_disconnect_restores_every_byte(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path)
    async with running_proxy(tmp_path, [echo_server()], profiles=PROFILES) as proxy:
        await proxy.wait_for("echo", "running")
        dry = json.loads((await cli_at(home, proxy, "connect", "--all", "--dry-run", "-o", "json")).stdout)
        assert {d["client"] for d in dry} == set(PLACES) and all("+" in d["diff"] for d in dry)
        assert all((home / p).read_bytes() == (FIXTURES / f).read_bytes() for p, f in PLACES.values())
        assert await client_names(proxy) == {}

        done = json.loads(
            (await cli_at(home, proxy, "connect", "--all", "--profile", "coding", "-o", "json")).stdout
        )
        assert all(d["changed"] for d in done) and all("<credential>" in d["diff"] for d in done)
        assert await client_names(proxy) == dict.fromkeys(PLACES, "coding")
        credentials = {c: credential_in(c, home / place) for c, (place, _) in PLACES.items()}
        assert len(set(credentials.values())) == len(PLACES)
        assert proxy.api_key not in "".join((home / p).read_text() for p, _ in PLACES.values())
        for d in done:
            assert Path(d["backup"]).read_bytes() == (FIXTURES / PLACES[d["client"]][1]).read_bytes()
            assert stat.S_IMODE(Path(d["backup"]).stat().st_mode) == 0o600
            assert credentials[d["client"]] not in d["diff"]

        headers = {"Authorization": f"Bearer {credentials['cursor']}"}
        async with proxy.mcp("/mcp/all", headers=headers) as session:
            assert {t.name for t in (await session.list_tools()).tools} >= {"echo__echo"}

        listed = json.loads((await cli_at(home, proxy, "connect", "--list", "-o", "json")).stdout)
        assert {r["client"] for r in listed if r["connected"] and r["installed"]} == set(PLACES)

        for client, (place, fixture) in PLACES.items():
            await cli_at(home, proxy, "disconnect", client)
            assert (home / place).read_bytes() == (FIXTURES / fixture).read_bytes(), client
        assert await client_names(proxy) == {}


async def test_disconnect_after_the_client_changed_its_file_takes_out_only_our_entry(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    async with running_proxy(tmp_path, [echo_server()], profiles=PROFILES) as proxy:
        codex, vscode = home / PLACES["codex"][0], home / PLACES["vscode"][0]
        await cli_at(home, proxy, "connect", "codex", "--profile", "coding")
        await cli_at(home, proxy, "connect", "vscode")
        assert "headers" not in parse(None, vscode.read_text())["servers"]["mcpproxy"]  # no profile, no key
        codex.write_text(codex.read_text() + '\n[mcp_servers.added_later]\ncommand = "uvx"\n')
        vscode.write_text(
            vscode.read_text().replace('"theme"', '"theme"').replace("\t}\n}", '\t},\n\t"x": 1\n}')
        )

        await cli_at(home, proxy, "disconnect", "codex")
        await cli_at(home, proxy, "disconnect", "vscode")
        original: dict[str, Any] = parse(None, (FIXTURES / "codex_config.toml").read_text(), toml=True)
        original["mcp_servers"]["added_later"] = {"command": "uvx"}
        assert parse(None, codex.read_text(), toml=True) == original
        assert "# The docs server, over streamable HTTP" in codex.read_text()
        assert "mcpproxy" not in parse(None, vscode.read_text())["servers"]
        assert parse(None, vscode.read_text())["x"] == 1
        assert "/* Remote GitHub server */" in vscode.read_text()
        assert await client_names(proxy) == {}


async def test_a_file_connect_creates_is_private_and_disconnect_removes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = home / "src" / "app"
    project.mkdir(parents=True)
    async with running_proxy(tmp_path, [echo_server()], profiles=PROFILES) as proxy:
        await cli_at(
            home,
            proxy,
            "connect",
            "claude-code",
            "--scope",
            "project",
            "--project",
            str(project),
            "--profile",
            "coding",
        )
        created = project / ".mcp.json"
        assert stat.S_IMODE(created.stat().st_mode) == 0o600
        assert parse(None, created.read_text())["mcpServers"]["mcpproxy"]["type"] == "http"
        assert await client_names(proxy) == {"claude-code-project": "coding"}
        await cli_at(
            home, proxy, "disconnect", "claude-code", "--scope", "project", "--project", str(project)
        )
        assert not created.exists()
        assert await client_names(proxy) == {}
