"""The secrets store: the OS keyring (service `mcpproxy`), or an encrypted file where none works.

`auto` (the default) uses the OS keyring when `keyring` finds a real backend
and falls back to an encrypted file under the data dir otherwise (headless
Linux, containers, CI). The file backend keeps a Fernet key in
`secrets.key` (mode 0600) and the encrypted map in `secrets.enc`; both are
written atomically. A keyring cannot list its entries, so a names-only index
(`secrets-index.json`) is kept next to them: names are labels, not secrets.

Every call into `keyring` blocks; this module is the one place that runs them
in a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import trio

from bus.errors import ProxyError
from services.config import write_atomically
from services.private_files import make_private_dir, private_opener

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

logger = logging.getLogger(__name__)

SERVICE: Final = "mcpproxy"
BACKENDS: Final = ("auto", "keyring", "file")


class SecretsError(ProxyError):
    """The secrets store could not be read or written."""


@contextlib.contextmanager
def _exclusive(directory: Path, lock: threading.Lock) -> Iterator[None]:
    """Serialize read-modify-write of the store's files across threads and processes.

    The supervisor and the workers (OAuth tokens) both write; an flock on
    `secrets.lock` keeps one from losing the other's change.
    """
    make_private_dir(directory)
    with lock, open(directory / "secrets.lock", "a", opener=private_opener) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Backend(Protocol):
    name: str

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...
    def delete(self, key: str) -> None: ...


class KeyringBackend:
    def __init__(self) -> None:
        import keyring

        self._keyring = keyring
        self.name = f"keyring ({type(keyring.get_keyring()).__name__})"

    def get(self, key: str) -> str | None:
        return self._keyring.get_password(SERVICE, key)

    def set(self, key: str, value: str) -> None:
        self._keyring.set_password(SERVICE, key, value)

    def delete(self, key: str) -> None:
        import keyring.errors

        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            self._keyring.delete_password(SERVICE, key)


class FileBackend:
    """Fernet-encrypted JSON map; the key file is 0600 and never leaves the data dir."""

    name = "encrypted file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key_path = directory / "secrets.key"
        self.data_path = directory / "secrets.enc"
        self._lock = threading.Lock()

    def _fernet(self) -> Fernet:
        from cryptography.fernet import Fernet

        make_private_dir(self.directory)
        try:
            key = self.key_path.read_bytes()
        except FileNotFoundError:
            key = Fernet.generate_key()
            write_atomically(self.key_path, key.decode())
        return Fernet(key.strip())

    def _load(self) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            blob = self.data_path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(self._fernet().decrypt(blob))
        except InvalidToken:
            raise SecretsError(
                f"{self.data_path}: cannot decrypt (was {self.key_path.name} replaced?)"
            ) from None
        return dict(data)

    def _save(self, data: dict[str, str]) -> None:
        token = self._fernet().encrypt(json.dumps(data).encode())
        write_atomically(self.data_path, token.decode())

    def get(self, key: str) -> str | None:
        with _exclusive(self.directory, self._lock):
            return self._load().get(key)

    def set(self, key: str, value: str) -> None:
        with _exclusive(self.directory, self._lock):
            data = self._load()
            data[key] = value
            self._save(data)

    def delete(self, key: str) -> None:
        with _exclusive(self.directory, self._lock):
            data = self._load()
            if data.pop(key, None) is not None:
                self._save(data)


def keyring_works() -> bool:
    """True when `keyring` found a real backend (not the `fail` one, nor a chain of nothing)."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    return not (isinstance(backend, chainer.ChainerBackend) and not backend.backends)


class SecretStore:
    """Named secrets plus a names-only index. Blocking methods end in `_sync`; async ones use a thread."""

    def __init__(self, data_dir: Path, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise SecretsError(
                f"secrets_backend: unknown backend {backend!r}: use one of {', '.join(BACKENDS)}"
            )
        self.data_dir = data_dir
        self.index_path = data_dir / "secrets-index.json"
        if backend == "keyring" or (backend == "auto" and keyring_works()):
            self._backend: _Backend = KeyringBackend()
        else:
            self._backend = FileBackend(data_dir)
        self._lock = threading.Lock()

    @property
    def backend_name(self) -> str:
        return self._backend.name

    def names_sync(self) -> list[str]:
        try:
            return sorted(json.loads(self.index_path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return []

    def _write_index(self, names: set[str]) -> None:
        make_private_dir(self.data_dir)
        write_atomically(self.index_path, json.dumps(sorted(names)) + "\n")

    def get_sync(self, name: str) -> str | None:
        try:
            return self._backend.get(name)
        except SecretsError:
            raise
        except Exception as exc:  # keyring backends raise their own trees
            raise SecretsError(f"cannot read secret {name!r} from the {self.backend_name}: {exc}") from None

    def set_sync(self, name: str, value: str, *, indexed: bool = True) -> None:
        """Store `value`; `indexed=False` keeps the name out of `secrets list` (the proxy's own records)."""
        try:
            self._backend.set(name, value)
        except SecretsError:
            raise
        except Exception as exc:
            raise SecretsError(f"cannot store secret {name!r} in the {self.backend_name}: {exc}") from None
        if indexed:
            with _exclusive(self.data_dir, self._lock):
                self._write_index(set(self.names_sync()) | {name})

    def delete_sync(self, name: str) -> None:
        try:
            self._backend.delete(name)
        except Exception as exc:
            raise SecretsError(f"cannot delete secret {name!r} from the {self.backend_name}: {exc}") from None
        with _exclusive(self.data_dir, self._lock):
            names = set(self.names_sync())
            if name in names:
                self._write_index(names - {name})

    async def get(self, name: str) -> str | None:
        return await trio.to_thread.run_sync(self.get_sync, name)

    async def set(self, name: str, value: str, *, indexed: bool = True) -> None:
        await trio.to_thread.run_sync(lambda: self.set_sync(name, value, indexed=indexed))

    async def delete(self, name: str) -> None:
        await trio.to_thread.run_sync(self.delete_sync, name)


def oauth_record_names(server: str) -> tuple[str, str]:
    """The store's names for a server's OAuth tokens and its client registration (not in `secrets list`)."""
    return f"oauth.{server}.tokens", f"oauth.{server}.client"


def secret_name_problem(name: str) -> str | None:
    """Why `name` cannot name a secret, or None."""
    if not name or len(name) > 128:
        return "a secret name must be 1-128 characters"
    if not all(c.isalnum() or c in "_.-" for c in name):
        return f"invalid secret name {name!r}: use letters, digits, _ . -"
    return None
