"""authlib components: the authorization code grant with PKCE (S256 only), the rotating refresh
grant, RFC 7591 registration and RFC 7009 revocation, each checking RFC 8707 `resource` where it
applies and keeping its state in the Store."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    InvalidRequestError,
    JsonRequest,
    OAuth2Error,
    OAuth2Request,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidRedirectURIError
from authlib.oauth2.rfc7636 import CodeChallenge

from .store import AUTH_METHODS, RESOURCE_OWNER, SCOPES, AuthorizationCode, Client, Token, is_loopback

if TYPE_CHECKING:
    from .authorization_server import OAuthServer

logger = logging.getLogger(__name__)

CODE_TTL_S: Final = 600.0  # RFC 6749 §4.1.2 recommends a code live at most ten minutes


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
