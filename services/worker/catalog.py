"""Everything of an upstream beside tools: its prompts, resources and templates, and the requests
the gateway forwards to it (prompts/get, resources/read, completion/complete, ...).

The catalog is listed at start and again when the upstream announces a list change; a capability
the upstream does not advertise is not asked for. A forwarded request is checked against the MCP
types on its way up and its result is relayed as the session parsed it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import mcp.types as types
import trio
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import METHOD_NOT_FOUND
from pydantic import BaseModel

from bus.messages import Catalog
from services.worker.tasks import TASK_REQUESTS, TASK_STATUS

logger = logging.getLogger(__name__)

CATALOG_TIMEOUT_S: Final = 10.0
"""Listing prompts, resources and templates may take this long; an upstream that hangs on it still
starts (with its tools) rather than failing its start on a feature it barely has."""

FORWARDED: Final[dict[str, tuple[type[BaseModel], type[BaseModel]]]] = {
    "prompts/get": (types.GetPromptRequest, types.GetPromptResult),
    "resources/read": (types.ReadResourceRequest, types.ReadResourceResult),
    "completion/complete": (types.CompleteRequest, types.CompleteResult),
    "resources/subscribe": (types.SubscribeRequest, types.EmptyResult),
    "resources/unsubscribe": (types.UnsubscribeRequest, types.EmptyResult),
    "logging/setLevel": (types.SetLevelRequest, types.EmptyResult),
    **TASK_REQUESTS,
}
"""Method -> (request model, result model) of every request the gateway may forward."""

RELAYED: Final = frozenset({"notifications/message", "notifications/resources/updated", TASK_STATUS})
"""Upstream notifications the worker passes on to the gateway."""

CATALOG_CHANGES: Final = frozenset(
    {"notifications/prompts/list_changed", "notifications/resources/list_changed"}
)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


async def _every_page(
    fetch: Callable[[types.PaginatedRequestParams | None], Awaitable[Any]], field: str
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await fetch(types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        entries.extend(_dump(entry) for entry in getattr(page, field))
        cursor = page.next_cursor
        if not cursor:
            return entries


async def list_catalog(session: ClientSession) -> Catalog:
    """Every page of prompts, resources and templates, for the capabilities the upstream advertised."""
    capabilities = session.server_capabilities
    if capabilities is None:
        return Catalog()
    prompts: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    templates: list[dict[str, Any]] = []
    if capabilities.prompts is not None:
        prompts = await _every_page(lambda p: session.list_prompts(params=p), "prompts")
    if capabilities.resources is not None:
        resources = await _every_page(lambda p: session.list_resources(params=p), "resources")
        try:
            templates = await _every_page(
                lambda p: session.list_resource_templates(params=p), "resource_templates"
            )
        except MCPError as exc:  # the resources capability does not promise templates
            if exc.code != METHOD_NOT_FOUND:
                raise
    return Catalog(
        prompts=prompts, resources=resources, templates=templates, capabilities=_dump(capabilities)
    )


async def forward(session: ClientSession, method: str, params: bytes) -> bytes:
    """Send one forwarded request upstream; return its result as JSON bytes.

    Raises ValueError for a method that is not forwarded or params the MCP types refuse, and
    whatever the session raises for an upstream error.
    """
    models = FORWARDED.get(method)
    if models is None:
        raise ValueError(f"{method} is not forwarded to upstreams")
    request_type, result_type = models
    request = request_type.model_validate({"method": method, "params": json.loads(params or b"{}")})
    result = await session.send_request(request, result_type)  # type: ignore[arg-type]
    return result.model_dump_json(by_alias=True, exclude_unset=True).encode()


def brief(exc: BaseException) -> str:
    """An exception as one log line's worth (at most 2000 characters)."""
    text = str(exc) or type(exc).__name__
    return text if len(text) < 2000 else text[:2000] + "..."


async def catalog_or_empty(session: ClientSession, server: str, scrub: Callable[[str], str]) -> Catalog:
    """The upstream's catalog; one that fails to list it (or takes over CATALOG_TIMEOUT_S) still
    starts, with its tools and an empty catalog, rather than failing on a feature it barely has."""
    try:
        with trio.fail_after(CATALOG_TIMEOUT_S):
            return await list_catalog(session)
    except Exception as exc:  # an upstream error (or TooSlowError) here must not end the worker
        logger.warning("server %s: listing prompts and resources failed: %s", server, scrub(brief(exc)))
        return Catalog()


SUMMARY_CHARS: Final = 160


def summary_of(session: ClientSession) -> str:
    """One line on what the upstream is for: the first sentence of its instructions, else its
    description (both optional in MCP), at most SUMMARY_CHARS."""
    info = session.server_info
    for text in (session.instructions, info.description if info else None):
        line = " ".join((text or "").split())
        if line:
            sentence = line.split(". ", 1)[0].rstrip(".")
            return sentence if len(sentence) <= SUMMARY_CHARS else sentence[: SUMMARY_CHARS - 1] + "…"
    return ""


def method_of(notification: Any) -> str | None:
    """The JSON-RPC method of a notification the session handed us (None for anything else)."""
    method = getattr(getattr(notification, "root", notification), "method", None)
    return method if isinstance(method, str) else None


def params_of(notification: Any) -> bytes:
    params = getattr(getattr(notification, "root", notification), "params", None)
    return params.model_dump_json(by_alias=True, exclude_unset=True).encode() if params else b"{}"
