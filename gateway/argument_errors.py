"""A failed call whose arguments do not fit the tool gets the tool's input schema in its error.

An agent that chose a tool from a compact search hit or a schema-deferred listing has seen its
signature, not its schema: when its arguments are wrong, the error it gets carries the schema, so
it corrects itself in one round instead of calling `describe_tool` first.

Only results that are already errors are looked at (a call that succeeds costs nothing here):
an error the upstream answered, or one the proxy made of the upstream's JSON-RPC error. The
arguments count as wrong when they fail the tool's schema (checked here, on the error path only)
or when the upstream's message says so (the SDKs' "Input validation error", -32602, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import mcp.types as types

from bus.messages import ToolInfo
from gateway.asks import ToolAnswer
from gateway.calling import ERROR_META_KEY
from gateway.tool_summaries import signature

SCHEMA_META_KEY: Final = "mcpproxy/inputSchema"
MAX_PROBLEMS: Final = 3
"""Problems named in the error: enough to fix a call in one round, not a wall of text."""
UPSTREAM_KINDS: Final = frozenset({None, "upstream_error"})
"""Errors of the upstream's making; the proxy's own refusals (quarantine, tier, ...) are not about
the arguments."""
_SAYS_INVALID_RE: Final = re.compile(
    r"input validation|invalid (?:arguments|params|parameters|input)|validation error|-32602"
    r"|required (?:property|argument|parameter)|missing (?:required )?(?:argument|parameter|field)",
    re.IGNORECASE,
)


def schema_problem(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str | None:
    """Why `arguments` do not fit `schema` (the first problems, each `where: what`), or None.

    A schema that is itself invalid is not the caller's fault: None."""
    from jsonschema import exceptions
    from jsonschema.validators import validator_for

    try:
        cls = validator_for(schema)
        cls.check_schema(schema)
        errors = sorted(cls(schema).iter_errors(arguments), key=exceptions.relevance, reverse=True)
    except exceptions.SchemaError:
        return None
    problems = [
        f"{'/'.join(str(part) for part in error.absolute_path) or 'arguments'}: {error.message}"
        for error in errors[:MAX_PROBLEMS]
    ]
    return "; ".join(problems) or None


def with_schema(
    answer: ToolAnswer, tool: ToolInfo | None, arguments: Mapping[str, Any], shown_name: str
) -> ToolAnswer:
    """`answer` as it is, or, for an upstream error about the arguments, with the schema added: a
    text block (what agents read) and `_meta["mcpproxy/inputSchema"]` (what programs read)."""
    if not isinstance(answer, types.CallToolResult) or not answer.is_error or tool is None:
        return answer
    meta = answer.meta or {}
    error = meta.get(ERROR_META_KEY)
    if isinstance(error, Mapping) and error.get("kind") not in UPSTREAM_KINDS:
        return answer
    problem = schema_problem(tool.input_schema, arguments)
    said = " ".join(c.text for c in answer.content if isinstance(c, types.TextContent))
    if problem is None and not _SAYS_INVALID_RE.search(said):
        return answer
    params = signature(tool.input_schema) or "none"
    why = f" ({problem})" if problem else ""
    text = (
        f"The arguments do not fit {shown_name}{why}. It takes: {params}. "
        f"Its inputSchema: {json.dumps(tool.input_schema, separators=(',', ':'))}"
    )
    return answer.model_copy(
        update={
            "content": [*answer.content, types.TextContent(type="text", text=text)],
            "meta": {**meta, SCHEMA_META_KEY: tool.input_schema},
        }
    )
