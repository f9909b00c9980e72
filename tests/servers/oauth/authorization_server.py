"""The authorization server: authlib's AuthorizationServer assembled from the grants and endpoints,
with its RFC 8414 metadata, RFC 9207 `iss`, and the HTML pages of /authorize (consent, and the
errors that cannot be redirected)."""

from __future__ import annotations

import html
import logging
import secrets
import time
from typing import Any, Final

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9207 import AuthorizationServerMetadata as IssuerParameterMetadata, IssuerParameter
from starlette.responses import HTMLResponse, Response

from .grants import CodeGrant, RefreshGrant, Registration, Revocation, S256Challenge
from .seam import FormRequest, JsonBodyRequest, Reply
from .store import AUTH_METHODS, SCOPES, Client, Site, Store, Token

logger = logging.getLogger(__name__)

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
