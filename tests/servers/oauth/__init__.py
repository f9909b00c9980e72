"""The OAuth test server that tests/servers/oauth_server.py runs (its docstring says what it serves).

- store: the model; where the server lives (Site), clients, authorization codes, tokens, the Store
- seam: authlib's framework seam; requests in, replies out
- grants: authlib components; the code and refresh grants, registration, revocation
- authorization_server: the AuthorizationServer that assembles them, its metadata and HTML pages
- resource: the MCP resource server's tools and the bearer check in front of it
- app: the Starlette app and its routes, served by hypercorn until a signal
"""

from .app import main, make_app
from .store import Site

__all__ = ["Site", "main", "make_app"]
