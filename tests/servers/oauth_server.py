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

This file is only the command line: the code is the package tests/servers/oauth/, whose __init__
lists its modules.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Final

import trio

if __package__:  # imported (or run with -m) as tests.servers.oauth_server
    from .oauth import main
else:  # run as a script: sys.path[0] is tests/servers, which holds the package
    from oauth import main

DEFAULT_TOKEN_TTL_S: Final = 3600


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
