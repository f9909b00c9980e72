"""Management tools on /mcp: `describe_tool`, `upstream_servers`, `quarantine_security`.

What an agent may do is narrower than what a human may (the supervisor
decides, in supervisor/agent_changes.py): a server it adds is quarantined, a
change to what a server runs or where its credentials go waits in quarantine
for a human, it cannot reference a secret the server did not already use, and
remove/enable/disable need the API key. No operation here lifts quarantine.
Lists are redacted exactly like REST (a prompt-injected agent must not read
another server's token).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import mcp.types as types

from bus.errors import ProxyError
from gateway.access import Identity
from gateway.call_context import CallContext
from gateway.guard import approve_hint
from gateway.registry import Registry
from gateway.tool_names import split_qualified
from gateway.tool_views import tool_definition
from gateway.upstreams import Upstreams
from services.upstream_log import log_path, tail

MAX_DESCRIBE: Final = 5
DEFAULT_LOG_LINES: Final = 50
MAX_LOG_LINES: Final = 1000
OPERATIONS: Final = ("list", "add", "remove", "patch", "enable", "disable", "restart", "tail_log")
QUARANTINE_OPERATIONS: Final = ("list_quarantined", "inspect_quarantined", "inspect_tools")
TUNABLES: Final = ("init_timeout", "call_tool_timeout", "health_check_interval")
"""What an agent may set directly (supervisor/agent_changes.py): seconds, or a duration like "30s"."""
HUMAN_ONLY: Final = {
    "quarantined": "no MCP operation lifts or sets quarantine",
    "enabled": "use the enable or disable operation (with the API key)",
    "allow_secret_echo": "only a human decides whether a server's results may show secrets",
}
"""Fields a caller might try to patch from MCP, and why that does not work."""

MANAGEMENT_TOOLS: Final = [
    types.Tool(
        name="describe_tool",
        description="Full definitions (input schema, annotations) of up to 5 tools named `server:tool`.",
        input_schema={
            "type": "object",
            "properties": {
                "tool_ids": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_DESCRIBE}
            },
            "required": ["tool_ids"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="upstream_servers",
        description=(
            "Manage upstream MCP servers: list (secrets masked), add (quarantined until a human approves), "
            "patch (a change to command, args, env, url, headers or other launch fields is only proposed: "
            "the server is quarantined until a human approves it), remove, enable, disable (these three "
            "need the API key), restart, tail_log."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "operation": {"type": "string", "enum": list(OPERATIONS)},
                "name": {"type": "string"},
                "protocol": {"type": "string", "enum": ["stdio", "http", "sse", "streamable-http", "auto"]},
                "command": {"type": "string"},
                "args": {"type": "array", "items": {"type": "string"}},
                "args_json": {"type": "string"},
                "env": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                "env_json": {"type": "string"},
                "url": {"type": "string"},
                "headers": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                "headers_json": {"type": "string"},
                "lines": {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LINES},
                **{key: {"type": ["number", "string"]} for key in TUNABLES},
            },
            "required": ["operation"],
        },
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
    ),
    types.Tool(
        name="quarantine_security",
        description=(
            "Review quarantined servers: list_quarantined, inspect_quarantined (command, url, masked "
            "env/headers), inspect_tools (tool names and descriptions). Approval itself is for humans only."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "operation": {"type": "string", "enum": list(QUARANTINE_OPERATIONS)},
                "name": {"type": "string"},
            },
            "required": ["operation"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
]

NO_MANAGEMENT_RIGHT: Final = (
    "{what} needs the management right: the API key, or a client credential whose profile has "
    "`management: true` (a caller without a credential has none unless `anonymous_profile` grants it)"
)


class ArgumentError(ValueError):
    pass


def _result(data: Any, *, error: bool = False) -> types.CallToolResult:
    text = data if isinstance(data, str) else json.dumps(data)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=data if isinstance(data, dict) else None,
        is_error=error,
    )


def _json_or_value(arguments: dict[str, Any], key: str, kind: type) -> Any:
    value = arguments.get(key)
    raw = arguments.get(f"{key}_json")
    if value is None and raw is not None:
        try:
            value = json.loads(raw)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ArgumentError(f"{key}_json: not valid JSON ({exc})") from None
    if value is not None and not isinstance(value, kind):
        raise ArgumentError(f"{key}: expected {'an object' if kind is dict else 'an array'}")
    return value


class ManagementTools:
    def __init__(
        self,
        registry: Registry,
        upstreams: Upstreams,
        server_views: Callable[[], list[dict[str, Any]]],
        data_dir: Any,
    ) -> None:
        self.registry = registry
        self.upstreams = upstreams
        self.server_views = server_views
        self.data_dir = data_dir

    async def call(self, name: str, arguments: dict[str, Any], context: CallContext) -> types.CallToolResult:
        try:
            if name == "describe_tool":
                return self._describe(arguments, context.identity)
            if name == "upstream_servers":
                if arguments.get("operation") == "list":  # a profile's servers only: nothing beyond it
                    view = self.registry.view(context.identity)
                    return _result(
                        {"servers": [v for v in self.server_views() if view.has_server(v["name"])]}
                    )
                if not context.identity.management:
                    return _result(
                        NO_MANAGEMENT_RIGHT.format(what="upstream_servers beyond `list`"), error=True
                    )
                return await self._upstream_servers(arguments, context.keyed)
            if not context.identity.management:
                return _result(NO_MANAGEMENT_RIGHT.format(what="quarantine_security"), error=True)
            return self._quarantine_security(arguments)
        except ArgumentError as exc:
            return _result(f"{name}: {exc}", error=True)
        except ProxyError as exc:
            return _result(f"{name}: {exc}", error=True)

    def _describe(self, arguments: dict[str, Any], identity: Identity) -> types.CallToolResult:
        ids = arguments.get("tool_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ArgumentError("tool_ids: expected a list of 'server:tool' names")
        if len(ids) > MAX_DESCRIBE:
            raise ArgumentError(f"tool_ids: at most {MAX_DESCRIBE} at a time")
        found, missing = [], []
        view = self.registry.view(identity)
        for tool_id in ids:
            parsed = split_qualified(tool_id)
            tool = self.registry.find_tool(*parsed) if parsed else None
            if parsed is None or tool is None or not view.has_tool(parsed[0], tool):
                missing.append(tool_id)
                continue
            found.append({**tool_definition(tool, tool_id), **view.tier(parsed[0], tool).shown()})
        return _result({"tools": found, "not_found": missing})

    async def _upstream_servers(self, arguments: dict[str, Any], keyed: bool) -> types.CallToolResult:
        operation = arguments.get("operation")
        name = arguments.get("name")
        if operation not in OPERATIONS:
            raise ArgumentError(f"operation: expected one of {', '.join(OPERATIONS)}")
        if operation == "list":
            return _result({"servers": self.server_views()})
        if not isinstance(name, str) or not name:
            raise ArgumentError("name: required for this operation")
        if operation == "tail_log":
            if name not in self.registry.servers:
                raise ArgumentError(f"unknown server {name!r}")
            lines = arguments.get("lines", DEFAULT_LOG_LINES)
            lines = max(1, min(int(lines), MAX_LOG_LINES)) if isinstance(lines, int) else DEFAULT_LOG_LINES
            return _result({"server": name, "lines": tail(log_path(self.data_dir, name), lines)})
        if operation == "restart":
            result = await self.upstreams.command("restart", name)
            return _result(
                {"server": name, "restarting": True} if result.ok else result.error or "failed",
                error=not result.ok,
            )
        self._check_known(operation, name, arguments)
        body: dict[str, Any] = {}
        if operation == "patch":
            body.update({key: arguments[key] for key in TUNABLES if arguments.get(key) is not None})
        for key in ("protocol", "command", "url"):
            if isinstance(arguments.get(key), str):
                body[key] = arguments[key]
        for key, kind in (("args", list), ("env", dict), ("headers", dict)):
            value = _json_or_value(arguments, key, kind)
            if value is not None:
                body[key] = value
        if operation == "add":
            config = await self.upstreams.config(
                "add", body={"name": name, **body}, source="mcp", keyed=keyed
            )
        elif operation == "patch":
            if not body:
                raise ArgumentError(
                    "patch: nothing to change; give protocol, command, args, env, url, headers, "
                    f"{', '.join(TUNABLES)}"
                )
            config = await self.upstreams.config("patch", name, body, source="mcp", keyed=keyed)
        else:  # remove, enable, disable
            config = await self.upstreams.config(operation, name, source="mcp", keyed=keyed)
        if not config.ok:
            return _result(config.error or "failed", error=True)
        data = json.loads(config.body)
        if operation == "add" and data.get("server", {}).get("quarantined"):
            data["note"] = f"the server is quarantined until {approve_hint(name)}"
        return _result(data)

    def _check_known(self, operation: str, name: str, arguments: dict[str, Any]) -> None:
        """Refuse arguments this tool does not take, saying why: ignoring them would answer success
        for a change that was never made (an agent's `{"quarantined": false}`)."""
        schema = next(t for t in MANAGEMENT_TOOLS if t.name == "upstream_servers").input_schema
        unknown = sorted(set(arguments) - set(schema["properties"]))
        if not unknown:
            return
        reasons = [f"{key}: {HUMAN_ONLY[key]}" for key in unknown if key in HUMAN_ONLY]
        others = [key for key in unknown if key not in HUMAN_ONLY]
        if others:
            reasons.append(f"{', '.join(others)}: not an argument of upstream_servers")
        hint = (
            f"; a quarantined server stays so until {approve_hint(name)}" if "quarantined" in unknown else ""
        )
        raise ArgumentError(f"{operation}: nothing was changed ({'; '.join(reasons)}){hint}")

    def _quarantine_security(self, arguments: dict[str, Any]) -> types.CallToolResult:
        operation = arguments.get("operation")
        if operation not in QUARANTINE_OPERATIONS:
            raise ArgumentError(f"operation: expected one of {', '.join(QUARANTINE_OPERATIONS)}")
        views = {view["name"]: view for view in self.server_views()}
        quarantined = {n: v for n, v in views.items() if v.get("quarantined")}
        if operation == "list_quarantined":
            return _result({"servers": sorted(quarantined), "how_to_approve": approve_hint("NAME")})
        name = arguments.get("name")
        if not isinstance(name, str) or name not in views:
            raise ArgumentError(f"name: unknown server {name!r}")
        view = views[name]
        if operation == "inspect_quarantined":
            keys = (
                "name",
                "protocol",
                "command",
                "args",
                "url",
                "working_dir",
                "env",
                "headers",
                "quarantined",
            )
            return _result({k: view[k] for k in keys if k in view})
        tools = [
            {"name": t.name, "description": t.description, "approval": t.approval}
            for t in self.registry.all_tools_of(name)
        ]
        note = "" if tools else "the server has not run, so its tools are not known until a human approves it"
        return _result({"server": name, "tools": tools, "note": note})
