"""The one writer of mcp_config.json.

Every change — REST, CLI, MCP tool, Web UI, or a hand edit noticed by the
watcher — is serialized by one lock, validated as a whole file, written
atomically (temporary file, fsync, rename; the previous valid version kept
as `mcp_config.json.bak`) and then applied by restarting only the servers it
touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, assert_never

import trio

from bus.errors import ConfigError, ProxyError
from bus.messages import ConfigCommand, ConfigResult
from services.config import ProxyConfig, parse_config, write_atomically
from services.config_doc import ConfigDocument, PatchError, redact_document, redact_server
from services.references import is_reference
from services.secrets import SecretStore, secret_name_problem
from supervisor import access_admin, agent_changes

logger = logging.getLogger(__name__)

SCOPES: Final = {"header": "headers", "env": "env"}
FileStamp = tuple[int, int, int]

Apply = Callable[[ProxyConfig, str], Awaitable[None]]
Notify = Callable[[str, dict[str, Any]], Awaitable[None]]
ClientsOf = Callable[[str], Sequence[str]]
ACCESS_ACTIONS: Final = frozenset(
    {"set_profile", "remove_profile", "set_tool_tier", "clear_tool_tier", "set_access"}
)


def file_stamp(path: Path) -> FileStamp | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


class ConfigAdmin:
    def __init__(
        self,
        path: Path,
        doc: ConfigDocument,
        secrets: SecretStore,
        apply: Apply,
        notify: Notify,
        clients_of: ClientsOf = lambda profile: (),
    ) -> None:
        self.path = path
        self._clients_of = clients_of
        self.doc = doc
        self.secrets = secrets
        self._apply = apply
        self._notify = notify
        self.lock = trio.Lock()
        self.written: FileStamp | None = file_stamp(path)

    @property
    def reveal(self) -> bool:
        return bool(self.doc.data.get("reveal_secret_headers", False))

    async def handle(self, command: ConfigCommand) -> ConfigResult:
        def result(ok: bool, status: int = 200, error: str | None = None, body: Any = None) -> ConfigResult:
            return ConfigResult(
                request_id=command.request_id,
                ok=ok,
                status=status,
                error=error,
                body=json.dumps(body).encode(),
            )

        try:
            payload = json.loads(command.body) if command.body else None
        except json.JSONDecodeError as exc:
            return result(
                False, 400, f"body: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            )
        async with self.lock:
            try:
                body = await self._carry_out(command, payload)
            except PatchError as exc:
                return result(False, exc.status, str(exc))
            except ProxyError as exc:
                return result(False, 400, str(exc))
        created = command.action == "add" or (isinstance(body, dict) and body.pop("created", False))
        return result(True, 201 if created else 200, body=body)

    async def _carry_out(self, command: ConfigCommand, payload: Any) -> Any:
        action, name = command.action, command.server
        if action == "get":
            return redact_document(self.doc.data, reveal=self.reveal)
        if action == "validate":
            if not isinstance(payload, dict):
                raise PatchError("body: expected the whole config as a JSON object")
            parse_config(json.dumps(payload))
            return {"valid": True}
        new = self.doc.copy()
        if action in ACCESS_ACTIONS:
            return await self._change_access(command, new, payload)
        agent = command.source == "mcp"
        outcome = None
        if agent:
            agent_changes.check_management(action, command.keyed)
        if agent and action in ("unquarantine", "reject"):
            raise agent_changes.AgentRefusedError("only a human can approve or reject a quarantined server")
        match action:
            case "add":
                if not isinstance(payload, dict):
                    raise PatchError("body: expected a server object")
                server = dict(payload)
                if agent:
                    server = agent_changes.prepare_add(server, new.data.get("quarantine_enabled", True))
                new.add(server)
                name = str(server.get("name"))
            case "patch" if agent:
                outcome = agent_changes.propose(new, name, payload)
            case "patch":
                new.patch(name, payload)
            case "remove":
                new.remove(name)
            case "enable" | "disable":
                new.patch(name, {"enabled": action == "enable"})
            case "quarantine":
                new.patch(name, {"quarantined": True})
            case "unquarantine":
                expected = payload.get("pending_change") if isinstance(payload, dict) else None
                if expected is not None and not isinstance(expected, str):
                    raise PatchError("pending_change: expected the id of the change you reviewed")
                outcome = "approved" if agent_changes.approve(new, name, expected) else None
            case "reject":
                agent_changes.reject(new, name)
            case "config_to_secret":
                await self._config_to_secret(new, name, payload)
            case "get" | "validate":  # answered above, without a change
                raise AssertionError(action)
            case "set_profile" | "remove_profile" | "set_tool_tier" | "clear_tool_tier" | "set_access":
                raise AssertionError(action)  # _change_access
            case _:
                assert_never(action)
        if outcome != "unchanged":
            await self.commit(new, command.source)
        if action == "remove":
            return {"name": name, "removed": True}
        shown: dict[str, Any] = {"server": redact_server(new.server(name), reveal=self.reveal)}
        if outcome == "proposed":
            shown["note"] = (
                f"{name} is quarantined until a human approves the change: nothing new runs before that "
                f"(`mcpproxy upstream approve {name}`, the Web UI's Quarantine page, or "
                f"POST /api/v1/servers/{name}/unquarantine)"
            )
        elif outcome == "approved":
            shown["applied"] = "the pending change"
        elif outcome == "unchanged":
            shown["note"] = f"nothing changed: {name} already has these settings"
        return shown

    async def _change_access(self, command: ConfigCommand, new: ConfigDocument, payload: Any) -> Any:
        if command.source == "mcp":
            raise agent_changes.AgentRefusedError(
                "access settings are changed by a person: the Web UI, the CLI or REST with the API key"
            )
        name, created = command.server, False
        match command.action:
            case "set_profile":
                created = access_admin.set_profile(new, name, payload)
            case "remove_profile":
                access_admin.remove_profile(new, name, self._clients_of(name))
            case "set_tool_tier":
                access_admin.set_tool_tier(new, name, payload)
            case "clear_tool_tier":
                access_admin.clear_tool_tier(new, name)
            case "set_access":
                access_admin.set_access(new, payload)
            case _:
                raise AssertionError(command.action)
        await self.commit(new, command.source)
        return {**access_admin.access_view(new), "created": created}

    async def _config_to_secret(self, new: ConfigDocument, name: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            raise PatchError('body: expected {"scope": "header"|"env", "key": ..., "secret_name": ...}')
        scope, key, secret_name = payload.get("scope"), payload.get("key"), payload.get("secret_name")
        if not isinstance(scope, str) or scope not in SCOPES:
            raise PatchError('scope: expected "header" or "env"')
        if not isinstance(key, str) or not key:
            raise PatchError("key: expected the header or variable name")
        if not isinstance(secret_name, str) or (problem := secret_name_problem(secret_name)):
            raise PatchError(
                f"secret_name: {problem if isinstance(secret_name, str) else 'expected a string'}"
            )
        field = SCOPES[scope]
        values = new.server(name).get(field) or {}
        if key not in values:
            raise PatchError(f"{field}.{key}: no such {scope} on server {name!r}", status=404)
        value = values[key]
        if not isinstance(value, str) or not value:
            raise PatchError(f"{field}.{key}: the value is empty; nothing to convert")
        if is_reference(value):
            raise PatchError(f"{field}.{key}: already a reference ({value})")
        await self.secrets.set(secret_name, value)
        new.set_value(name, field, key, f"${{keyring:{secret_name}}}")
        await self._notify("secrets.changed", {"name": secret_name, "action": "set"})

    async def commit(self, new: ConfigDocument, source: str) -> None:
        """Validate the whole file, back up the old one, write atomically, then apply."""
        config = new.validated()
        text = new.text()
        await trio.to_thread.run_sync(self._write, text)
        self.doc = new
        await self._apply(config, source)
        await self._notify("config.saved", {"source": source, "servers": len(config.mcpServers)})

    def _write(self, text: str) -> None:
        # The backup is the config last validated and then written or adopted (`self.doc`), never
        # the file on disk: that may be a hand edit that failed validation. Both files are written
        # whole (temporary file, fsync, rename), so a kill at any moment leaves a valid backup, and
        # both are 0600: the config holds the API key.
        write_atomically(self.path.with_name(self.path.name + ".bak"), self.doc.text())
        write_atomically(self.path, text)
        self.written = file_stamp(self.path)

    async def reload_from_disk(self, quarantine_new: bool) -> None:
        """A hand edit: adopt it if valid, else keep the running config and say why."""
        async with self.lock:
            stamp = file_stamp(self.path)
            if stamp == self.written:
                return
            self.written = stamp
            try:
                text = await trio.to_thread.run_sync(self.path.read_text)
                new = ConfigDocument.from_text(text)
            except (ConfigError, OSError) as exc:
                message = str(exc) if isinstance(exc, ConfigError) else f"{self.path}: {exc}"
                logger.error("hand edit rejected, the running config stays in force: %s", message)
                await self._notify("config.error", {"error": message})
                return
            known = {s.get("name") for s in self.doc.servers}
            newcomers = [s for s in new.servers if s.get("name") not in known and "quarantined" not in s]
            if newcomers and quarantine_new and new.data.get("quarantine_enabled", True):
                for server in newcomers:
                    server["quarantined"] = True  # first sight of a hand-added server: a human approves it
                    logger.warning(
                        "server %s appeared in the config file: quarantined until approved", server["name"]
                    )
                await self.commit(new, "file")
            else:
                config = new.validated()
                self.doc = new
                await self._apply(config, "file")
            await self._notify("config.reloaded", {"servers": len(new.servers)})


WATCH_INTERVAL_S: Final = 0.5
DEBOUNCE_S: Final = 0.3


async def watch_file(admin: ConfigAdmin) -> None:
    """Notice hand edits. A stat every WATCH_INTERVAL_S: portable, and cheap for one file."""
    while True:
        await trio.sleep(WATCH_INTERVAL_S)
        stamp = file_stamp(admin.path)
        if stamp is None or stamp == admin.written:
            continue
        # Editors write in several steps: wait until the file holds still.
        while True:
            await trio.sleep(DEBOUNCE_S)
            again = file_stamp(admin.path)
            if again == stamp:
                break
            stamp = again
        if stamp is not None:
            await admin.reload_from_disk(quarantine_new=True)
