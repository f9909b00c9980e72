"""Pure parts of `mcpproxy import` (reading other clients' files) and `mcpproxy doctor` (advice)."""

from __future__ import annotations

import pytest

from cli.doctor_cmd import server_check, suggest_fix
from cli.import_cmd import candidates_of, convert_entry, detect_format, plan, shown_command, shown_server

CLAUDE = {
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"],
            "env": {"GITHUB_TOKEN": "ghp_secret_value"},
        },
        "my server": {"command": "uvx", "args": ["thing"]},
        "cursor-remote": {"url": "https://api.example.com/mcp", "headers": {"X-Key": "k"}},
    }
}
VSCODE = {
    "inputs": [{"id": "token", "type": "promptString"}],
    "servers": {
        "github": {
            "type": "http",
            "url": "https://api.githubcopilot.com/mcp/",
            "headers": {"Authorization": "Bearer ${input:token}"},
        },
        "local": {
            "type": "stdio",
            "command": "node",
            "args": ["server.js"],
            "envFile": "${workspaceFolder}/.env",
        },
        "legacy": {"type": "sse", "url": "http://localhost:3000/sse"},
    },
}
MCPPROXY_GO = {
    "listen": ":8080",
    "mcpServers": [
        {"name": "gh", "url": "https://x/mcp", "protocol": "http", "enabled": True, "created": "2025-01-01"},
        {"name": "off", "command": "echo", "enabled": False, "quarantined": True},
    ],
}


def test_the_three_shapes_are_recognized() -> None:
    assert detect_format(CLAUDE) == "claude"
    assert detect_format(VSCODE) == "vscode"
    assert detect_format(MCPPROXY_GO) == "mcpproxy"
    with pytest.raises(ValueError, match="mcpServers"):
        detect_format({"something": 1})
    with pytest.raises(ValueError, match="mcpServers"):
        detect_format([1, 2])


def test_claude_desktop_and_cursor_entries_convert() -> None:
    fmt, found = candidates_of(CLAUDE)
    assert fmt == "claude"
    by_name = {c.name: c for c in found}
    assert by_name["filesystem"].server == {
        "name": "filesystem",
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me"],
        "env": {"GITHUB_TOKEN": "ghp_secret_value"},
    }
    assert by_name["my-server"].notes and "renamed" in by_name["my-server"].notes[0]
    assert by_name["cursor-remote"].server == {
        "name": "cursor-remote",
        "url": "https://api.example.com/mcp",
        "headers": {"X-Key": "k"},
    }


def test_vscode_types_become_protocols_and_unresolvable_variables_are_noted() -> None:
    _fmt, found = candidates_of(VSCODE)
    by_name = {c.name: c for c in found}
    assert by_name["github"].server is not None and by_name["github"].server["protocol"] == "http"
    assert any("${input:token}" in note for note in by_name["github"].notes)
    assert by_name["legacy"].server is not None and by_name["legacy"].server["protocol"] == "sse"
    local = by_name["local"]
    assert local.server == {"name": "local", "command": "node", "args": ["server.js"]}
    assert any("envFile" in note for note in local.notes)


def test_mcpproxy_go_lists_keep_known_fields_and_note_the_rest() -> None:
    _fmt, found = candidates_of(MCPPROXY_GO)
    gh, off = found
    assert gh.server == {"name": "gh", "url": "https://x/mcp", "protocol": "http"}
    assert any("created" in note for note in gh.notes)
    assert off.server == {"name": "off", "command": "echo", "enabled": False, "quarantined": True}


def test_entries_without_command_or_url_are_skipped_with_a_reason() -> None:
    assert convert_entry("x", {"env": {}}).skip == "no command and no url"
    assert convert_entry("x", {"command": "a", "args": "not a list"}).skip is not None
    assert convert_entry("x", "nonsense").skip == "not an object"


def test_the_plan_quarantines_unless_trusted_and_skips_existing_and_duplicate_names() -> None:
    _fmt, found = candidates_of(
        {"mcpServers": {"a": {"command": "x"}, "b": {"command": "y"}, "b!": {"command": "z"}}}
    )
    planned = plan(found, {"a"}, trust=False)
    assert [c.skip for c in planned] == ["already exists", None, "appears twice in the file"]
    assert planned[1].server is not None and planned[1].server["quarantined"] is True
    _fmt, found = candidates_of({"mcpServers": {"b": {"command": "y"}}})
    trusted = plan(found, set(), trust=True)
    assert trusted[0].server is not None and trusted[0].server["quarantined"] is False


def test_what_import_shows_masks_secret_values() -> None:
    server = {
        "name": "s",
        "command": "tool",
        "args": ["--api-key=supersecretvalue", "--verbose"],
        "env": {"GITHUB_TOKEN": "ghp_secret_value", "LOG": "debug"},
    }
    assert "supersecretvalue" not in shown_command(server)
    assert "--verbose" in shown_command(server)
    shown = shown_server(server)
    assert "ghp_secret_value" not in str(shown) and "supersecretvalue" not in str(shown)
    assert shown["env"]["LOG"] == "debug"
    assert "user:pw" not in shown_command({"url": "https://user:pw@host/mcp"})


def broken(**extra: object) -> dict[str, object]:
    return {"name": "b", "state": "backoff", "enabled": True, "quarantined": False, **extra}


def test_advice_follows_the_last_error() -> None:
    missing = suggest_fix(broken(last_error="command not found: '/nonexistent' (check `command` and PATH)"))
    assert missing is not None and "--command" in missing
    assert "secrets set gh_token" in str(suggest_fix(broken(last_error="missing ${keyring:gh_token}")))
    assert "export API" in str(suggest_fix(broken(last_error="${env:API} is not set")))
    assert "Authorization" in str(suggest_fix(broken(last_error="HTTP 401 Unauthorized from https://x")))
    assert "approve b" in str(suggest_fix(broken(quarantined=True, state="stopped")))
    assert "enable b" in str(suggest_fix(broken(enabled=False, state="stopped")))
    assert "logs b" in str(suggest_fix(broken(last_error="something odd")))


def test_a_server_check_names_the_state_and_the_reason() -> None:
    check = server_check(broken(state="fatal", last_error="boom"))
    assert check.level == "fail" and "fatal" in check.detail and "boom" in check.detail
    running = server_check({"name": "r", "state": "running", "tool_count": 3})
    assert running.level == "ok" and "3 tools" in running.detail
    assert server_check(broken(quarantined=True, state="stopped")).level == "warn"


def test_a_server_between_two_failed_attempts_still_fails_the_check() -> None:
    check = server_check(broken(state="starting", restarts=2, last_error="command not found: '/x'"))
    assert check.level == "fail" and "/x" in check.detail and check.fix is not None
    assert server_check(broken(state="starting", restarts=0, last_error=None)).level == "info"
