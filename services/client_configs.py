"""The MCP clients' own config files: where each keeps its servers, in which shape, and how one
entry is put in or taken out with the rest of the file left as it was.

Targeted (see README, Connect your client): Claude Desktop (stdio only, so through `mcp-remote`),
Claude Code 1.x/2.x (`~/.claude.json`, `$CLAUDE_CONFIG_DIR`; a project's `.mcp.json`), Cursor
(`~/.cursor/mcp.json`), VS Code 1.102+ (`mcp.json` in the user profile or `.vscode/`, key
`servers`, JSONC), Windsurf (`~/.codeium/windsurf/mcp_config.json`, key `serverUrl`), Codex CLI
(`$CODEX_HOME/config.toml`, `[mcp_servers.NAME]` with `url` and `http_headers`) and Gemini CLI
(`~/.gemini/settings.json`, `httpUrl` for streamable HTTP). Every home-relative path follows
$HOME (and $XDG_CONFIG_HOME on Linux), so tests and sandboxes never reach the user's real files.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import tomlkit
import tomlkit.exceptions
import tomlkit.items

from services import jsonc_text

AUTH_ENV: Final = "MCPPROXY_AUTHORIZATION"
"""mcp-remote reads the header's value from this variable of its env, so the credential stays
out of its argv (the process list)."""
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class ClientKind:
    """One MCP client application."""

    id: str
    title: str
    binaries: tuple[str, ...]
    """Commands whose presence on PATH says it is installed."""
    scopes: tuple[str, ...]
    """`user` (first: the default) and, for clients that read one from a project, `project`."""
    container: str
    """The key of the servers object."""


CLIENTS: Final = (
    ClientKind("claude-desktop", "Claude Desktop", (), ("user",), "mcpServers"),
    ClientKind("claude-code", "Claude Code", ("claude",), ("user", "project"), "mcpServers"),
    ClientKind("cursor", "Cursor", ("cursor",), ("user", "project"), "mcpServers"),
    ClientKind("vscode", "VS Code", ("code",), ("user", "project"), "servers"),
    ClientKind("windsurf", "Windsurf", ("windsurf",), ("user",), "mcpServers"),
    ClientKind("codex", "Codex CLI", ("codex",), ("user",), "mcp_servers"),
    ClientKind("gemini", "Gemini CLI", ("gemini",), ("user", "project"), "mcpServers"),
)
BY_ID: Final = {c.id: c for c in CLIENTS}


@dataclass(frozen=True)
class ClientFile:
    """One file a client reads its servers from."""

    kind: ClientKind
    scope: str
    path: Path

    @property
    def toml(self) -> bool:
        return self.path.suffix == ".toml"

    @property
    def label(self) -> str:
        return f"{self.kind.id} ({self.scope})" if len(self.kind.scopes) > 1 else self.kind.id


def _app_data(env: Mapping[str, str]) -> Path:
    """Where Electron apps (Claude Desktop, VS Code) keep their settings."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if sys.platform == "win32":
        return Path(env.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def client_file(
    client: str, scope: str = "user", project: Path | None = None, env: Mapping[str, str] | None = None
) -> ClientFile:
    """The file of `client` for `scope` (`project`: under `project`, default the working dir)."""
    kind = BY_ID[client]
    if scope not in kind.scopes:
        raise ValueError(f"{kind.title} has no {scope} config (scopes: {', '.join(kind.scopes)})")
    env = os.environ if env is None else env
    home, where = Path.home(), project or Path.cwd()
    project_paths = {
        "claude-code": where / ".mcp.json",
        "cursor": where / ".cursor" / "mcp.json",
        "vscode": where / ".vscode" / "mcp.json",
        "gemini": where / ".gemini" / "settings.json",
    }
    if scope == "project":
        return ClientFile(kind, scope, project_paths[client])
    user_paths = {
        "claude-desktop": _app_data(env) / "Claude" / "claude_desktop_config.json",
        "claude-code": Path(env.get("CLAUDE_CONFIG_DIR") or home) / ".claude.json",
        "cursor": home / ".cursor" / "mcp.json",
        "vscode": _app_data(env) / "Code" / "User" / "mcp.json",
        "windsurf": home / ".codeium" / "windsurf" / "mcp_config.json",
        "codex": Path(env.get("CODEX_HOME") or home / ".codex") / "config.toml",
        "gemini": home / ".gemini" / "settings.json",
    }
    return ClientFile(kind, scope, user_paths[client])


def installed(file: ClientFile, which: Any = None) -> bool:
    """The client seems to be on this machine: its file or folder exists, or its command is on PATH."""
    import shutil

    find = which or shutil.which
    folder = file.path.parent
    if folder == Path.home():  # ~/.claude.json: its folder says nothing, ~/.claude/ does
        folder = Path.home() / f".{file.path.stem.lstrip('.')}"
    return file.path.exists() or folder.is_dir() or any(find(b) for b in file.kind.binaries)


def proxy_entry(client: str, url: str, credential: str | None) -> dict[str, Any]:
    """The client's entry for the proxy at `url`; with a credential, as a bearer header."""
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    if client == "claude-desktop":
        args = ["-y", "mcp-remote", url]
        split = urlsplit(url)
        if split.scheme == "http" and split.hostname not in LOOPBACK_HOSTS:
            args.append("--allow-http")
        if credential:
            args += ["--header", f"Authorization:${{{AUTH_ENV}}}"]
            return {"command": "npx", "args": args, "env": {AUTH_ENV: headers["Authorization"]}}
        return {"command": "npx", "args": args}
    shapes: dict[str, dict[str, Any]] = {
        "claude-code": {"type": "http", "url": url},
        "cursor": {"url": url},
        "vscode": {"type": "http", "url": url},
        "windsurf": {"serverUrl": url},
        "codex": {"url": url},
        "gemini": {"httpUrl": url},
    }
    entry = shapes[client]
    if headers:
        entry["http_headers" if client == "codex" else "headers"] = headers
    return entry


def read_servers(file: ClientFile, text: str) -> dict[str, Any]:
    """The servers object of the file's text (empty if it has none)."""
    doc = parse(file, text)
    servers = doc.get(file.kind.container) if isinstance(doc, dict) else None
    return servers if isinstance(servers, dict) else {}


def parse(file: ClientFile | None, text: str, *, toml: bool | None = None) -> Any:
    """The document as plain data; raises ValueError naming the line of a syntax error."""
    if toml if toml is not None else (file is not None and file.toml):
        try:
            return tomlkit.parse(text).unwrap()
        except tomlkit.exceptions.ParseError as exc:
            raise ValueError(f"invalid TOML: {exc}") from None
    return jsonc_text.loads(text) if text.strip() else {}


def with_entry(file: ClientFile, text: str, name: str, entry: dict[str, Any]) -> str:
    """`text` with server `name` set to `entry`, everything else as it was."""
    if file.toml:
        return _toml_with(text, file.kind.container, name, entry)
    return jsonc_text.set_member(text if text.strip() else "{}\n", (file.kind.container,), name, entry)


def without_entry(file: ClientFile, text: str, name: str, *, drop_container: bool) -> str:
    """`text` without server `name`; the servers object goes too if `drop_container` and it is empty."""
    container = file.kind.container
    if file.toml:
        result = _toml_without(text, container, name)
        doc = tomlkit.parse(result)
        if drop_container and doc.get(container) == {}:
            result = _toml_without_table(result, container)
        return result
    result = jsonc_text.remove_member(text, (container,), name)
    if drop_container and (jsonc_text.loads(result) or {}).get(container) == {}:
        result = jsonc_text.remove_member(result, (), container)
    return result


def _toml_header_re(*keys: str) -> re.Pattern[str]:
    parts = r"\s*\.\s*".join(rf"(?:{re.escape(k)}|\"{re.escape(k)}\"|'{re.escape(k)}')" for k in keys)
    return re.compile(rf"^[ \t]*\[\s*{parts}\s*\][ \t]*(?:#.*)?$", re.MULTILINE)


def _toml_with(text: str, container: str, name: str, entry: dict[str, Any]) -> str:
    """A new table is appended at the end of the file (where a table header may always stand);
    tomlkit replaces an existing one, or places it when the servers are written inline."""
    doc = tomlkit.parse(text)
    servers = doc.get(container)
    if servers is not None and not isinstance(servers, dict):
        raise ValueError(f"{container} is not a table")
    if servers is None or name not in servers:
        block = tomlkit.dumps({container: {name: _toml_values(entry)}})
        lead = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
        appended = text + lead + block
        try:
            if tomlkit.parse(appended).unwrap().get(container, {}).get(name) == entry:
                return appended
        except tomlkit.exceptions.TOMLKitError:
            pass
    inline = isinstance(servers, tomlkit.items.InlineTable)
    table = tomlkit.inline_table() if inline else tomlkit.table()
    table.update(_toml_values(entry))
    doc.setdefault(container, tomlkit.table(is_super_table=True))[name] = table
    return tomlkit.dumps(doc)


def _toml_values(entry: dict[str, Any]) -> dict[str, Any]:
    """Nested maps as inline tables (`http_headers = { ... }`), as Codex's docs write them."""
    values: dict[str, Any] = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            inline = tomlkit.inline_table()
            inline.update(value)
            values[key] = inline
        else:
            values[key] = value
    return values


def _toml_without(text: str, container: str, name: str) -> str:
    """`text` without table [container.name]: its lines are cut out (and the blank line that
    `_toml_with` put before it), checked by parsing; tomlkit removes it when the cut is not clean."""
    doc = tomlkit.parse(text)
    servers = doc.get(container)
    if not isinstance(servers, dict) or name not in servers:
        return text
    wanted = {k: v for k, v in doc.unwrap().items()}
    wanted[container] = {k: v for k, v in wanted[container].items() if k != name}
    header = _toml_header_re(container, name).search(text)
    if header is not None:
        following = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text, header.end())
        end = following.start() if following else len(text)
        start = header.start()
        if following is None and text[:start].endswith("\n\n"):
            start -= 1
        result = text[:start] + text[end:]
        if tomlkit.parse(result).unwrap() == _dropping_empty(wanted, container, text[:start] + text[end:]):
            return result
    del doc[container][name]
    return tomlkit.dumps(doc)


def _dropping_empty(wanted: dict[str, Any], container: str, result: str) -> dict[str, Any]:
    """With [container] implied only by [container.name], cutting that table leaves no [container]."""
    if wanted.get(container) == {} and _toml_header_re(container).search(result) is None:
        return {k: v for k, v in wanted.items() if k != container}
    return wanted


def _toml_without_table(text: str, container: str) -> str:
    header = _toml_header_re(container).search(text)
    if header is None:
        return text
    following = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text, header.end())
    result = text[: header.start()] + text[following.start() if following else len(text) :]
    doc = tomlkit.parse(text)
    del doc[container]
    return result if tomlkit.parse(result).unwrap() == doc.unwrap() else tomlkit.dumps(doc)
