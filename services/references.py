"""Secret references: `${keyring:NAME}` and `${env:VAR}` in headers, env, url, args and oauth.client_secret.

They are labels, not secrets: config files, REST and events show them as
they are. A worker resolves them just before it connects; the resolved
values, and the secret values its config holds as written, are then scrubbed
from every error text and log line it writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from bus.errors import ProxyError
from bus.messages import UpstreamSpec
from services._reference_syntax import REFERENCE_RE, is_reference, references_in
from services.redaction import SCRUBBED, SecretValues, literal_secrets
from services.secrets import SecretStore

__all__ = [
    "REFERENCE_RE",
    "SCRUBBED",
    "Resolution",
    "UnresolvedReferenceError",
    "is_reference",
    "keyring_names",
    "references_in",
    "resolve",
]


class UnresolvedReferenceError(ProxyError):
    """A reference names a secret or variable that does not exist."""


def keyring_names(*values: str) -> set[str]:
    return {name for value in values for kind, name in references_in(value) if kind == "keyring"}


@dataclass
class Resolution:
    spec: UpstreamSpec
    secrets: list[str]
    """Every secret value the upstream receives: resolved references and literal sensitive values."""
    values: SecretValues = field(init=False)

    def __post_init__(self) -> None:
        self.values = SecretValues(self.secrets)

    def scrub(self, text: str) -> str:
        """Every secret value in `text`, and the credentials and query values of its URLs, as `••••`."""
        return self.values.scrub(text)


async def resolve(
    spec: UpstreamSpec, store: SecretStore | None, environ: Mapping[str, str] | None = None
) -> Resolution:
    """A copy of `spec` with every reference replaced; raise naming the first unresolvable one."""
    environ = os.environ if environ is None else environ
    values: dict[tuple[str, str], str] = {}
    oauth_secret = spec.oauth.client_secret if spec.oauth is not None else None
    every = [*spec.headers.values(), *spec.env.values(), *spec.args, spec.url or "", oauth_secret or ""]
    for kind, name in {ref for value in every for ref in references_in(value)}:
        if kind == "env":
            found = environ.get(name)
            if found is None:
                raise UnresolvedReferenceError(
                    f"unresolved reference ${{env:{name}}}: the proxy has no {name} variable"
                )
        else:
            if store is None:
                raise UnresolvedReferenceError(f"unresolved reference ${{keyring:{name}}}: no secrets store")
            found = await store.get(name)
            if found is None:
                raise UnresolvedReferenceError(
                    f"unresolved reference ${{keyring:{name}}}: no secret named {name!r} in the "
                    f"{store.backend_name} (set it with `mcpproxy secrets set {name}`)"
                )
        values[(kind, name)] = found

    def expand(value: str) -> str:
        return REFERENCE_RE.sub(lambda m: values[(m.group(1), m.group(2))], value)

    resolved = msgspec.structs.replace(
        spec,
        headers={k: expand(v) for k, v in spec.headers.items()},
        env={k: expand(v) for k, v in spec.env.items()},
        args=[expand(a) for a in spec.args],
        url=expand(spec.url) if spec.url else spec.url,
        oauth=(
            msgspec.structs.replace(spec.oauth, client_secret=expand(oauth_secret))
            if spec.oauth is not None and oauth_secret
            else spec.oauth
        ),
    )
    secrets = {v for v in values.values() if v}
    if resolved.oauth is not None and resolved.oauth.client_secret:
        secrets.add(resolved.oauth.client_secret)  # a literal one is scrubbed as well
    # Also what resolving made of the fields (`Bearer <value>`, the Basic form of URL credentials).
    secrets |= literal_secrets(
        headers=resolved.headers, env=resolved.env, url=resolved.url, args=resolved.args
    )
    return Resolution(spec=resolved, secrets=sorted(secrets))
