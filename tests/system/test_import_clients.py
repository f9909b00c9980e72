"""`mcpproxy import --from CLIENT` and `connect --move` against a real proxy, with a temp HOME
holding each client's file in its default place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.client_configs import parse
from tests.proxyctl import echo_server, running_proxy
from tests.system.test_connect import FIXTURES, PLACES, cli_at, make_home

pytestmark = pytest.mark.system

EXPECTED = {
    "claude-desktop": {"filesystem", "memory"},
    "claude-code": {"sentry", "git"},
    "cursor": {"github", "time"},
    "vscode": {"github", "perplexity"},
    "windsurf": {"brave-search", "docs"},
    "codex": {"context7", "docs"},
    "gemini": {"github", "sqlite"},
}


async def test_import_from_each_client_finds_its_file_and_adds_its_servers_quarantined(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path)
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        for client, names in EXPECTED.items():
            dry = json.loads(
                (await cli_at(home, proxy, "import", "--from", client, "--dry-run", "-o", "json")).stdout
            )
            assert set(dry["would_add"]) == names, client
        assert set(await proxy.servers()) == {"echo"}

        done = json.loads((await cli_at(home, proxy, "import", "--from", "codex", "-o", "json")).stdout)
        assert done["format"] == "codex" and set(done["added"]) == {"context7", "docs"}
        servers = await proxy.servers()
        assert servers["docs"]["quarantined"] is True and servers["context7"]["quarantined"] is True
        gemini = json.loads((await cli_at(home, proxy, "import", "--from", "gemini", "-o", "json")).stdout)
        assert gemini["added"] == ["github", "sqlite"]
        assert all((home / p).read_bytes() == (FIXTURES / f).read_bytes() for p, f in PLACES.values())


async def test_connect_move_leaves_the_client_only_the_proxy_and_disconnect_brings_its_servers_back(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path)
    cursor = home / PLACES["cursor"][0]
    async with running_proxy(tmp_path, [echo_server(name="time")]) as proxy:
        moved = json.loads((await cli_at(home, proxy, "connect", "cursor", "--move", "-o", "json")).stdout)[0]
        assert moved["moved"] == ["github"] and "time" in moved["stayed"]  # the proxy has a `time` already
        assert set(parse(None, cursor.read_text())["mcpServers"]) == {"mcpproxy", "time"}
        servers = await proxy.servers()
        assert servers["github"]["quarantined"] is True
        assert servers["time"]["command"] != "uvx"  # the proxy's own server is untouched

        await cli_at(home, proxy, "disconnect", "cursor")
        assert cursor.read_bytes() == (FIXTURES / "cursor_mcp.json").read_bytes()
