"""The resource server: an MCP server with the tools echo and whoami, and the bearer check that
guards it."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import mcp.types as types
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from .store import Site, Store, Token

logger = logging.getLogger(__name__)

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
