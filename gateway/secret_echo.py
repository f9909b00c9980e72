"""What a tool result may echo of the secrets the proxy gave its upstream: nothing, by default.

A tool that prints its environment, reflects request headers or reports the
URL it was reached at hands the agent a credential the proxy injected (a
resolved `${keyring:...}`, a literal token under a sensitive name). Every
secret value the supervisor knows (`KnownSecrets`) is replaced by `••••` in
every string of a result — text, structured content, embedded resources,
`_meta` — before any surface sees it, unless the server's config says
`allow_secret_echo: true`.

Values shorter than `BY_VALUE_MIN_CHARS` are left alone: `true` under
`AUTH_ENABLED` must not rewrite every `true` a tool returns.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from services.redaction import BY_VALUE_MIN_CHARS, SecretValues

ResultT = TypeVar("ResultT", bound=BaseModel)


class EchoGuard:
    """The known secret values, kept current from the supervisor; scrubs results that carry one."""

    def __init__(self) -> None:
        self.secrets = SecretValues()

    def learn(self, values: list[str]) -> None:
        self.secrets = SecretValues(values, BY_VALUE_MIN_CHARS)

    def scrub(self, result: ResultT) -> ResultT:
        """`result` itself when it carries no known value (the common case costs one walk, no copy)."""
        secrets = self.secrets
        if not secrets or not _mentions(result, secrets):
            return result
        dumped = result.model_dump(by_alias=True, mode="json", exclude_unset=True)
        return type(result).model_validate(secrets.scrub_json(dumped))


def _mentions(value: Any, secrets: SecretValues) -> bool:
    if isinstance(value, str):
        return secrets.found_in(value)
    if isinstance(value, BaseModel):
        extra = value.__pydantic_extra__
        return any(_mentions(item, secrets) for item in value.__dict__.values()) or bool(
            extra and _mentions(extra, secrets)
        )
    if isinstance(value, dict):
        return any(_mentions(k, secrets) or _mentions(v, secrets) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_mentions(item, secrets) for item in value)
    return False
