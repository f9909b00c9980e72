"""The client credentials file, `<data dir>/clients.json` (mode 0600): one grant per client, each
holding the SHA-256 of its credential, never the credential. Only the supervisor writes it."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Final

import msgspec

from bus.access import ClientGrant, ClientInfo, Profile
from bus.messages import ClientCommand, ClientResult
from services.config import write_atomically

logger = logging.getLogger(__name__)

CLIENTS_FILE: Final = "clients.json"
CLIENT_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")


class _ClientsFile(msgspec.Struct, kw_only=True):
    clients: list[ClientGrant] = msgspec.field(default_factory=list)


class ClientStore:
    """The grants, kept in memory and written through on every change."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / CLIENTS_FILE
        self.grants: dict[str, ClientGrant] = {}
        try:
            loaded = msgspec.json.decode(self.path.read_bytes(), type=_ClientsFile)
        except FileNotFoundError:
            return
        except (OSError, msgspec.DecodeError) as exc:
            # Unreadable means no client is let in: safer than guessing, and said loudly.
            logger.error(
                "%s cannot be read (%s): no client credential is accepted until it is fixed", self.path, exc
            )
            return
        self.grants = {grant.name: grant for grant in loaded.clients}

    def _save(self) -> None:
        data = _ClientsFile(clients=sorted(self.grants.values(), key=lambda g: g.name))
        write_atomically(self.path, msgspec.json.format(msgspec.json.encode(data)).decode() + "\n")

    def bound_to(self, profile: str) -> list[str]:
        """The clients whose credential is bound to `profile`."""
        return sorted(g.name for g in self.grants.values() if g.profile == profile)

    def infos(self) -> list[ClientInfo]:
        return [
            ClientInfo(name=g.name, profile=g.profile, created_at=g.created_at, expires_at=g.expires_at)
            for g in sorted(self.grants.values(), key=lambda g: g.name)
        ]

    def handle(self, command: ClientCommand, profiles: list[Profile]) -> ClientResult:
        """Apply one command; what is wrong is said in the result, nothing raises."""
        request_id = command.request_id
        name = command.name
        if command.action == "list":
            return ClientResult(request_id=request_id, ok=True, clients=self.infos())
        if not CLIENT_NAME_RE.fullmatch(name):
            return ClientResult(
                request_id=request_id,
                ok=False,
                status=400,
                error=f"invalid client name {name!r}: use letters, digits, '.', '-' and '_' (at most 64)",
            )
        existing = self.grants.get(name)
        if command.action == "revoke":
            if existing is None:
                return _missing(request_id, name)
            del self.grants[name]
        elif command.action == "rotate":
            if existing is None:
                return _missing(request_id, name)
            if not _SHA256_RE.fullmatch(command.token_sha256):
                return ClientResult(request_id=request_id, ok=False, status=400, error="bad credential hash")
            expires_at = command.expires_at if command.expires_at is not None else existing.expires_at
            self.grants[name] = msgspec.structs.replace(
                existing, token_sha256=command.token_sha256, expires_at=expires_at
            )
        else:
            if existing is not None:
                return ClientResult(
                    request_id=request_id,
                    ok=False,
                    status=409,
                    error=f"client {name!r} exists: rotate its credential or revoke it first",
                )
            known = [p.name for p in profiles]
            if command.profile not in known:
                listed = ", ".join(known) or "none: add one under `profiles` in the config"
                return ClientResult(
                    request_id=request_id,
                    ok=False,
                    status=400,
                    error=f"unknown profile {command.profile!r} (profiles: {listed})",
                )
            if not _SHA256_RE.fullmatch(command.token_sha256):
                return ClientResult(request_id=request_id, ok=False, status=400, error="bad credential hash")
            self.grants[name] = ClientGrant(
                name=name,
                profile=command.profile,
                token_sha256=command.token_sha256,
                created_at=time.time(),
                expires_at=command.expires_at,
            )
        self._save()
        logger.info("client %s: %s", name, command.action)
        return ClientResult(
            request_id=request_id,
            ok=True,
            status=201 if command.action == "add" else 200,
            clients=[i for i in self.infos() if i.name == name],
        )


def _missing(request_id: int, name: str) -> ClientResult:
    return ClientResult(request_id=request_id, ok=False, status=404, error=f"no client named {name!r}")
