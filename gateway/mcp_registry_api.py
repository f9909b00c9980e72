"""`/api/v1/registry`: find servers in the MCP registries (and the reference servers shipped with
us) and add one, always quarantined (services/mcp_registry.py converts the entry)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.rest import fail, json_body, ok
from gateway.upstreams import Upstreams
from services import mcp_registry


class RegistryApi:
    def __init__(self, upstreams: Upstreams, registries: tuple[str, ...]) -> None:
        self.upstreams = upstreams
        self.registries = list(registries)

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/registry/search", self.search, methods=["GET"]),
            Route("/api/v1/registry/add", self.add, methods=["POST"]),
        ]

    async def search(self, request: Request) -> Response:
        """`?q=words` (`&offline=true`: the shipped list alone): the latest version of each match."""
        query = request.query_params.get("q", "").strip()
        offline = request.query_params.get("offline", "").lower() in ("1", "true", "yes")
        results: list[dict[str, Any]] = []
        errors: list[str] = []
        if not offline:
            async with httpx2.AsyncClient(follow_redirects=True) as http:
                for registry in self.registries:
                    try:
                        found = await mcp_registry.search(http, registry, query)
                    except mcp_registry.RegistryError as exc:
                        errors.append(str(exc))
                        continue
                    results += [mcp_registry.summary(e, registry) for e in found]
        seen = {r["id"] for r in results}
        results += [
            mcp_registry.summary(e, "offline")
            for e in mcp_registry.search_offline(query)
            if e.get("name") not in seen
        ]
        return ok({"servers": results, "errors": errors, "registries": self.registries})

    async def add(self, request: Request) -> Response:
        """`{"id", "name"?, "remote"?}`: the entry as a quarantined server, and what it still needs."""
        try:
            body = await json_body(request)
        except ValueError as exc:
            return fail(request, 400, str(exc))
        server_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(server_id, str) or not server_id:
            return fail(request, 400, 'give the registry id of a server: {"id": "io.github.owner/name"}')
        name = body.get("name")
        try:
            async with httpx2.AsyncClient(follow_redirects=True) as http:
                entry = await mcp_registry.find(http, self.registries, server_id)
            conversion = mcp_registry.to_server(
                entry,
                name if isinstance(name, str) and name else None,
                prefer_remote=body.get("remote") is True,
            )
        except mcp_registry.RegistryError as exc:
            return fail(request, 404, str(exc))
        if body.get("dry_run") is True:
            added: Any = None
        else:
            result = await self.upstreams.config("add", body=conversion.server)
            if not result.ok:
                return fail(request, result.status, result.error or "failed")
            added = json.loads(result.body)
        data = {
            "server": conversion.server,
            "needs": conversion.needs,
            "notes": conversion.notes,
            "added": added,
        }
        return ok(data, status=200 if added is None else 201)
