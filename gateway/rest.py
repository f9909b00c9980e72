"""REST under /api/v1: `{"success": true, "data": ...}` or `{"success": false, "error", "request_id"}`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Final

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bus.errors import ProxyError
from bus.messages import ServerStatus
from gateway.registry import Registry
from gateway.upstreams import Upstreams
from services.upstream_log import tail

DEFAULT_LOG_TAIL: Final = 100
MAX_LOG_TAIL: Final = 10_000
VERSION: Final = "0.1.0"


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status)


def fail(request: Request, status: int, message: str) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "")
    return JSONResponse({"success": False, "error": message, "request_id": request_id}, status_code=status)


async def json_body(request: Request) -> Any:
    """The parsed JSON body, or None when it is not JSON."""
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def server_view(status: ServerStatus) -> dict[str, Any]:
    """What REST shows of a server. Config values (headers, env) are not part of the status."""
    view = msgspec.to_builtins(status)
    view["connected"] = status.state == "running"
    view.pop("generation", None)
    view.pop("call_timeout_s", None)
    return view


class RestApi:
    def __init__(self, registry: Registry, upstreams: Upstreams, data_dir: Path, listen: str) -> None:
        self.registry = registry
        self.upstreams = upstreams
        self.data_dir = data_dir
        self.listen = listen
        self.started = time.time()

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/status", self.status),
            Route("/api/v1/servers", self.servers),
            Route("/api/v1/servers/{name}", self.server),
            Route("/api/v1/servers/{name}/tools", self.tools),
            Route("/api/v1/servers/{name}/logs", self.logs),
            Route("/api/v1/servers/{name}/{action:str}", self.action, methods=["POST"]),
            Route("/api/v1/secrets", self.secrets_list, methods=["GET"]),
            Route("/api/v1/secrets", self.secrets_set, methods=["POST"]),
            Route("/api/v1/secrets/{name}", self.secrets_delete, methods=["DELETE"]),
        ]

    async def secrets_list(self, request: Request) -> Response:
        result = await self.upstreams.secret("list")
        if not result.ok:
            return fail(request, result.status, result.error or "failed")
        return ok({"backend": result.backend, "secrets": [msgspec.to_builtins(s) for s in result.secrets]})

    async def secrets_set(self, request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            return fail(request, 400, 'body: expected a JSON object {"name": ..., "value": ...}')
        name, value = body.get("name"), body.get("value")
        if not isinstance(name, str):
            return fail(request, 400, "name: expected a string")
        if not isinstance(value, str):
            return fail(request, 400, "value: expected a string")
        result = await self.upstreams.secret("set", name, value)
        if not result.ok:
            return fail(request, result.status, result.error or "failed")
        return ok({"name": name, "backend": result.backend, "restarted": result.restarted}, status=201)

    async def secrets_delete(self, request: Request) -> Response:
        result = await self.upstreams.secret("delete", request.path_params["name"])
        if not result.ok:
            return fail(request, result.status, result.error or "failed")
        return ok({"name": request.path_params["name"], "deleted": True, "restarted": result.restarted})

    async def status(self, request: Request) -> Response:
        servers = list(self.registry.servers.values())
        return ok(
            {
                "version": VERSION,
                "listen": self.listen,
                "uptime_s": round(time.time() - self.started, 3),
                "synced": self.registry.synced,
                "servers_total": len(servers),
                "servers_running": sum(s.state == "running" for s in servers),
                "tools_total": sum(len(self.registry.tools_of(s.name)) for s in servers),
                "secrets_backend": self.upstreams.secrets_backend,
            }
        )

    async def servers(self, request: Request) -> Response:
        return ok(
            {
                "servers": [
                    server_view(s) for s in sorted(self.registry.servers.values(), key=lambda s: s.name)
                ]
            }
        )

    def _known(self, request: Request) -> ServerStatus | None:
        return self.registry.servers.get(request.path_params["name"])

    async def server(self, request: Request) -> Response:
        status = self._known(request)
        if status is None:
            return fail(request, 404, f"unknown server {request.path_params['name']!r}")
        return ok({"server": server_view(status)})

    async def tools(self, request: Request) -> Response:
        status = self._known(request)
        if status is None:
            return fail(request, 404, f"unknown server {request.path_params['name']!r}")
        tools = [msgspec.to_builtins(t) for t in self.registry.tools_of(status.name)]
        return ok({"server": status.name, "tools": tools})

    async def logs(self, request: Request) -> Response:
        status = self._known(request)
        if status is None:
            return fail(request, 404, f"unknown server {request.path_params['name']!r}")
        try:
            lines = int(request.query_params.get("tail", DEFAULT_LOG_TAIL))
        except ValueError:
            return fail(request, 400, "tail: expected an integer")
        lines = max(0, min(lines, MAX_LOG_TAIL))
        path = self.data_dir / "logs" / f"server-{status.name}.log"
        return ok({"server": status.name, "lines": tail(path, lines)})

    async def action(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ("restart",):
            return fail(request, 404, f"unknown action {action!r}")
        if self._known(request) is None:
            return fail(request, 404, f"unknown server {name!r}")
        try:
            result = await self.upstreams.command(action, name)
        except ProxyError as exc:
            return fail(request, 502, str(exc))
        if not result.ok:
            return fail(request, 400, result.error or "failed")
        return ok({"server": name, "action": action, "accepted": True})
