"""The MCP clients' config files: our entry goes in and out, and nothing else in the file changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services import jsonc_text
from services.client_configs import (
    AUTH_ENV,
    ClientFile,
    client_file,
    parse,
    proxy_entry,
    read_servers,
    with_entry,
    without_entry,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "clients"
URL = "http://127.0.0.1:8080/mcp"
FIXTURE_OF = {
    "claude-desktop": "claude_desktop_config.json",
    "claude-code": "claude.json",
    "cursor": "cursor_mcp.json",
    "vscode": "vscode_mcp.json",
    "windsurf": "windsurf_mcp_config.json",
    "codex": "codex_config.toml",
    "gemini": "gemini_settings.json",
}


def fixture_file(client: str) -> tuple[ClientFile, str]:
    file = client_file(client)
    return ClientFile(file.kind, file.scope, FIXTURES / FIXTURE_OF[client]), (
        FIXTURES / FIXTURE_OF[client]
    ).read_text()


@pytest.mark.parametrize("client", sorted(FIXTURE_OF))
def test_each_client_file_gets_our_entry_and_gives_back_the_same_bytes(client: str) -> None:
    file, text = fixture_file(client)
    entry = proxy_entry(client, URL, "mcpp_secret")
    connected = with_entry(file, text, "mcpproxy", entry)

    servers = read_servers(file, connected)
    assert servers["mcpproxy"] == entry
    before, after = parse(file, text), parse(file, connected)
    after[file.kind.container].pop("mcpproxy")
    assert after == before  # every other server and setting as it was
    assert without_entry(file, connected, "mcpproxy", drop_container=False) == text


@pytest.mark.parametrize("client", sorted(FIXTURE_OF))
def test_comments_and_layout_outside_our_entry_are_kept(client: str) -> None:
    file, text = fixture_file(client)
    connected = with_entry(file, text, "mcpproxy", proxy_entry(client, URL, None))
    kept = [line for line in text.splitlines() if line.strip() not in ("", "{", "}")]
    lines = connected.splitlines()
    assert all(line in lines for line in kept)  # each line, its indentation and comments, still there


@pytest.mark.parametrize("client", sorted(FIXTURE_OF))
def test_a_file_without_servers_gets_them_and_loses_them_again(client: str) -> None:
    file, _ = fixture_file(client)
    text = 'model = "o3"\n' if file.toml else '{\n    "theme": "dark"\n}\n'
    connected = with_entry(file, text, "mcpproxy", proxy_entry(client, URL, None))
    assert read_servers(file, connected) == {"mcpproxy": proxy_entry(client, URL, None)}
    assert without_entry(file, connected, "mcpproxy", drop_container=True) == text


@pytest.mark.parametrize("client", sorted(FIXTURE_OF))
def test_an_empty_or_missing_file_becomes_one_with_just_our_entry(client: str) -> None:
    file, _ = fixture_file(client)
    created = with_entry(file, "", "mcpproxy", proxy_entry(client, URL, None))
    assert read_servers(file, created) == {"mcpproxy": proxy_entry(client, URL, None)}


def test_entries_speak_each_clients_dialect() -> None:
    assert proxy_entry("cursor", URL, None) == {"url": URL}
    assert proxy_entry("vscode", URL, "c") == {
        "type": "http",
        "url": URL,
        "headers": {"Authorization": "Bearer c"},
    }
    assert proxy_entry("windsurf", URL, None) == {"serverUrl": URL}
    assert proxy_entry("gemini", URL, None) == {"httpUrl": URL}
    assert proxy_entry("codex", URL, "c") == {"url": URL, "http_headers": {"Authorization": "Bearer c"}}
    assert proxy_entry("claude-code", URL, None) == {"type": "http", "url": URL}


def test_claude_desktops_bridge_keeps_the_credential_out_of_its_arguments() -> None:
    entry = proxy_entry("claude-desktop", URL, "mcpp_secret")
    assert entry["command"] == "npx" and entry["args"][:3] == ["-y", "mcp-remote", URL]
    assert "mcpp_secret" not in " ".join(entry["args"])
    assert entry["env"] == {AUTH_ENV: "Bearer mcpp_secret"}
    assert f"Authorization:${{{AUTH_ENV}}}" in entry["args"]
    remote = proxy_entry("claude-desktop", "http://10.0.0.5:8080/mcp", None)
    assert "--allow-http" in remote["args"]


def test_paths_follow_home_and_the_clients_own_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    env: dict[str, Any] = {}
    assert client_file("cursor", env=env).path == tmp_path / ".cursor" / "mcp.json"
    assert client_file("claude-code", env=env).path == tmp_path / ".claude.json"
    assert client_file("codex", env=env).path == tmp_path / ".codex" / "config.toml"
    assert client_file("codex", env={"CODEX_HOME": "/x"}).path == Path("/x/config.toml")
    assert client_file("gemini", env=env).path == tmp_path / ".gemini" / "settings.json"
    assert client_file("windsurf", env=env).path == tmp_path / ".codeium" / "windsurf" / "mcp_config.json"
    assert (
        client_file("vscode", "project", tmp_path / "app").path == tmp_path / "app" / ".vscode" / "mcp.json"
    )
    assert client_file("claude-code", "project", tmp_path).path == tmp_path / ".mcp.json"
    with pytest.raises(ValueError, match="no project config"):
        client_file("windsurf", "project")


def test_replacing_our_entry_touches_nothing_else() -> None:
    file, text = fixture_file("vscode")
    first = with_entry(file, text, "mcpproxy", proxy_entry("vscode", URL, "one"))
    second = with_entry(file, first, "mcpproxy", proxy_entry("vscode", URL, "two"))
    assert read_servers(file, second)["mcpproxy"]["headers"] == {"Authorization": "Bearer two"}
    assert without_entry(file, second, "mcpproxy", drop_container=False) == text


def test_jsonc_errors_name_the_line() -> None:
    with pytest.raises(jsonc_text.JsoncError, match="line 3"):
        jsonc_text.loads('{\n  "a": 1\n  "b": 2\n}')
    with pytest.raises(ValueError, match="invalid TOML"):
        parse(None, "[broken", toml=True)


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"mcpServers": {}}',
        '{"a": 1, "mcpServers": {"x": {}}}',
        '{\n  /* c */\n  "mcpServers": {\n  }\n}',
    ],
)
def test_one_line_and_empty_objects_round_trip(text: str) -> None:
    connected = jsonc_text.set_member(text, ("mcpServers",), "mcpproxy", {"url": URL})
    assert jsonc_text.loads(connected)["mcpServers"]["mcpproxy"] == {"url": URL}
    undone = jsonc_text.remove_member(connected, ("mcpServers",), "mcpproxy")
    if "mcpServers" not in jsonc_text.loads(text):
        undone = jsonc_text.remove_member(undone, (), "mcpServers")
    assert jsonc_text.loads(undone) == jsonc_text.loads(text)
    if "\n  }" not in text:
        assert undone == text
