"""An OAuth 2.1 authorization server and an MCP resource server in one process, for end-to-end tests
of the proxy's OAuth client.

    python tests/servers/oauth_server.py --port PORT [--token-ttl SECONDS] [--no-s256] [--no-registration]

Serves 127.0.0.1:PORT (0 picks a free port) and prints `ready http://127.0.0.1:PORT` on stdout once
listening. Logs go to stderr and never carry a token, code or secret. All state is in memory.

The authorization server is assembled from authlib's components (RFC 6749 code and refresh grants,
RFC 7636 PKCE, RFC 7591 registration, RFC 7009 revocation, RFC 8414 metadata, RFC 9207 `iss`) behind
a small Starlette adapter; the MCP server is the SDK's low-level Server over streamable HTTP behind
our own bearer check. Issuer: http://127.0.0.1:PORT.

    GET  /.well-known/oauth-authorization-server      RFC 8414 metadata
    GET  /.well-known/oauth-protected-resource[/mcp]  RFC 9728 metadata of the resource /mcp
    GET  /authorize      validates the request, answers an HTML consent page
    POST /authorize      the page's hidden fields plus consent=allow (or deny) -> 302 code, state, iss
    POST /token          grant_type authorization_code | refresh_token
    POST /register       RFC 7591 (404 with --no-registration)
    POST /revoke         RFC 7009
    GET|POST|DELETE /mcp MCP; tools echo(text) and whoami() -> {"client_id", "scope"}
    POST /admin/revoke-all, POST /admin/expire-all, GET /admin/tokens, GET /admin/stats  (no auth)

What a client must know:
- No login: one fixed resource owner, and consent is the only step. Headless, GET /authorize, then
  POST the form's hidden fields (response_type, client_id, redirect_uri, scope, state,
  code_challenge, code_challenge_method, resource) plus consent=allow to /authorize and read Location.
- PKCE with code_challenge_method=S256 is required. `resource` (RFC 8707) must be the /mcp URL on
  /authorize and on both token grants (the MCP spec has clients send it on every token request);
  otherwise the error is invalid_target. redirect_uri is required unless the client registered
  exactly one. /authorize errors found before client_id and redirect_uri check out answer a 400
  HTML page; later ones redirect with error, error_description, state and iss (RFC 6749 §4.1.2.1).
- Client `preregistered` / `preregistered-secret` (client_secret_basic or client_secret_post) accepts
  the redirect URI http://127.0.0.1:<any port>/oauth/callback: RFC 8252 §7.3 lets a native client's
  loopback port vary, and every client here gets that flexibility for its loopback redirect URIs.
- Confidential clients may use client_secret_basic or client_secret_post; public ones "none".
  Registered clients get refresh tokens only if their grant_types include refresh_token (RFC 7591's
  default is authorization_code alone).
- Refresh tokens rotate: each refresh answers a new one and the old one is refused (invalid_grant).
  The previous access token stays valid until it expires. Revoking a refresh token (RFC 7009) or
  reusing an authorization code revokes every token of that grant.
- --no-s256 only drops code_challenge_methods_supported from the metadata (a compliant MCP client
  must then refuse to go on); the server still requires S256.
- /admin/revoke-all revokes every access and refresh token; /admin/expire-all expires every access
  token now (refresh tokens keep working); /admin/tokens lists every access and refresh token ever
  issued (a flat JSON list of strings).
  /admin/stats: token_requests counts /token requests per grant type whether they succeed or not;
  mcp_requests_* count HTTP requests at /mcp.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hmac
import html
import ipaddress
import itertools
import json
import logging
import secrets
import signal
import socket
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import mcp.types as types
import trio
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    JsonPayload,
    JsonRequest,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    RefreshTokenGrant,
    TokenMixin,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidRedirectURIError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9207 import AuthorizationServerMetadata as IssuerParameterMetadata
from authlib.oauth2.rfc9207 import IssuerParameter
from hypercorn.config import Config
from hypercorn.trio import serve
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

logger = logging.getLogger("oauth_server")

SCOPES: Final = ("mcp:read", "mcp:write")
AUTH_METHODS: Final = ("none", "client_secret_post", "client_secret_basic")
SECRET_METHODS: Final = frozenset({"client_secret_post", "client_secret_basic"})
PREREGISTERED_ID: Final = "preregistered"
PREREGISTERED_SECRET: Final = "preregistered-secret"
PREREGISTERED_REDIRECT: Final = "http://127.0.0.1/oauth/callback"  # any port: see check_redirect_uri
RESOURCE_OWNER: Final = "test-user"
AUTHORIZE_FIELDS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)
CODE_TTL_S: Final = 600.0  # RFC 6749 §4.1.2 recommends a code live at most ten minutes
DEFAULT_TOKEN_TTL_S: Final = 3600
GRACEFUL_TIMEOUT_S: Final = 1.0  # open SSE streams hold shutdown this long
READ_TIMEOUT_S: Final = 30.0  # hypercorn's default never cuts off a stalled request body


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


# --- authlib's framework seam: requests in, replies out -------------------------------------------


class FormPayload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):
    """An already-read HTTP request: authlib's server is synchronous, Starlette's body is not."""

    def __init__(self, request: Request, query: list[tuple[str, str]], form: list[tuple[str, str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self.payload = FormPayload(query + form)
        self._args, self._form = dict(query), dict(form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class JsonBody(JsonPayload):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class JsonBodyRequest(JsonRequest):
    def __init__(self, request: Request, data: dict[str, Any]) -> None:
        super().__init__(request.method, str(request.url), request.headers)
        self.payload = JsonBody(data)


async def read_form_request(request: Request, *, query: bool) -> FormRequest:
    form: list[tuple[str, str]] = []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type == "application/x-www-form-urlencoded":
        form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return FormRequest(request, list(request.query_params.multi_items()) if query else [], form)


@dataclass
class Reply:
    """What authlib answers; `location` is the attribute its RFC 9207 hook rewrites."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((value for key, value in self.headers if key.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]

    def to_response(self) -> Response:
        content = json.dumps(self.body) if isinstance(self.body, dict) else self.body
        return Response(content, status_code=self.status, headers=dict(self.headers))


# --- authlib components ---------------------------------------------------------------------------


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is invalid, unknown or malformed."""

    error = "invalid_target"


def check_resource(request: OAuth2Request, expected: str, redirect_uri: str | None = None) -> None:
    if request.payload.datalist.get("resource", []) != [expected]:
        raise InvalidTargetError(f"resource must be {expected} (RFC 8707)", redirect_uri=redirect_uri)


class S256Challenge(CodeChallenge):
    """PKCE as OAuth 2.1 has it: a challenge on every request, and S256 only."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant: CodeGrant, redirect_uri: str | None) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        check_resource(self.request, self.server.site.resource, redirect_uri)
        return redirect_uri

    def validate_token_request(self) -> None:
        super().validate_token_request()
        check_resource(self.request, self.request.authorization_code.resource)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.store.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            resource=data["resource"],
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            expires_at=time.monotonic() + CODE_TTL_S,
        )
        self.server.store.stats.authorizations += 1
        logger.info("client %s authorized for scope %r", request.client.client_id, request.scope)

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        record = self.server.store.codes.get(code)
        if record is None or record.client_id != client.client_id or time.monotonic() >= record.expires_at:
            return None
        if record.used:
            # RFC 6749 §4.1.2: a code used twice is refused, and the tokens it gave SHOULD be revoked.
            if record.grant_id is not None:
                self.server.store.revoke_grant(record.grant_id)
            logger.warning("client %s reused an authorization code: its grant is revoked", client.client_id)
            return None
        return record

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        authorization_code.used = True

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return RESOURCE_OWNER


class RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: OAuth 2.1 §4.3.1 for public clients
    server: OAuthServer

    def validate_token_request(self) -> None:
        super().validate_token_request()
        check_resource(self.request, self.request.refresh_token.resource)

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = self.server.store.by_refresh.get(refresh_token)
        return token if token is not None and not token.refresh_revoked else None

    def authenticate_user(self, refresh_token: Token) -> str:
        return RESOURCE_OWNER

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.refresh_revoked = True


class Registration(ClientRegistrationEndpoint):
    server: OAuthServer

    def authenticate_token(self, request: JsonRequest) -> bool:
        return True  # open registration: RFC 7591 §3 makes the initial access token optional

    def get_server_metadata(self) -> dict[str, Any]:
        return self.server.metadata

    def extract_client_metadata(self, request: JsonRequest) -> dict[str, Any]:
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        uris = metadata.get("redirect_uris") or []
        if not uris:
            raise InvalidRedirectURIError("redirect_uris is required for the authorization code flow")
        for uri in uris:
            parts = urlsplit(uri)
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise InvalidRedirectURIError("http redirect URIs must use a loopback IP (RFC 8252)")
        return metadata

    def generate_client_info(self, request: JsonRequest) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        if request.payload.data.get("token_endpoint_auth_method") == "none":
            del info["client_secret"], info["client_secret_expires_at"]
        return info

    def save_client(
        self, client_info: dict[str, Any], metadata: dict[str, Any], request: JsonRequest
    ) -> Client:
        uris = list(metadata["redirect_uris"])
        client = Client(
            client_id=client_info["client_id"],
            client_secret=client_info.get("client_secret"),
            redirect_uris=uris,
            auth_method=metadata["token_endpoint_auth_method"],
            grant_types=list(metadata.get("grant_types") or ["authorization_code"]),
            response_types=list(metadata.get("response_types") or ["code"]),
            scope=metadata.get("scope") or " ".join(SCOPES),
            default_redirect_uri=uris[0] if len(uris) == 1 else None,
            client_name=metadata.get("client_name"),
        )
        self.server.store.clients[client.client_id] = client
        self.server.store.stats.registrations += 1
        logger.info("registered client %s (%s)", client.client_id, client.auth_method)
        return client


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: OAuthServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        store = self.server.store
        return store.by_access.get(token_string) or store.by_refresh.get(token_string)

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        if request.form["token"] == token.refresh_token:
            # RFC 7009 §2.1: revoking a refresh token SHOULD also kill the access tokens of its grant.
            self.server.store.revoke_grant(token.grant_id)
            logger.info("client %s revoked a refresh token and its grant", token.client_id)
        else:
            token.access_revoked = True
            logger.info("client %s revoked an access token", token.client_id)


class Issuer(IssuerParameter):
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


def server_metadata(site: Site) -> dict[str, Any]:
    metadata = AuthorizationServerMetadata(
        issuer=site.issuer,
        authorization_endpoint=f"{site.issuer}/authorize",
        token_endpoint=f"{site.issuer}/token",
        registration_endpoint=f"{site.issuer}/register",
        revocation_endpoint=f"{site.issuer}/revoke",
        scopes_supported=list(SCOPES),
        response_types_supported=["code"],
        grant_types_supported=["authorization_code", "refresh_token"],
        token_endpoint_auth_methods_supported=list(AUTH_METHODS),
        revocation_endpoint_auth_methods_supported=list(AUTH_METHODS),
        code_challenge_methods_supported=["S256"],
        authorization_response_iss_parameter_supported=True,
    )
    if not site.registration:
        del metadata["registration_endpoint"]
    if not site.advertise_s256:
        del metadata["code_challenge_methods_supported"]
    metadata.validate(metadata_classes=[IssuerParameterMetadata])
    return dict(metadata)


class OAuthServer(AuthorizationServer):
    def __init__(self, site: Site, store: Store) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.site, self.store = site, store
        self.metadata = server_metadata(site)
        self.issuer_parameter = Issuer(site.issuer)

        def opaque(**_: Any) -> str:
            return secrets.token_urlsafe(32)

        self.register_token_generator("default", BearerTokenGenerator(opaque, opaque, site.token_ttl_s))
        self.register_grant(CodeGrant, [S256Challenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)
        if site.registration:
            self.register_endpoint(Registration)
        self.register_extension(self.issuer_parameter)

    def query_client(self, client_id: str) -> Client | None:
        return self.store.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if request.refresh_token is not None:
            grant_id, resource = request.refresh_token.grant_id, request.refresh_token.resource
        else:
            grant_id, resource = next(self.store.grant_ids), request.authorization_code.resource
            request.authorization_code.grant_id = grant_id
        self.store.add(
            Token(
                grant_id=grant_id,
                client_id=request.client.client_id,
                scope=token.get("scope", ""),
                resource=resource,
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                expires_at=time.monotonic() + token["expires_in"],
            )
        )
        logger.info("issued tokens to client %s by %s", request.client.client_id, request.payload.grant_type)

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def create_json_request(self, request: JsonBodyRequest) -> JsonBodyRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Reply:
        return Reply(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def authorization_error(self, request: FormRequest, error: OAuth2Error) -> Response:
        """RFC 6749 §4.1.2.1: redirect only to a validated redirect_uri; else tell the user."""
        if error.redirect_uri:
            reply = self.handle_error_response(request, error)
            self.issuer_parameter.add_issuer_parameter(self, reply)  # RFC 9207 §2: errors too
            return reply.to_response()
        logger.info("authorization request refused: %s", error.error)
        page = (
            f"<!doctype html><h1>{html.escape(error.error)}</h1><p>{html.escape(error.description or '')}</p>"
        )
        return HTMLResponse(page, status_code=400)


def consent_page(grant: CodeGrant) -> str:
    data = grant.request.payload.data
    fields = "\n".join(
        f'<input type="hidden" name="{name}" value="{html.escape(data[name])}">'
        for name in AUTHORIZE_FIELDS
        if name in data
    )
    client = grant.client
    return f"""<!doctype html>
<html><head><title>Authorize</title></head><body>
<h1>Authorize {html.escape(client.client_name or client.client_id)}</h1>
<p>Scope <code>{html.escape(grant.request.scope)}</code> on <code>{html.escape(data["resource"])}</code>.</p>
<form method="post" action="/authorize">
{fields}
<button type="submit" name="consent" value="allow">Allow</button>
<button type="submit" name="consent" value="deny">Deny</button>
</form></body></html>
"""


# --- the resource server --------------------------------------------------------------------------

TOOLS: Final = [
    types.Tool(
        name="echo",
        description="Echo a text back unchanged.",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    ),
    types.Tool(
        name="whoami",
        description="Report the client_id and scope of the access token this call carried.",
        input_schema={"type": "object", "properties": {}},
    ),
]


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "echo":
        text = str((params.arguments or {}).get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    if params.name == "whoami":
        request = getattr(ctx, "request", None)
        token = request.scope.get("auth") if request is not None else None
        who = {"client_id": token.client_id, "scope": token.scope} if isinstance(token, Token) else {}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(who))], structured_content=who
        )
    return types.CallToolResult(content=[types.TextContent(type="text", text="unknown tool")], is_error=True)


class BearerGuard:
    """/mcp passes only requests carrying a live access token bound to this resource (RFC 6750,
    RFC 8707); the rest get the RFC 9728 challenge. The token rides on in scope["auth"]."""

    def __init__(self, site: Site, store: Store, manager: StreamableHTTPSessionManager) -> None:
        self.site, self.store, self.manager = site, store, manager

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token, problem = self.authenticate(Headers(scope=scope).get("authorization"))
        if token is None:
            self.store.stats.mcp_requests_rejected += 1
            logger.info("mcp request rejected: %s", problem or "no bearer token")
            await self.challenge(problem)(scope, receive, send)
            return
        self.store.stats.mcp_requests_authorized += 1
        scope["auth"] = token
        await self.manager.handle_request(scope, receive, send)

    def authenticate(self, header: str | None) -> tuple[Token | None, str | None]:
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None, None  # RFC 6750 §3.1: no credentials, so no error code
        token = self.store.by_access.get(value.strip())
        if token is None:
            return None, "unknown access token"
        if token.access_revoked:
            return None, "the access token was revoked"
        if token.is_expired():
            return None, "the access token expired"
        if token.resource != self.site.resource:
            return None, "the access token was issued for another resource"
        return token, None

    def challenge(self, problem: str | None) -> Response:
        header = f'Bearer resource_metadata="{self.site.resource_metadata_url}"'
        body = {"error": "unauthorized", "error_description": "an access token is required"}
        if problem:
            header += f', error="invalid_token", error_description="{problem}"'
            body = {"error": "invalid_token", "error_description": problem}
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": header})


# --- HTTP -----------------------------------------------------------------------------------------


def make_app(site: Site) -> Starlette:
    preregistered = Client(
        client_id=PREREGISTERED_ID,
        client_secret=PREREGISTERED_SECRET,
        redirect_uris=[PREREGISTERED_REDIRECT],
        auth_method="client_secret_basic",
        grant_types=["authorization_code", "refresh_token"],
    )
    store = Store(clients={PREREGISTERED_ID: preregistered})
    server = OAuthServer(site, store)
    hosts = [f"127.0.0.1:{site.port}", f"localhost:{site.port}"]
    manager = StreamableHTTPSessionManager(
        Server("oauth-server", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool),
        security_settings=TransportSecuritySettings(
            allowed_hosts=hosts, allowed_origins=[f"http://{host}" for host in hosts]
        ),
    )
    resource_metadata = {
        "resource": site.resource,
        "authorization_servers": [site.issuer],
        "scopes_supported": list(SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_name": "oauth_server test MCP server",
    }

    async def authorization_server_metadata(request: Request) -> Response:
        return JSONResponse(server.metadata)

    async def protected_resource_metadata(request: Request) -> Response:
        return JSONResponse(resource_metadata)

    async def authorize(request: Request) -> Response:
        oauth = await read_form_request(request, query=request.method == "GET")
        try:
            grant = server.get_consent_grant(oauth, end_user=RESOURCE_OWNER)
        except OAuth2Error as error:
            return server.authorization_error(oauth, error)
        if request.method == "GET":
            return HTMLResponse(consent_page(grant))
        user = RESOURCE_OWNER if oauth.form.get("consent") == "allow" else None
        reply: Reply = server.create_authorization_response(oauth, grant_user=user, grant=grant)
        return reply.to_response()

    async def token(request: Request) -> Response:
        oauth = await read_form_request(request, query=False)
        grant_type = oauth.form.get("grant_type", "")
        if grant_type in store.stats.token_requests:
            store.stats.token_requests[grant_type] += 1
        reply: Reply = server.create_token_response(oauth)
        if reply.status != 200:
            if grant_type == "refresh_token":
                store.stats.refresh_failures += 1
            logger.info("token request (%s) refused: %s", grant_type, reply.body.get("error"))
        return reply.to_response()

    async def register(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError:
            data = None
        if not isinstance(data, dict):
            body = {"error": "invalid_client_metadata", "error_description": "the body must be a JSON object"}
            return JSONResponse(body, status_code=400)
        reply: Reply = server.create_endpoint_response("client_registration", JsonBodyRequest(request, data))
        return reply.to_response()

    async def revoke(request: Request) -> Response:
        reply: Reply = server.create_endpoint_response(
            "revocation", await read_form_request(request, query=False)
        )
        return reply.to_response()

    async def revoke_all(request: Request) -> Response:
        for issued in store.tokens:
            issued.access_revoked = issued.refresh_revoked = True
        logger.info("admin: revoked all %d issuances", len(store.tokens))
        return JSONResponse({"revoked": len(store.tokens)})

    async def expire_all(request: Request) -> Response:
        now = time.monotonic()
        live = [issued for issued in store.tokens if issued.expires_at > now]
        for issued in live:
            issued.expires_at = now
        logger.info("admin: expired %d access tokens", len(live))
        return JSONResponse({"expired": len(live)})

    async def list_tokens(request: Request) -> Response:
        values = [value for t in store.tokens for value in (t.access_token, t.refresh_token) if value]
        return JSONResponse(values)

    async def stats(request: Request) -> Response:
        return JSONResponse(asdict(store.stats))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    routes = [
        Route("/.well-known/oauth-authorization-server", authorization_server_metadata),
        Route("/.well-known/oauth-protected-resource/mcp", protected_resource_metadata),
        Route("/.well-known/oauth-protected-resource", protected_resource_metadata),
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/token", token, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/admin/revoke-all", revoke_all, methods=["POST"]),
        Route("/admin/expire-all", expire_all, methods=["POST"]),
        Route("/admin/tokens", list_tokens),
        Route("/admin/stats", stats),
        Route("/mcp", BearerGuard(site, store, manager), methods=["GET", "POST", "DELETE"]),
    ]
    if site.registration:
        routes.append(Route("/register", register, methods=["POST"]))
    return Starlette(routes=routes, lifespan=lifespan)


async def main(arguments: argparse.Namespace) -> None:
    # Bind first so that the issuer (which names the port) is known before the app is built.
    listener = socket.socket()
    listener.bind(("127.0.0.1", arguments.port))
    site = Site(
        port=listener.getsockname()[1],
        token_ttl_s=arguments.token_ttl,
        advertise_s256=not arguments.no_s256,
        registration=not arguments.no_registration,
    )
    config = Config()
    config.bind = [f"fd://{listener.detach()}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    config.read_timeout = READ_TIMEOUT_S
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through our handler, not a second one
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(on_signal)
            await nursery.start(functools.partial(serve, make_app(site), config, shutdown_trigger=stop.wait))
            print(f"ready {site.issuer}", flush=True)
            logger.info("serving %s (token ttl %ss)", site.issuer, site.token_ttl_s)


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument(
        "--token-ttl", type=positive, default=DEFAULT_TOKEN_TTL_S, help="access token seconds"
    )
    parser.add_argument("--no-s256", action="store_true", help="omit code_challenge_methods_supported")
    parser.add_argument("--no-registration", action="store_true", help="no RFC 7591 endpoint")
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="oauth_server %(levelname)s %(message)s"
    )
    for noisy in ("authlib", "mcp", "httpx"):  # authlib logs issued tokens at DEBUG
        logging.getLogger(noisy).setLevel(logging.WARNING)
    trio.run(main, parser.parse_args())
