"""The secrets store, references and masks."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from jaraco.classes import properties
from keyring.backend import KeyringBackend

from bus.messages import UpstreamSpec
from services.redaction import is_mask, mask, redact_url, redact_value
from services.references import UnresolvedReferenceError, resolve
from services.secrets import FileBackend, SecretStore


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring backend, installed with keyring.set_keyring() for unit tests."""

    @properties.classproperty
    def priority(cls) -> float:
        # keyring's auto-detection tries every imported backend class; this one is only for explicit use.
        raise RuntimeError("installed explicitly by tests")

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_the_os_keyring_is_used_when_one_works(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    store = SecretStore(tmp_path)
    assert store.backend_name.startswith("keyring")
    store.set_sync("gh_token", "s3cret-value")
    assert memory_keyring.items[("mcpproxy", "gh_token")] == "s3cret-value"
    assert store.names_sync() == ["gh_token"]
    assert not (tmp_path / "secrets.enc").exists()
    store.delete_sync("gh_token")
    assert store.get_sync("gh_token") is None and store.names_sync() == []


def test_without_a_keyring_the_encrypted_file_is_chosen(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    assert store.backend_name == "encrypted file"


def test_the_encrypted_file_holds_no_plaintext_and_a_fresh_process_reads_it_back(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, "file")
    store.set_sync("api", "plain-text-value-123")
    assert b"plain-text-value-123" not in (tmp_path / "secrets.enc").read_bytes()
    assert stat.S_IMODE((tmp_path / "secrets.key").stat().st_mode) == 0o600
    assert b"plain-text-value-123" not in (tmp_path / "secrets-index.json").read_bytes()
    code = (
        "import sys; from pathlib import Path; from services.secrets import SecretStore; "
        "print(SecretStore(Path(sys.argv[1]), 'file').get_sync('api'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "plain-text-value-123"


def test_a_replaced_key_file_is_a_clear_error(tmp_path: Path) -> None:
    FileBackend(tmp_path).set("a", "b")
    (tmp_path / "secrets.key").unlink()
    with pytest.raises(Exception, match="cannot decrypt"):
        FileBackend(tmp_path).get("a")


async def test_references_resolve_from_the_store_and_the_environment(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, "file")
    store.set_sync("tok", "abcdef123456")
    spec = UpstreamSpec(
        name="s",
        protocol="streamable-http",
        url="https://${env:HOST_FOR_TEST}/mcp",
        headers={"Authorization": "Bearer ${keyring:tok}", "X-Plain": "v"},
        env={"A": "${env:HOST_FOR_TEST}"},
        args=["--token=${keyring:tok}"],
    )
    resolution = await resolve(spec, store, {"HOST_FOR_TEST": "example.test"})
    assert resolution.spec.headers == {"Authorization": "Bearer abcdef123456", "X-Plain": "v"}
    assert resolution.spec.url == "https://example.test/mcp"
    assert resolution.spec.args == ["--token=abcdef123456"]
    # The resolved header value as a whole is a secret too, and so is the value alone.
    assert resolution.scrub("error for Bearer abcdef123456") == "error for ••••"
    assert (
        resolution.scrub("token abcdef123456 from https://u:p@h/x?q=1")
        == "token •••• from https://••••@h/x?q=••••"
    )
    assert spec.headers["Authorization"] == "Bearer ${keyring:tok}"


async def test_an_unresolvable_reference_names_the_reference_not_a_value(tmp_path: Path) -> None:
    spec = UpstreamSpec(name="s", protocol="stdio", command="x", env={"T": "${keyring:missing_one}"})
    with pytest.raises(UnresolvedReferenceError, match=r"\$\{keyring:missing_one\}"):
        await resolve(spec, SecretStore(tmp_path, "file"), {})
    with pytest.raises(UnresolvedReferenceError, match=r"\$\{env:NOPE\}"):
        await resolve(UpstreamSpec(name="s", protocol="stdio", command="x", args=["${env:NOPE}"]), None, {})


def test_the_mask_is_exactly_the_seed_format() -> None:
    token = "x" * 69 + "59"
    assert mask(token) == "••••59 (71 chars)"
    assert is_mask("••••59 (71 chars)")
    assert redact_value("Authorization", token, header=True) == "••••59 (71 chars)"
    assert redact_value("GITHUB_TOKEN", "ghp_abcdefgh", header=False) == "••••gh (12 chars)"
    assert redact_value("Authorization", "${keyring:gh_token}", header=True) == "${keyring:gh_token}"
    assert redact_value("X-Trace", "on", header=True) == "on"
    assert redact_url("https://user:pw123@example.test/mcp").startswith("https://••••")


def test_the_proxys_own_records_stay_out_of_the_listing(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, "file")
    store.set_sync("mine", "v1")
    store.set_sync("oauth.gh.tokens", "{}", indexed=False)
    assert store.names_sync() == ["mine"]
    assert store.get_sync("oauth.gh.tokens") == "{}"
    store.delete_sync("oauth.gh.tokens")
    assert store.get_sync("oauth.gh.tokens") is None and store.names_sync() == ["mine"]


def test_writers_in_several_processes_lose_nothing(tmp_path: Path) -> None:
    """The supervisor and the workers (OAuth tokens) share the encrypted file: writes must not race."""
    code = (
        "import sys; from pathlib import Path; from services.secrets import SecretStore\n"
        "store = SecretStore(Path(sys.argv[1]), 'file')\n"
        "for i in range(15): store.set_sync(f'{sys.argv[2]}-{i}', 'x', indexed=False)"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"w{n}"]) for n in range(4)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    backend = FileBackend(tmp_path)
    missing = [f"w{n}-{i}" for n in range(4) for i in range(15) if backend.get(f"w{n}-{i}") is None]
    assert missing == []
