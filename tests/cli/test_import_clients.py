"""`mcpproxy import` reads every client's file as that client writes it (tests/fixtures/clients)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest

from cli.import_cmd import candidates_of, convert_entry, read_config

FIXTURES: Final = Path(__file__).resolve().parent.parent / "fixtures" / "clients"


def servers_of(fixture: str, client: str | None = None) -> tuple[str, dict[str, Any]]:
    fmt, found = candidates_of(read_config(FIXTURES / fixture), client)
    assert all(c.server is not None for c in found), [c.skip for c in found]
    return fmt, {c.name: c.server for c in found}


@pytest.mark.parametrize(
    ("fixture", "fmt", "names"),
    [
        ("claude_desktop_config.json", "claude", {"filesystem", "memory"}),
        ("claude.json", "claude", {"sentry", "git"}),
        ("project.mcp.json", "claude", {"playwright"}),
        ("cursor_mcp.json", "claude", {"github", "time"}),
        ("vscode_mcp.json", "vscode", {"github", "perplexity"}),
        ("windsurf_mcp_config.json", "claude", {"brave-search", "docs"}),
        ("codex_config.toml", "codex", {"context7", "docs"}),
        ("gemini_settings.json", "claude", {"github", "sqlite"}),
    ],
)
def test_every_clients_file_is_recognized_by_its_content(fixture: str, fmt: str, names: set[str]) -> None:
    found_fmt, servers = servers_of(fixture)
    assert found_fmt == fmt and set(servers) == names


def test_codex_tables_become_servers_with_their_headers_and_timeouts() -> None:
    _fmt, servers = servers_of("codex_config.toml", "codex")
    assert servers["context7"] == {
        "name": "context7",
        "command": "npx",
        "args": ["-y", "@upstash/context7-mcp"],
    }
    assert servers["docs"]["url"] == "https://docs.example.com/mcp"
    assert servers["docs"]["headers"] == {"Authorization": "Bearer ${env:DOCS_TOKEN}"}
    found = convert_entry(
        "x", {"url": "https://x/mcp", "http_headers": {"X-A": "b"}, "startup_timeout_sec": 20}
    )
    assert found.server == {
        "name": "x",
        "url": "https://x/mcp",
        "headers": {"X-A": "b"},
        "init_timeout": "20s",
    }


def test_gemini_http_url_is_streamable_http_and_its_url_is_sse() -> None:
    _fmt, servers = servers_of("gemini_settings.json", "gemini")
    assert (
        servers["github"]["protocol"] == "http"
        and servers["github"]["url"] == "https://api.githubcopilot.com/mcp/"
    )
    assert servers["sqlite"]["working_dir"] == "/home/me"
    assert convert_entry("old", {"url": "http://h/sse"}, "gemini").server == {
        "name": "old",
        "url": "http://h/sse",
        "protocol": "sse",
    }


def test_windsurf_server_url_and_disabled_flag_are_read() -> None:
    _fmt, servers = servers_of("windsurf_mcp_config.json", "windsurf")
    assert servers["docs"]["url"] == "https://docs.example.com/mcp"
    assert "enabled" not in servers["brave-search"]  # disabled: false


def test_bare_variables_become_env_references_and_say_so() -> None:
    found = convert_entry("gh", {"url": "https://x", "headers": {"Authorization": "Bearer ${GITHUB_PAT}"}})
    assert found.server is not None
    assert found.server["headers"] == {"Authorization": "Bearer ${env:GITHUB_PAT}"}
    assert any("${GITHUB_PAT}" in note for note in found.notes)


def test_vscode_jsonc_comments_and_trailing_commas_are_read() -> None:
    _fmt, servers = servers_of("vscode_mcp.json", "vscode")
    assert servers["perplexity"]["env"] == {"PERPLEXITY_API_KEY": "${input:perplexity-key}"}


def test_a_toml_file_without_the_suffix_is_still_read(tmp_path: Path) -> None:
    odd = tmp_path / "codex.conf"
    odd.write_text((FIXTURES / "codex_config.toml").read_text())
    assert candidates_of(read_config(odd))[0] == "codex"
