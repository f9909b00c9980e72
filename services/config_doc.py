"""The config file as a document we can change without losing anything the user wrote.

Changes are made to the parsed JSON (so unknown keys survive), then the result
is validated with `parse_config` before anything is written. JSON Merge Patch
(RFC 7396) applies to one server object, with one rule of ours on top: a
value in `headers` or `env` that is a mask (`••••59 (71 chars)`) means "keep
what is stored" — the UI sends back the masked view — and is never stored.
"""

from __future__ import annotations

import copy
import difflib
import json
from typing import Any, Final

from bus.errors import ConfigError
from services.config import ProxyConfig, parse_config
from services.redaction import holds_mask, is_mask, redact_url, redact_value

SECRET_MAPS: Final = ("headers", "env")
LAUNCH_FIELDS: Final = frozenset(
    {
        "command",
        "args",
        "env",
        "working_dir",
        "roots",
        "url",
        "headers",
        "protocol",
        "isolation",
        "oauth",
        "allow_secret_echo",
    }
)
"""Fields that decide what runs or where credentials go (see supervisor/agent_changes.py)."""
FILE_NAME: Final = "mcp_config.json"


class PatchError(ConfigError):
    """A change that cannot be applied; `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class ConfigDocument:
    """The parsed JSON of mcp_config.json, servers normalized to a list."""

    def __init__(self, data: dict[str, Any]) -> None:
        servers = data.get("mcpServers", [])
        if isinstance(servers, dict):
            servers = [{"name": name, **body} for name, body in servers.items()]
        self.data = {**data, "mcpServers": list(servers)}

    @classmethod
    def from_text(cls, text: str) -> ConfigDocument:
        parse_config(text)  # raises ConfigError with the path and the problem
        return cls(json.loads(text))

    def text(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False) + "\n"

    def validated(self) -> ProxyConfig:
        return parse_config(self.text(), FILE_NAME)

    def copy(self) -> ConfigDocument:
        return ConfigDocument(copy.deepcopy(self.data))

    @property
    def servers(self) -> list[dict[str, Any]]:
        servers: list[dict[str, Any]] = self.data["mcpServers"]
        return servers

    def server(self, name: str) -> dict[str, Any]:
        for server in self.servers:
            if server.get("name") == name:
                return server
        raise PatchError(f"unknown server {name!r}", status=404)

    def add(self, server: dict[str, Any]) -> None:
        name = server.get("name")
        if any(s.get("name") == name for s in self.servers):
            raise PatchError(f"server {name!r} already exists", status=409)
        self.servers.append(server)

    def remove(self, name: str) -> None:
        self.server(name)
        self.data["mcpServers"] = [s for s in self.servers if s.get("name") != name]

    def patch(self, name: str, patch: Any) -> None:
        """Apply a merge patch to one server; echoed masks keep the stored value."""
        if not isinstance(patch, dict):
            raise PatchError("body: expected a JSON object (a JSON Merge Patch of the server)")
        if "name" in patch and patch["name"] != name:
            raise PatchError("name: a server cannot be renamed; add a new one and remove this one")
        current = self.server(name)
        patch = dict(patch)
        for field in SECRET_MAPS:
            changes = patch.get(field)
            if not isinstance(changes, dict):
                continue
            stored = current.get(field) or {}
            kept = {}
            for key, value in changes.items():
                if isinstance(value, str) and is_mask(value):
                    if key not in stored:
                        raise PatchError(
                            f"{field}.{key}: a masked value cannot be stored; send the real value"
                        )
                    continue  # the UI echoed the masked view: keep the stored secret
                kept[key] = value
            patch[field] = kept
        _keep_echoed_masks(current, patch)
        index = self.servers.index(current)
        self.servers[index] = merge_patch(current, patch)

    def set_value(self, name: str, field: str, key: str, value: str) -> None:
        server = self.server(name)
        server[field] = {**(server.get(field) or {}), key: value}


def _keep_echoed_masks(current: dict[str, Any], patch: dict[str, Any]) -> None:
    """`url`, `args` and `oauth.client_secret` echoed from a view keep what is stored; a mask is never stored.

    Views mask URL credentials and query values, known secret values inside `args`, and the
    client secret: a client that sends a server back as it read it must not overwrite them.
    """
    url = patch.get("url")
    if isinstance(url, str) and holds_mask(url):
        if url != redact_url(current.get("url") or ""):
            raise PatchError("url: holds a masked value (••••…); send the real URL, or leave url out")
        del patch["url"]
    args, stored = patch.get("args"), current.get("args") or []
    if isinstance(args, list) and any(isinstance(a, str) and holds_mask(a) for a in args):
        if len(args) != len(stored):
            raise PatchError("args: holds a masked value (••••…); send the real arguments, or leave args out")
        patch["args"] = [
            old if isinstance(new, str) and holds_mask(new) else new
            for new, old in zip(args, stored, strict=True)
        ]
    oauth, stored_oauth = patch.get("oauth"), current.get("oauth") or {}
    if (
        isinstance(oauth, dict)
        and isinstance(oauth.get("client_secret"), str)
        and holds_mask(oauth["client_secret"])
    ):
        if not stored_oauth.get("client_secret"):
            raise PatchError("oauth.client_secret: a masked value cannot be stored; send the real value")
        patch["oauth"] = {**oauth, "client_secret": stored_oauth["client_secret"]}


def launch_spec(server: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in server.items() if k in LAUNCH_FIELDS}


def pending_view(server: dict[str, Any], *, reveal: bool = False) -> dict[str, Any] | None:
    """An agent's proposal as a human reviews it: masked like the server, with a unified diff."""
    pending = server.get("pending_change")
    if not isinstance(pending, dict):
        return None
    proposed = pending.get("proposed")
    if not isinstance(proposed, dict):
        proposed = {}
    before = _redact_fields(copy.deepcopy(launch_spec(server)), reveal=reveal)
    after = _redact_fields(copy.deepcopy(proposed), reveal=reveal)
    diff = difflib.unified_diff(
        json.dumps(before, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
        json.dumps(after, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
        "approved",
        "proposed",
        lineterm="",
    )
    return {
        "id": pending.get("id"),
        "source": pending.get("source"),
        "proposed_at": pending.get("proposed_at"),
        "fields": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
        "proposed": after,
        "diff": "\n".join(diff),
    }


def redact_server(server: dict[str, Any], *, reveal: bool = False) -> dict[str, Any]:
    """A server object as every channel shows it: sensitive header/env values masked."""
    shown = _redact_fields(copy.deepcopy(server), reveal=reveal)
    if "pending_change" in shown:
        shown["pending_change"] = pending_view(server, reveal=reveal)
    return shown


def _redact_fields(shown: dict[str, Any], *, reveal: bool) -> dict[str, Any]:
    if reveal:
        return shown
    for field in SECRET_MAPS:
        values = shown.get(field)
        if isinstance(values, dict):
            shown[field] = {
                k: redact_value(k, v, header=field == "headers") if isinstance(v, str) else v
                for k, v in values.items()
            }
    if isinstance(shown.get("url"), str):
        shown["url"] = redact_url(shown["url"])
    oauth = shown.get("oauth")
    if isinstance(oauth, dict) and isinstance(oauth.get("client_secret"), str):
        oauth["client_secret"] = redact_value("client_secret", oauth["client_secret"], header=False)
    return shown


def redact_document(data: dict[str, Any], *, reveal: bool = False) -> dict[str, Any]:
    shown = {k: v for k, v in data.items() if k != "mcpServers"}
    if not reveal and isinstance(shown.get("api_key"), str):
        shown["api_key"] = redact_value("api_key", shown["api_key"], header=False)
    shown["mcpServers"] = [redact_server(s, reveal=reveal) for s in data.get("mcpServers", [])]
    return shown
