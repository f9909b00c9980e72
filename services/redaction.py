"""Masking sensitive values for display: `••••<last2> (<N> chars)`, exactly as the seed specifies.

A 71-character token ending in `59` shows as `••••59 (71 chars)`. Secret
references (`${keyring:NAME}`, `${env:VAR}`) are labels and pass unchanged.
"""

from __future__ import annotations

import re
from typing import Final

from services.references import is_reference

MASK_PREFIX: Final = "••••"
MASK_RE: Final = re.compile(r"^••••.{0,2} \(\d+ chars\)$")
SENSITIVE_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "cookie",
        "set-cookie",
        "x-auth-token",
        "x-access-token",
        "x-refresh-token",
    }
)
SENSITIVE_WORDS: Final = (
    "TOKEN", "SECRET", "KEY", "PASSWORD", "PASSWD", "PASS", "CREDENTIAL", "AUTH", "BEARER", "PRIVATE", "DSN",
)  # fmt: skip


def mask(value: str) -> str:
    """`••••<last2> (<N> chars)`; a value of 4 characters or fewer shows no characters at all."""
    tail = value[-2:] if len(value) > 4 else ""
    return f"{MASK_PREFIX}{tail} ({len(value)} chars)"


def is_mask(value: str) -> bool:
    return MASK_RE.match(value) is not None


def is_sensitive_key(key: str, *, header: bool) -> bool:
    if header and key.lower() in SENSITIVE_HEADERS:
        return True
    upper = key.upper()
    return any(word in upper for word in SENSITIVE_WORDS)


def redact_value(key: str, value: str, *, header: bool) -> str:
    if not is_sensitive_key(key, header=header) or is_reference(value):
        return value
    return mask(value)


_URL_CREDENTIALS_RE: Final = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<creds>[^@/]+)@", re.I)


def redact_url(url: str) -> str:
    """Hide `user:password@` in a URL (references pass unchanged)."""
    match = _URL_CREDENTIALS_RE.match(url)
    if not match or is_reference(match.group("creds")):
        return url
    return f"{match.group('scheme')}{mask(match.group('creds'))}@{url[match.end() :]}"
