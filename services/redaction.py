"""Keeping secret values out of what the proxy shows, logs and relays.

**Masking** is for display (config views on REST, /events, MCP tools, the
CLI): `••••<last2> (<N> chars)`, exactly as the seed specifies — a
71-character token ending in `59` shows as `••••59 (71 chars)`. It goes by
name (sensitive header and env keys, URL credentials, URL query parameters
such as `api_key` or `sig`) and by value (`SecretValues.mask_json`: a known
secret value wherever it stands, under a neutral name or inside `args`).
Secret references (`${keyring:NAME}`, `${env:VAR}`) are labels and pass
unchanged, and so does a value that holds one (`Bearer ${keyring:NAME}`): it
is a template, not a secret (a known value inside it is still masked).

**Scrubbing** is for free text (error messages, log lines, an upstream's
stderr, tool results): known values become `••••`, and so do the credentials
and query values of every URL in an error or log line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple
from urllib.parse import unquote, unquote_plus

from services._reference_syntax import REFERENCE_RE, is_reference, references_in

MASK_PREFIX: Final = "••••"
SCRUBBED: Final = "••••"
"""What a secret value, or a URL's credentials or query value, becomes in free text."""
MASK_RE: Final = re.compile(r"^••••.{0,2} \(\d+ chars\)$")
_MASK_IN_TEXT_RE: Final = re.compile(r"••••.{0,2} \(\d+ chars\)")
SCRUB_MIN_CHARS: Final = 4
"""Shorter values are never scrubbed: they would hit ordinary words."""
BY_VALUE_MIN_CHARS: Final = 8
"""Known values shorter than this are not masked by value in views nor scrubbed from tool results:
`true` or `1` under a name like AUTH_ENABLED would otherwise rewrite ordinary data."""
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
SENSITIVE_PARAM_WORDS: Final = frozenset(
    {
        "token", "key", "apikey", "secret", "password", "passwd", "pass", "pwd", "auth", "authorization",
        "sig", "signature", "credential", "credentials", "session", "sessionid", "bearer", "jwt",
        "private", "dsn",
    }
)  # fmt: skip
"""Words of a URL query parameter's name that make its value a credential (`api_key`, `access_token`)."""
_SENSITIVE_PARAM_ENDINGS: Final = ("token", "key", "secret", "password", "passwd")
SENSITIVE_ARG_RE: Final = re.compile(r"(?i)^--?[\w-]*(?:token|secret|key|password|passwd|auth)[\w-]*=(.+)$")
"""A command-line argument like `--api-key=VALUE`: VALUE is a secret written into the config."""

_WORD_RE: Final = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_URL_RE: Final = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?$",
    re.I | re.S,
)
_URL_IN_TEXT_RE: Final = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>`]*[^\s'\"<>`.,;:!?)\]]", re.I)
"""A URL in prose: it does not end with the punctuation that follows it."""


def mask(value: str) -> str:
    """`••••<last2> (<N> chars)`; a value of 4 characters or fewer shows no characters at all."""
    tail = value[-2:] if len(value) > 4 else ""
    return f"{MASK_PREFIX}{tail} ({len(value)} chars)"


def is_mask(value: str) -> bool:
    return MASK_RE.match(value) is not None


def holds_mask(value: str) -> bool:
    """A mask stands somewhere in `value` (a URL or an argument echoed back from a view)."""
    return _MASK_IN_TEXT_RE.search(value) is not None


def is_sensitive_key(key: str, *, header: bool) -> bool:
    if header and key.lower() in SENSITIVE_HEADERS:
        return True
    upper = key.upper()
    return any(word in upper for word in SENSITIVE_WORDS)


def is_sensitive_param(name: str) -> bool:
    """A URL query parameter whose value is a credential: `api_key`, `apiKey`, `access_token`, `sig`, ..."""
    words = {word.lower() for word in _WORD_RE.findall(name)}
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    return (
        bool(words & SENSITIVE_PARAM_WORDS)
        or compact in SENSITIVE_PARAM_WORDS
        or compact.endswith(_SENSITIVE_PARAM_ENDINGS)
    )


def redact_value(key: str, value: str, *, header: bool) -> str:
    """A value under a sensitive name, masked; one that holds a reference (`Bearer ${keyring:tok}`)
    is a template, whose secret lives in the store, and shows as written."""
    if not is_sensitive_key(key, header=header) or references_in(value):
        return value
    return mask(value)


# --- URLs ----------------------------------------------------------------------------------


class _Url(NamedTuple):
    scheme: str
    userinfo: str | None
    host: str
    path: str
    query: str | None
    fragment: str | None

    def text(self) -> str:
        userinfo = f"{self.userinfo}@" if self.userinfo is not None else ""
        query = f"?{self.query}" if self.query is not None else ""
        fragment = f"#{self.fragment}" if self.fragment is not None else ""
        return f"{self.scheme}{userinfo}{self.host}{self.path}{query}{fragment}"


def _split_url(url: str) -> _Url | None:
    match = _URL_RE.match(url)
    if match is None:
        return None
    userinfo, at, host = match.group("authority").rpartition("@")
    return _Url(
        scheme=match.group("scheme"),
        userinfo=userinfo if at else None,
        host=host,
        path=match.group("path"),
        query=match.group("query"),
        fragment=match.group("fragment"),
    )


def _only_references(text: str) -> bool:
    return REFERENCE_RE.sub("", text).strip(":") == ""


def _mask_literals(text: str, separator: str = "") -> str:
    """Mask each literal part of `text` (split at `separator`); references stay as they are."""

    def mask_parts(literal: str) -> str:
        if not separator:
            return mask(literal) if literal else literal
        return separator.join(mask(part) if part else part for part in literal.split(separator))

    shown, last = [], 0
    for match in REFERENCE_RE.finditer(text):
        shown += [mask_parts(text[last : match.start()]), match.group(0)]
        last = match.end()
    shown.append(mask_parts(text[last:]))
    return "".join(shown)


def _map_query(query: str, value_of: Callable[[str, str], str], bare: Callable[[str], str]) -> str:
    """Rewrite each `name=value` (and each bare part) of a query string."""
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        parts.append(f"{name}={value_of(unquote_plus(name), value)}" if equals else bare(part))
    return "&".join(parts)


def redact_url(url: str) -> str:
    """For display: credentials (`user:password@`) and sensitive query values masked; references kept."""
    parts = _split_url(url)
    if parts is None:
        return url
    userinfo = parts.userinfo
    if userinfo and not _only_references(userinfo):
        userinfo = _mask_literals(userinfo, ":")
    query = parts.query
    if query:
        query = _map_query(
            query,
            lambda name, value: _mask_literals(value) if value and is_sensitive_param(name) else value,
            lambda part: part,
        )
    return parts._replace(userinfo=userinfo, query=query).text()


def scrub_url(url: str) -> str:
    """For error and log text: credentials and every query (and fragment) value become `••••`."""
    parts = _split_url(url)
    if parts is None:
        return url

    def hidden(value: str) -> str:
        return value if not value or is_reference(value) else SCRUBBED

    def params(text: str | None) -> str | None:
        return _map_query(text, lambda name, value: hidden(value), hidden) if text else text

    userinfo = parts.userinfo
    if userinfo and not _only_references(userinfo):
        userinfo = SCRUBBED
    return parts._replace(
        userinfo=userinfo, query=params(parts.query), fragment=params(parts.fragment)
    ).text()


def scrub_urls(text: str) -> str:
    """`scrub_url` for every URL in a free text (an error message, a log line)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT_RE.sub(lambda match: scrub_url(match.group(0)), text)


# --- values ------------------------------------------------------------------------------


def literal_secrets(
    *,
    headers: Mapping[str, str],
    env: Mapping[str, str],
    url: str | None = None,
    args: Sequence[str] = (),
    client_secret: str | None = None,
) -> set[str]:
    """The secret values a server's config holds as written (not as references).

    Values under sensitive header and env names, URL credentials (and their
    Basic form), sensitive query values, `--token=VALUE`-style arguments and
    the OAuth client secret.
    For `Bearer TOKEN`-shaped values the token alone counts too, since an
    upstream may echo just that. Values holding a reference are left out:
    what they resolve to is known to whoever resolves them.
    """
    found: set[str] = set()

    def add(value: str) -> None:
        if not value or references_in(value):
            return
        found.add(value)
        _scheme, space, token = value.partition(" ")
        if space and token.strip():
            found.add(token.strip())

    for key, value in headers.items():
        if is_sensitive_key(key, header=True):
            add(value)
    for key, value in env.items():
        if is_sensitive_key(key, header=False):
            add(value)
    for arg in args:
        if match := SENSITIVE_ARG_RE.match(arg):
            add(match.group(1))
    if client_secret:
        add(client_secret)
    parts = _split_url(url) if url else None
    if parts is not None:
        for part in (parts.userinfo or "").split(":"):
            add(part)
            add(unquote(part))
        if parts.userinfo and not references_in(parts.userinfo):
            # An HTTP client sends URL credentials as `Authorization: Basic base64(user:password)`.
            user, _colon, password = parts.userinfo.partition(":")
            add(base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode())
        for param in (parts.query or "").split("&"):
            name, equals, value = param.partition("=")
            if equals and is_sensitive_param(unquote_plus(name)):
                add(value)
                add(unquote_plus(value))
    return found


class SecretValues:
    """Known secret values, longest first (so no fragment of a longer one survives), ready to apply."""

    def __init__(self, values: Iterable[str] = (), min_chars: int = SCRUB_MIN_CHARS) -> None:
        self.values: tuple[str, ...] = tuple(
            sorted({v for v in values if len(v) >= min_chars}, key=len, reverse=True)
        )

    def __bool__(self) -> bool:
        return bool(self.values)

    def found_in(self, text: str) -> bool:
        return any(value in text for value in self.values)

    def scrub_values(self, text: str) -> str:
        """Each known value in `text` becomes `••••` (`text` itself comes back when none is there)."""
        for value in self.values:
            if value in text:
                text = text.replace(value, SCRUBBED)
        return text

    def scrub(self, text: str) -> str:
        """For error and log text: known values, then every URL's credentials and query values."""
        return scrub_urls(self.scrub_values(text))

    def scrub_json(self, data: Any) -> Any:
        """`scrub_values` in every string (keys too) of decoded JSON; `data` itself when nothing changed."""
        if isinstance(data, str):
            return self.scrub_values(data)
        if isinstance(data, list):
            items = [self.scrub_json(item) for item in data]
            return items if any(new is not old for new, old in zip(items, data, strict=True)) else data
        if isinstance(data, dict):
            pairs = [(self.scrub_json(k), self.scrub_json(v)) for k, v in data.items()]
            changed = any(
                k is not old_k or v is not old_v
                for (k, v), (old_k, old_v) in zip(pairs, data.items(), strict=True)
            )
            return dict(pairs) if changed else data
        return data

    def mask_json(self, data: Any) -> Any:
        """For display: each known value in every string of decoded JSON becomes its mask.

        Keys and references stay; a string that is a known value shows exactly as `mask(value)`, so
        a client echoing the view back keeps the stored value (services/config_doc.py).
        """
        if isinstance(data, str):
            if is_reference(data):
                return data
            for value in self.values:
                if value in data:
                    data = data.replace(value, mask(value))
            return data
        if isinstance(data, list):
            return [self.mask_json(item) for item in data]
        if isinstance(data, dict):
            return {key: self.mask_json(value) for key, value in data.items()}
        return data
