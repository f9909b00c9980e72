"""Secret management for the control plane: list, set, delete — and restart the servers that use one."""

from __future__ import annotations

import logging
from typing import assert_never

from bus.errors import ProxyError
from bus.messages import SecretCommand, SecretInfo, SecretResult
from services.config import ProxyConfig, ServerConfig
from services.references import keyring_names
from services.secrets import SecretStore, secret_name_problem

logger = logging.getLogger(__name__)


def referenced_names(server: ServerConfig) -> set[str]:
    return keyring_names(*server.headers.values(), *server.env.values(), *server.args, server.url or "")


def users_of(config: ProxyConfig, name: str) -> list[str]:
    return sorted(s.name for s in config.mcpServers if name in referenced_names(s))


async def handle(
    command: SecretCommand, store: SecretStore, config: ProxyConfig
) -> tuple[SecretResult, list[str]]:
    """Carry out `command`; return the reply and the servers to restart."""

    def reply(**fields: object) -> SecretResult:
        return SecretResult(request_id=command.request_id, backend=store.backend_name, **fields)  # type: ignore[arg-type]

    try:
        if command.action == "list":
            stored = set(store.names_sync())
            named = stored | {n for s in config.mcpServers for n in referenced_names(s)}
            infos = [
                SecretInfo(name=n, stored=n in stored, servers=users_of(config, n)) for n in sorted(named)
            ]
            return reply(ok=True, secrets=infos), []
        if problem := secret_name_problem(command.name):
            return reply(ok=False, status=400, error=f"name: {problem}"), []
        match command.action:
            case "set":
                if not command.value:
                    return reply(ok=False, status=400, error="value: a secret cannot be empty"), []
                await store.set(command.name, command.value)
                logger.info("secret %s stored in the %s", command.name, store.backend_name)
            case "delete":
                if command.name not in store.names_sync() and await store.get(command.name) is None:
                    return reply(ok=False, status=404, error=f"unknown secret {command.name!r}"), []
                await store.delete(command.name)
                logger.info("secret %s deleted", command.name)
            case "list":  # answered above
                raise AssertionError(command.action)
            case _:
                assert_never(command.action)
    except ProxyError as exc:
        return reply(ok=False, status=500, error=str(exc)), []
    restart = users_of(config, command.name)
    return reply(ok=True, restarted=restart), restart
