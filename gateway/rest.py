"""REST under /api/v1: `{"success": true, "data": ...}` or `{"success": false, "error", "request_id"}`.

Reads come from the registry (fed by the supervisor); every change goes to
the supervisor, the one writer of the config file.
"""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import pydantic_core
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bus.messages import ConfigResult, ServerStatus, ToolInfo
from gateway.admission import RETRY_AFTER_S, retry_after
from gateway.call_context import CallContext
from gateway.calling import Caller
from gateway.registry import Registry
from gateway.resource_uris import qualify
from gateway.tool_names import direct_name, split_qualified
from gateway.upstreams import Upstreams
from services.activity import FILTERS, STATUSES, ActivityLog
from services.isolation import instance_id
from services.pinning import definition, prompt_definition
from services.upstream_log import log_path, tail

DEFAULT_LOG_TAIL: Final = 100
MAX_LOG_TAIL: Final = 10_000
VERSION: Final = "0.1.0"
MAX_ACTIVITY_PAGE: Final = 1000
MAX_SQLITE_INTEGER: Final = 2**63 - 1
CALL_VARIANTS: Final = ("call_tool_read", "call_tool_write", "call_tool_destructive")
CALL_SURFACES: Final = ("rest", "cli", "ui")
"""What `X-Mcpproxy-Surface` may name on POST /api/v1/tools/call (the activity log's `surface`)."""
CONFIG_ACTIONS: Final = ("enable", "disable", "quarantine", "unquarantine", "reject")
"""`unquarantine` approves (applying a pending change; body `{"pending_change": id}` optionally names
the one reviewed), `reject` turns a pending change down."""
LOGIN_COMMAND_TIMEOUT_S: Final = 40.0
"""The supervisor waits up to 30 s for the worker's authorization URL; this covers that and the bus."""
RUNTIME_FIELDS: Final = ("enabled", "quarantined")


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status)


def fail(request: Request, status: int, message: str) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id", "")
    return JSONResponse({"success": False, "error": message, "request_id": request_id}, status_code=status)


async def json_body(request: Request) -> Any:
    """The parsed JSON body; raises ValueError with a readable message when it is not JSON.

    The MCP endpoints' parser, with their nesting limit (200 levels): `json.loads` recurses until
    Python's own limit and raised RecursionError, a 500, on a body nested 100,000 deep.
    """
    raw = await request.body()
    try:
        return pydantic_core.from_json(raw)
    except ValueError as exc:
        raise ValueError(f"body: invalid JSON ({exc})") from None


def server_view(status: ServerStatus) -> dict[str, Any]:
    """The server's (redacted) config merged with its live status."""
    config = json.loads(status.config_json or b"{}")
    live = msgspec.to_builtins(status)
    live.pop("config_json", None)
    live.pop("generation", None)
    live.pop("call_timeout_s", None)
    view = {**config, **live}
    view["protocol"] = config.get("protocol", status.protocol)
    view["connected"] = status.state == "running"
    view["action"] = "login" if status.state == "needs_login" else None
    return view


class ApproveToolsBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/servers/{name}/tools/approve. Without a body, or with `{}`, every
    pending or changed tool is approved; so anything else that is not exactly this shape is refused,
    never read as "all"."""

    tools: list[str] | msgspec.UnsetType = msgspec.UNSET


class ApprovePromptsBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/v1/servers/{name}/prompts/approve, read like ApproveToolsBody."""

    prompts: list[str] | msgspec.UnsetType = msgspec.UNSET


def approve_body(raw: bytes, kind: Literal["tools", "prompts"] = "tools") -> list[str] | None:
    """The tools (or prompts) a request names, None for all; ValueError with a readable message otherwise."""
    hint = f'expected {{"{kind}": ["{kind[:-1]} name", ...]}}, or no body to approve every held {kind[:-1]}'
    if not raw.strip():
        return None
    try:
        if kind == "tools":
            names = msgspec.json.decode(raw, type=ApproveToolsBody).tools
        else:
            names = msgspec.json.decode(raw, type=ApprovePromptsBody).prompts
    except msgspec.DecodeError as exc:  # ValidationError too
        raise ValueError(f"body: {exc}; {hint}") from None
    if names is msgspec.UNSET:
        return None
    if not names:
        raise ValueError(f"{kind}: the list is empty; {hint}")
    return names


def definition_diff(previous: dict[str, Any], tool: ToolInfo) -> str:
    """A unified diff of the approved definition against the one the upstream serves now."""
    return pinned_diff(previous, definition(tool))


def pinned_diff(previous: dict[str, Any], current: dict[str, Any]) -> str:
    """A unified diff of an approved definition (of a tool or a prompt) against the one served now."""
    before = json.dumps(previous, indent=2, sort_keys=True).splitlines()
    after = json.dumps(current, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(before, after, "approved", "served now", lineterm=""))


def answer(request: Request, result: ConfigResult) -> Response:
    if not result.ok:
        return fail(request, result.status, result.error or "failed")
    return ok(json.loads(result.body), status=result.status)


class RestApi:
    def __init__(self, registry: Registry, upstreams: Upstreams, data_dir: Path, listen: str) -> None:
        self.registry = registry
        self.upstreams = upstreams
        self.data_dir = data_dir
        self.listen = listen
        self.started = time.time()
        self.activity: ActivityLog | None = None
        self.caller: Caller | None = None

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/status", self.status, methods=["GET"]),
            Route("/api/v1/servers", self.servers, methods=["GET"]),
            Route("/api/v1/servers", self.add_server, methods=["POST"]),
            Route("/api/v1/servers/{name}", self.server, methods=["GET"]),
            Route("/api/v1/servers/{name}", self.patch_server, methods=["PATCH"]),
            Route("/api/v1/servers/{name}", self.remove_server, methods=["DELETE"]),
            Route("/api/v1/servers/{name}/tools", self.tools, methods=["GET"]),
            Route("/api/v1/servers/{name}/prompts", self.prompts, methods=["GET"]),
            Route("/api/v1/servers/{name}/resources", self.resources, methods=["GET"]),
            Route("/api/v1/servers/{name}/logs", self.logs, methods=["GET"]),
            Route("/api/v1/servers/{name}/config-to-secret", self.config_to_secret, methods=["POST"]),
            Route("/api/v1/servers/{name}/tools/approve", self.approve_tools, methods=["POST"]),
            Route("/api/v1/servers/{name}/prompts/approve", self.approve_prompts, methods=["POST"]),
            Route("/api/v1/servers/{name}/{action:str}", self.action, methods=["POST"]),
            Route("/api/v1/config", self.get_config, methods=["GET"]),
            Route("/api/v1/config/validate", self.validate_config, methods=["POST"]),
            Route("/api/v1/activity", self.activity_list, methods=["GET"]),
            Route("/api/v1/activity/{id:int}", self.activity_get, methods=["GET"]),
            Route("/api/v1/tools/call", self.call_tool, methods=["POST"]),
            Route("/api/v1/secrets", self.secrets_list, methods=["GET"]),
            Route("/api/v1/secrets", self.secrets_set, methods=["POST"]),
            Route("/api/v1/secrets/{name}", self.secrets_delete, methods=["DELETE"]),
            Route("/api/v1/docker/status", self.docker_status, methods=["GET"]),
        ]

    def server_views(self) -> list[dict[str, Any]]:
        return [server_view(s) for s in sorted(self.registry.servers.values(), key=lambda s: s.name)]

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
        return ok({"servers": self.server_views()})

    def _unknown(self, request: Request) -> Response | None:
        name = request.path_params["name"]
        return None if name in self.registry.servers else fail(request, 404, f"unknown server {name!r}")

    async def server(self, request: Request) -> Response:
        if missing := self._unknown(request):
            return missing
        return ok({"server": server_view(self.registry.servers[request.path_params["name"]])})

    async def add_server(self, request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return fail(request, 400, str(exc))
        return answer(request, await self.upstreams.config("add", body=body))

    async def patch_server(self, request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return fail(request, 400, str(exc))
        return answer(request, await self.upstreams.config("patch", request.path_params["name"], body))

    async def remove_server(self, request: Request) -> Response:
        return answer(request, await self.upstreams.config("remove", request.path_params["name"]))

    async def config_to_secret(self, request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return fail(request, 400, str(exc))
        return answer(
            request, await self.upstreams.config("config_to_secret", request.path_params["name"], body)
        )

    async def get_config(self, request: Request) -> Response:
        return answer(request, await self.upstreams.config("get"))

    async def validate_config(self, request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return fail(request, 400, str(exc))
        return answer(request, await self.upstreams.config("validate", body=body))

    async def tools(self, request: Request) -> Response:
        if missing := self._unknown(request):
            return missing
        name = request.path_params["name"]
        tools = []
        for tool in self.registry.all_tools_of(name):
            view = msgspec.to_builtins(tool)
            view.update(self.registry.tier(name, tool).shown())
            if tool.previous is not None:
                view["diff"] = definition_diff(tool.previous, tool)
            tools.append(view)
        return ok({"server": name, "tools": tools})

    async def prompts(self, request: Request) -> Response:
        """The prompts of this server with their MCP names and approval state; a changed one with a
        diff. MCP clients see only the approved ones (none while it is stopped, disabled or quarantined).
        """
        if missing := self._unknown(request):
            return missing
        name = request.path_params["name"]
        catalog = self.registry.catalog_of(name)
        prompts = []
        for prompt in catalog.prompts:
            view = {**prompt, "mcp_name": direct_name(name, prompt["name"]), "approval": "approved"}
            held = catalog.held_prompts.get(prompt["name"])
            if held is not None:
                view["approval"] = held.approval
                if held.previous is not None:
                    view["previous"] = held.previous
                    view["diff"] = pinned_diff(held.previous, prompt_definition(prompt))
            prompts.append(view)
        return ok({"server": name, "prompts": prompts})

    async def resources(self, request: Request) -> Response:
        """Its resources and templates, each with the URI MCP clients read it by (`mcp_uri`)."""
        if missing := self._unknown(request):
            return missing
        name = request.path_params["name"]
        catalog = self.registry.catalog_of(name)
        resources = [{**r, "mcp_uri": qualify(name, r["uri"])} for r in catalog.resources]
        templates = [{**t, "mcp_uri_template": qualify(name, t["uriTemplate"])} for t in catalog.templates]
        return ok({"server": name, "resources": resources, "templates": templates})

    async def approve_tools(self, request: Request) -> Response:
        if missing := self._unknown(request):
            return missing
        try:
            names = approve_body(await request.body())
        except ValueError as exc:
            return fail(request, 400, str(exc))
        name = request.path_params["name"]
        result = await self.upstreams.command("approve_tools", name, names)
        if not result.ok or result.error:
            return fail(request, 404 if result.error == "no such tools" else 400, result.error or "failed")
        held = [t.name for t in self.registry.all_tools_of(name) if t.approval != "approved"]
        return ok({"server": name, "approved": names or "all", "still_held": held})

    async def approve_prompts(self, request: Request) -> Response:
        if missing := self._unknown(request):
            return missing
        try:
            names = approve_body(await request.body(), "prompts")
        except ValueError as exc:
            return fail(request, 400, str(exc))
        name = request.path_params["name"]
        result = await self.upstreams.command("approve_prompts", name, prompts=names)
        if not result.ok or result.error:
            return fail(request, 404 if result.error == "no such prompts" else 400, result.error or "failed")
        held = sorted(self.registry.catalog_of(name).held_prompts)
        return ok({"server": name, "approved": names or "all", "still_held": held})

    async def logs(self, request: Request) -> Response:
        if missing := self._unknown(request):
            return missing
        try:
            lines = int(request.query_params.get("tail", DEFAULT_LOG_TAIL))
        except ValueError:
            return fail(request, 400, "tail: expected an integer")
        lines = max(0, min(lines, MAX_LOG_TAIL))
        name = request.path_params["name"]
        return ok({"server": name, "lines": tail(log_path(self.data_dir, name), lines)})

    async def action(self, request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action in CONFIG_ACTIONS:
            body = None
            if action == "unquarantine" and (await request.body()).strip():
                try:
                    body = await json_body(request)
                except ValueError as exc:
                    return fail(request, 400, str(exc))
                if not isinstance(body, dict):
                    return fail(request, 400, 'body: expected {"pending_change": "<id you reviewed>"}')
            return answer(request, await self.upstreams.config(action, name, body))
        if action not in ("restart", "login", "logout"):
            known = ", ".join(("restart", "login", "logout", *CONFIG_ACTIONS))
            return fail(request, 404, f"unknown action {action!r}: use {known}")
        if missing := self._unknown(request):
            return missing
        if action == "login":
            return await self.login(request, name)
        result = await self.upstreams.command(action, name)
        if not result.ok:
            return fail(request, 400, result.error or "failed")
        return ok({"server": name, "action": action, "accepted": True})

    async def login(self, request: Request, name: str) -> Response:
        """OAuth: the worker starts the flow and its authorization URL comes back for the person."""
        result = await self.upstreams.command("login", name, timeout_s=LOGIN_COMMAND_TIMEOUT_S)
        if not result.ok:
            return fail(request, 400, result.error or "sign-in failed")
        url = result.login_url
        return ok(
            {
                "server": name,
                "action": "login",
                "authorization_url": url,
                "message": (
                    f"open the authorization URL to sign in; {name} connects when you have"
                    if url
                    else f"{name} connected without a sign-in"
                ),
            }
        )

    async def activity_list(self, request: Request) -> Response:
        assert self.activity is not None
        query = request.query_params
        filters = {key: query[key] for key in FILTERS if query.get(key)}
        if "session" in query:
            filters["session_id"] = query["session"]
        if filters.get("status") and filters["status"] not in STATUSES:
            return fail(request, 400, f"status: expected one of {', '.join(STATUSES)}")
        try:
            since = float(query["since"]) if query.get("since") else None
            until = float(query["until"]) if query.get("until") else None
            limit = max(1, min(int(query.get("limit", 50)), MAX_ACTIVITY_PAGE))
            offset = max(0, int(query.get("offset", 0)))
        except ValueError:
            return fail(request, 400, "since/until: expected epoch seconds; limit/offset: expected integers")
        if offset > MAX_SQLITE_INTEGER:
            return fail(request, 400, f"offset: expected an integer from 0 to {MAX_SQLITE_INTEGER}")
        records, total = await self.activity.query(filters, since, until, limit, offset)
        return ok({"records": records, "total": total, "limit": limit, "offset": offset})

    async def activity_get(self, request: Request) -> Response:
        assert self.activity is not None
        if request.path_params["id"] > MAX_SQLITE_INTEGER:
            return fail(request, 404, f"no activity record {request.path_params['id']}")
        record = await self.activity.get(request.path_params["id"])
        if record is None:
            return fail(request, 404, f"no activity record {request.path_params['id']}")
        return ok({"record": record})

    async def call_tool(self, request: Request) -> Response:
        """Call `server:tool` with `args`; the same checks and record as over MCP (surface "rest")."""
        assert self.caller is not None
        try:
            body = await json_body(request)
        except ValueError as exc:
            return fail(request, 400, str(exc))
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return fail(request, 400, 'body: expected {"name": "server:tool", "args": {...}}')
        parsed = split_qualified(body["name"])
        args = body.get("args", {})
        if parsed is None:
            return fail(request, 400, "name: use 'server:tool'")
        if not isinstance(args, dict):
            return fail(request, 400, "args: expected an object")
        surface = request.headers.get("x-mcpproxy-surface", "rest")
        reason = body.get("intent_reason")
        context = CallContext(
            surface=surface if surface in CALL_SURFACES else "rest",
            client_name=request.headers.get("user-agent"),
            request_id=request.scope.get("state", {}).get("request_id"),
            intent_reason=reason if isinstance(reason, str) else None,
        )
        known = [f"{parsed[0]}:{t.name}" for t in self.registry.tools_of(parsed[0])]
        variant = body.get("variant") if body.get("variant") in CALL_VARIANTS else "call_tool_destructive"
        result = await self.caller.call(
            *parsed, args, context, shown_name=body["name"], known=known, variant=variant
        )
        if (shed := retry_after(result)) is not None:  # shed by a concurrency limit (gateway/admission.py)
            response = fail(request, 429, shed)
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        return ok({"result": result.model_dump(mode="json", by_alias=True, exclude_none=True)})

    async def secrets_list(self, request: Request) -> Response:
        result = await self.upstreams.secret("list")
        if not result.ok:
            return fail(request, result.status, result.error or "failed")
        return ok({"backend": result.backend, "secrets": [msgspec.to_builtins(s) for s in result.secrets]})

    async def secrets_set(self, request: Request) -> Response:
        try:
            body = await json_body(request)
        except ValueError as exc:
            return fail(request, 400, str(exc))
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

    async def docker_status(self, request: Request) -> Response:
        """Docker isolation: engine availability and version, and this instance's containers."""
        from services.docker_engine import engine_status  # the docker SDK costs ~0.2 s to import

        return ok(await engine_status(instance_id(self.data_dir)))
