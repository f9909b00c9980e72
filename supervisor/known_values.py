"""The secret values the control plane knows, and the two things it does with them.

Known: every value in the secrets store, the values of the `${env:...}`
references in the config, and every secret the config holds as written or
makes once resolved (under a sensitive name, URL credentials and their Basic
form, sensitive query values, `--token=VALUE` args, the OAuth client secret).

- Every error text the supervisor publishes (`last_error` on REST, /events,
  MCP tools, the CLI; a login's error) is scrubbed: no known value, no URL
  credentials or query values — whatever the worker already removed.
- Every config view (a server's `config_json`, a ConfigResult body) masks
  known values by value, wherever they stand: under a neutral name, in `args`.

The gateway gets the same values (`KnownSecrets`) for the activity log and
for tool results.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from bus.errors import ProxyError
from services.config import ProxyConfig, ServerConfig
from services.redaction import BY_VALUE_MIN_CHARS, SecretValues, literal_secrets
from services.references import REFERENCE_RE, references_in
from services.secrets import SecretStore


def read_stored(store: SecretStore) -> dict[str, str]:
    """Every stored secret by name (blocking: run it in a thread)."""
    found = {}
    for name in store.names_sync():
        try:
            value = store.get_sync(name)
        except ProxyError:
            continue
        if value:
            found[name] = value
    return found


def server_secrets(server: ServerConfig, stored: Mapping[str, str], environ: Mapping[str, str]) -> set[str]:
    """What this server's upstream receives that is secret, references resolved as far as we can."""

    def expand(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            kind, name = match.group(1), match.group(2)
            return (environ if kind == "env" else stored).get(name) or match.group(0)

        return REFERENCE_RE.sub(value, text)

    client_secret = server.oauth.client_secret if server.oauth is not None else None
    found = literal_secrets(
        headers={key: expand(value) for key, value in server.headers.items()},
        env={key: expand(value) for key, value in server.env.items()},
        url=expand(server.url) if server.url else None,
        args=[expand(arg) for arg in server.args],
        client_secret=expand(client_secret) if client_secret else None,
    )
    # ${env:VAR} references resolve in the workers from the environment they inherit from us.
    texts = [
        *server.headers.values(),
        *server.env.values(),
        *server.args,
        server.url or "",
        client_secret or "",
    ]
    for text in texts:
        for kind, name in references_in(text):
            if kind == "env" and environ.get(name):
                found.add(environ[name])
    return found


class KnownValues:
    def __init__(self) -> None:
        self.values: frozenset[str] = frozenset()
        self._stored: dict[str, str] = {}
        self._scrubber = SecretValues()
        self._masker = SecretValues()

    def learn(self, config: ProxyConfig, stored: Mapping[str, str] | None = None) -> bool:
        """Recompute from `config` (and the store's contents, when read anew); True if anything changed."""
        if stored is not None:
            self._stored = dict(stored)
        values = set(self._stored.values())
        for server in config.mcpServers:
            values |= server_secrets(server, self._stored, os.environ)
        # The global `env` reaches every stdio upstream, under each one's own.
        values |= server_secrets(ServerConfig(name="env", env=config.env), self._stored, os.environ)
        if values == self.values:
            return False
        self.values = frozenset(values)
        self._scrubber = SecretValues(values)
        self._masker = SecretValues(values, BY_VALUE_MIN_CHARS)
        return True

    def scrub(self, text: str) -> str:
        """An error text as it may be published: no known value, no URL credentials or query values."""
        return self._scrubber.scrub(text)

    def mask_view(self, body: bytes, *, reveal: bool) -> bytes:
        """A redacted config view (JSON) with every known value masked wherever it stands."""
        if reveal or not self._masker:
            return body
        return json.dumps(self._masker.mask_json(json.loads(body))).encode()
