"""HTTP: the Starlette app that routes to the authorization server, the resource server and the
admin endpoints, and serving it with hypercorn until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Final

import trio
from authlib.oauth2.rfc6749 import OAuth2Error
from hypercorn.config import Config
from hypercorn.trio import serve
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .authorization_server import OAuthServer, consent_page
from .resource import BearerGuard, call_tool, list_tools
from .seam import JsonBodyRequest, Reply, read_form_request
from .store import RESOURCE_OWNER, SCOPES, Client, Site, Store

logger = logging.getLogger(__name__)

PREREGISTERED_ID: Final = "preregistered"
PREREGISTERED_SECRET: Final = "preregistered-secret"
PREREGISTERED_REDIRECT: Final = "http://127.0.0.1/oauth/callback"  # any port: see Client.check_redirect_uri
GRACEFUL_TIMEOUT_S: Final = 1.0  # open SSE streams hold shutdown this long
READ_TIMEOUT_S: Final = 30.0  # hypercorn's default never cuts off a stalled request body


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
