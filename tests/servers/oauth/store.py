"""The model: where the server lives (Site), its clients, authorization codes and tokens, and the
in-memory Store that holds them all."""

from __future__ import annotations

import hmac
import ipaddress
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin

SCOPES: Final = ("mcp:read", "mcp:write")
AUTH_METHODS: Final = ("none", "client_secret_post", "client_secret_basic")
SECRET_METHODS: Final = frozenset({"client_secret_post", "client_secret_basic"})
RESOURCE_OWNER: Final = "test-user"


@dataclass(frozen=True)
class Site:
    """Where this server lives and what it advertises."""

    port: int
    token_ttl_s: int
    advertise_s256: bool
    registration: bool

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def resource(self) -> str:
        return f"{self.issuer}/mcp"

    @property
    def resource_metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/oauth-protected-resource/mcp"


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_matches(registered: str, requested: str) -> bool:
    """Exact match, or the same loopback redirect URI on another port (RFC 8252 §7.3)."""
    if requested == registered:
        return True
    want, got = urlsplit(registered), urlsplit(requested)
    try:
        port = got.port
    except ValueError:
        return False
    return (
        port is not None
        and want.scheme == got.scheme == "http"
        and is_loopback(got.hostname)
        and (want.hostname, want.path, want.query) == (got.hostname, got.path, got.query)
        and not got.fragment
    )


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    auth_method: str
    grant_types: list[str]
    scope: str = " ".join(SCOPES)
    response_types: list[str] = field(default_factory=lambda: ["code"])
    default_redirect_uri: str | None = None
    client_name: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.default_redirect_uri

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return self.scope
        allowed = self.scope.split()
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(redirect_matches(uri, redirect_uri) for uri in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and hmac.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none" if self.auth_method == "none" else method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    resource: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float
    used: bool = False
    grant_id: int | None = None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):
    """One issuance: an access token and maybe a refresh token. A grant is the chain of issuances
    from one authorization code through its refreshes."""

    grant_id: int
    client_id: str
    scope: str
    resource: str
    access_token: str
    refresh_token: str | None
    expires_at: float
    access_revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.monotonic() >= self.expires_at


@dataclass
class Stats:
    registrations: int = 0
    authorizations: int = 0
    token_requests: dict[str, int] = field(
        default_factory=lambda: {"authorization_code": 0, "refresh_token": 0}
    )
    refresh_failures: int = 0
    mcp_requests_authorized: int = 0
    mcp_requests_rejected: int = 0


@dataclass
class Store:
    clients: dict[str, Client]
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    by_access: dict[str, Token] = field(default_factory=dict)
    by_refresh: dict[str, Token] = field(default_factory=dict)
    grant_ids: Iterator[int] = field(default_factory=itertools.count)
    stats: Stats = field(default_factory=Stats)

    def add(self, token: Token) -> None:
        self.tokens.append(token)
        self.by_access[token.access_token] = token
        if token.refresh_token:
            self.by_refresh[token.refresh_token] = token

    def revoke_grant(self, grant_id: int) -> None:
        for token in self.tokens:
            if token.grant_id == grant_id:
                token.access_revoked = token.refresh_revoked = True
