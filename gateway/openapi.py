"""The OpenAPI 3 description of the REST API, served at /api/v1/openapi.json.

Written by hand next to the routes it describes; `tests/gateway/test_openapi.py`
checks that every route of the app is in it.
"""

from __future__ import annotations

from typing import Any, Final

VERSION: Final = "0.1.0"

_STRING_MAP: Final = {"type": "object", "additionalProperties": {"type": ["string", "null"]}}
SERVER: Final = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        "protocol": {"type": "string", "enum": ["stdio", "http", "sse", "streamable-http", "auto"]},
        "command": {"type": "string"},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "working_dir": {"type": "string"},
        "url": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "enabled": {"type": "boolean"},
        "quarantined": {"type": "boolean"},
        "init_timeout": {"type": ["number", "string"]},
        "call_tool_timeout": {"type": ["number", "string"]},
        "health_check_interval": {"type": ["number", "string"]},
    },
}
MERGE_PATCH: Final = {
    "type": "object",
    "description": "JSON Merge Patch (RFC 7396) of a server: null deletes, absent keeps; "
    "an echoed mask keeps "
    "the stored value.",
    "properties": {
        "headers": _STRING_MAP,
        "env": _STRING_MAP,
        "args": {"type": "array", "items": {"type": "string"}},
    },
}
ENVELOPE: Final = {
    "type": "object",
    "required": ["success"],
    "properties": {
        "success": {"type": "boolean"},
        "data": {},
        "error": {"type": "string"},
        "request_id": {"type": "string"},
    },
}
PROFILE: Final = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "servers": {"type": ["array", "null"], "items": {"type": "string"}},
        "max_tier": {"type": "string", "enum": ["read", "write", "destructive"]},
        "tools": {
            "type": "object",
            "properties": {
                "allow": {"type": "array", "items": {"type": "string"}},
                "deny": {"type": "array", "items": {"type": "string"}},
            },
        },
        "management": {"type": "boolean"},
    },
}
PATTERN_PARAM: Final = {
    "name": "pattern",
    "in": "path",
    "required": True,
    "description": "`server:tool`, globs allowed (`memory:*`), URL-encoded",
    "schema": {"type": "string"},
}
NAME_PARAM: Final = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(
    summary: str,
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    codes: tuple[int, ...] = (200,),
    secured: bool = True,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(code): {
            "description": "ok" if code < 400 else "error",
            "content": {"application/json": {"schema": ENVELOPE}},
        }
        for code in (*codes, 400, 401, 404)
        if secured or code < 400
    }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if not secured:
        op["security"] = []
    return op


def document() -> dict[str, Any]:
    name = [NAME_PARAM]
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness", secured=False)},
        "/readyz": {"get": _op("Readiness: 200 once synced with the supervisor, else 503", secured=False)},
        "/events": {
            "get": {
                "summary": "Server-Sent Events stream",
                "responses": {
                    "200": {
                        "description": "text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "401": {"description": "missing key"},
                },
            }
        },
        "/api/v1/status": {"get": _op("Version, listen address, counts, secrets backend")},
        "/api/v1/openapi.json": {"get": _op("This document")},
        "/api/v1/servers": {
            "get": _op("Every server: config (redacted) and live status"),
            "post": _op("Add a server", body=SERVER, codes=(201, 409)),
        },
        "/api/v1/servers/{name}": {
            "get": _op("One server", params=name),
            "patch": _op("Change a server (JSON Merge Patch)", params=name, body=MERGE_PATCH),
            "delete": _op("Remove a server", params=name),
        },
        "/api/v1/servers/{name}/tools": {"get": _op("The server's tools", params=name)},
        "/api/v1/servers/{name}/prompts": {
            "get": _op("The server's prompts, with their MCP names, approval states and diffs", params=name)
        },
        "/api/v1/servers/{name}/resources": {
            "get": _op("The server's resources and templates, with the URIs MCP clients use", params=name)
        },
        "/api/v1/servers/{name}/logs": {
            "get": _op(
                "Last lines of the server's log",
                params=[
                    NAME_PARAM,
                    {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
            )
        },
        "/api/v1/servers/{name}/config-to-secret": {
            "post": _op(
                "Move a header or env value into the secrets store, leaving ${keyring:NAME}",
                params=name,
                body={
                    "type": "object",
                    "required": ["scope", "key", "secret_name"],
                    "properties": {
                        "scope": {"type": "string", "enum": ["header", "env"]},
                        "key": {"type": "string"},
                        "secret_name": {"type": "string"},
                    },
                },
            )
        },
        **{
            f"/api/v1/servers/{{name}}/{kind}/approve": {
                "post": _op(
                    f"Approve pending or changed {kind} (all when no body or `{{}}`)",
                    params=name,
                    body={
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {kind: {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                    },
                )
            }
            for kind in ("tools", "prompts")
        },
        "/api/v1/activity": {
            "get": _op(
                "Recorded tool calls, newest first",
                params=[
                    {"name": key, "in": "query", "schema": {"type": "string"}}
                    for key in (
                        "server",
                        "tool",
                        "status",
                        "session",
                        "request_id",
                        "surface",
                        "client",
                        "profile",
                        "since",
                        "until",
                        "limit",
                        "offset",
                    )
                ],
            )
        },
        "/api/v1/activity/{id}": {
            "get": _op(
                "One recorded call",
                params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            )
        },
        "/api/v1/tools/call": {
            "post": _op(
                "Call server:tool (checked and recorded like MCP calls)",
                body={
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "args": {"type": "object"},
                        "intent_reason": {"type": "string"},
                        "variant": {
                            "type": "string",
                            "enum": ["call_tool_read", "call_tool_write", "call_tool_destructive"],
                        },
                    },
                },
            )
        },
        "/api/v1/config": {"get": _op("The whole config, redacted")},
        "/api/v1/config/validate": {
            "post": _op("Validate a whole config without applying it", body={"type": "object"})
        },
        "/api/v1/secrets": {
            "get": _op("Secret names and the servers that reference each (never values)"),
            "post": _op(
                "Store a secret",
                body={
                    "type": "object",
                    "required": ["name", "value"],
                    "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
                },
                codes=(201,),
            ),
        },
        "/api/v1/secrets/{name}": {"delete": _op("Delete a secret", params=name)},
        "/api/v1/access/explain": {
            "get": _op(
                "The checks a call of `tool` by `client` meets, in order; the first failing one says the fix",
                params=[
                    {"name": "tool", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "client", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/api/v1/profiles": {
            "get": _op("Profiles, `anonymous_profile`, `require_mcp_auth` and `tool_tiers` (issue 21)")
        },
        "/api/v1/profiles/{name}": {
            "put": _op(
                "Create or replace a profile (written to the config; holds from the next request on)",
                params=name,
                body=PROFILE,
                codes=(201,),
            ),
            "delete": _op(
                "Remove a profile (409 while a client is bound to it or it is the anonymous_profile)",
                params=name,
                codes=(404, 409),
            ),
        },
        "/api/v1/tool-tiers": {"get": _op("The tier overrides: `server:tool` glob -> tier")},
        "/api/v1/tool-tiers/{pattern}": {
            "put": _op(
                "Override the tier of the tools matching a `server:tool` glob",
                params=[PATTERN_PARAM],
                body={
                    "type": "object",
                    "required": ["tier"],
                    "properties": {"tier": {"type": "string", "enum": ["read", "write", "destructive"]}},
                },
            ),
            "delete": _op(
                "Drop an override: the tier comes from the tools' annotations again",
                params=[PATTERN_PARAM],
                codes=(404,),
            ),
        },
        "/api/v1/access": {
            "patch": _op(
                "Set `require_mcp_auth` (null: the default) and `anonymous_profile` (null: none)",
                body={
                    "type": "object",
                    "properties": {
                        "require_mcp_auth": {"type": ["boolean", "null"]},
                        "anonymous_profile": {"type": ["string", "null"]},
                    },
                },
            )
        },
        "/api/v1/clients": {
            "get": _op("Clients: name, profile, created_at, expires_at (never a credential)"),
            "post": _op(
                "Make a client credential bound to a profile; `data.credential` is shown this once",
                body={
                    "type": "object",
                    "required": ["name", "profile"],
                    "properties": {
                        "name": {"type": "string"},
                        "profile": {"type": "string"},
                        "expires": {"type": "string", "description": "90m, 12h, 30d, 2w"},
                    },
                },
                codes=(201, 409),
            ),
        },
        "/api/v1/clients/{name}/rotate": {
            "post": _op(
                "A new credential for the client (shown once); the old one is refused from now on",
                params=name,
                body={"type": "object", "properties": {"expires": {"type": "string"}}},
            )
        },
        "/api/v1/clients/{name}": {
            "delete": _op("Revoke a client: refused from the next request on", params=name)
        },
        "/api/v1/registry/search": {
            "get": _op(
                "Servers in the MCP registries (`registries` in the config) and the shipped reference list",
                params=[
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "offline", "in": "query", "schema": {"type": "boolean"}},
                ],
            )
        },
        "/api/v1/registry/add": {
            "post": _op(
                "Add a registry server, quarantined; `data.needs` lists the secrets and arguments to fill",
                body={
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "string", "description": "registry name, e.g. io.github.owner/server"},
                        "name": {"type": "string"},
                        "remote": {"type": "boolean", "description": "prefer its remote URL to its package"},
                        "dry_run": {"type": "boolean"},
                    },
                },
                codes=(200, 201, 404, 409),
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text format: server states, restarts, calls by status, call"
                " latency, queues, worker and upstream RSS, tools indexed (the API key, unless"
                " metrics_access: loopback)",
                "responses": {
                    "200": {"description": "ok", "content": {"text/plain": {}}},
                    "401": {"description": "error"},
                },
            }
        },
        "/api/v1/docker/status": {
            "get": _op("Docker isolation: engine availability and version, this instance's containers")
        },
    }
    for action in ("restart", "enable", "disable", "quarantine", "unquarantine"):
        paths[f"/api/v1/servers/{{name}}/{action}"] = {
            "post": _op(f"{action.capitalize()} a server", params=name)
        }
    paths["/api/v1/servers/{name}/login"] = {
        "post": _op(
            "OAuth: start signing in; `data.authorization_url` is where the person goes"
            " (null when no sign-in was needed)",
            params=name,
        )
    }
    paths["/api/v1/servers/{name}/logout"] = {
        "post": _op("OAuth: forget the server's tokens; it then needs login", params=name)
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mcpproxy REST API", "version": VERSION},
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
    }
