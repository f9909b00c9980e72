"""Who is calling: what every call path knows of its caller (`CallContext`), read from the MCP SDK's
request context for the SDK handlers, and the activity log's record of one request made in it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import LOG_LEVEL_META_KEY

from gateway import trace_context
from gateway.access import NOBODY, Identity, identity_of_request
from gateway.asks import Asking, is_modern
from gateway.in_flight import Progress
from services.activity import CallRecord

Log = Callable[[Any, Any, str | None], Awaitable[None]]
"""(level, data, logger): one `notifications/message` to the caller."""


@dataclass(frozen=True)
class CallContext:
    """Who is calling: the surface and what the MCP client told us about itself."""

    surface: str
    client_name: str | None = None
    client_version: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    intent_reason: str | None = None
    progress: Progress | None = None
    """Relays upstream progress to the client, when it asked for progress."""
    keyed: bool = False
    """The caller presented the API key: it holds the management right (supervisor/agent_changes.py)."""
    asking: Asking | None = None
    """Puts the upstream's questions (elicitation, sampling, roots) to this client (gateway/asks.py)."""
    log: Log | None = None
    """Sends a log message on the call's own response stream (a 2026-era client, which gets the
    levels it opted in to per request); 2025-era sessions get every upstream's logs anyway."""
    input_required: bool = False
    """A 2026-era client: an upstream's `InputRequiredResult` is its answer, as it is."""
    input_responses: bytes | None = None
    request_state: str | None = None
    """A 2026-era client's retry of a call a 2026-era upstream asked something in."""
    identity: Identity = NOBODY
    """Who is calling: the profile whose view it gets (gateway/access.py)."""
    traceparent: str | None = None
    """The client's W3C trace context, read only while traces are on (gateway/trace_context.py)."""


def context_from_mcp(ctx: Any, surface: str, intent_reason: str | None = None) -> CallContext:
    """Read client, session and request ids from the SDK's request context (all optional)."""
    client = getattr(getattr(getattr(ctx, "session", None), "client_params", None), "client_info", None)
    request = getattr(ctx, "request", None)
    session_id = request.headers.get("mcp-session-id") if request is not None else None
    request_id = getattr(ctx, "request_id", None)
    meta = getattr(ctx, "meta", None)
    # `meta` is a TypedDict (RequestParamsMeta), not an object.
    wants_progress = isinstance(meta, dict) and meta.get("progress_token") is not None
    return CallContext(
        progress=ctx.session.report_progress if wants_progress else None,
        surface=surface,
        client_name=getattr(client, "name", None),
        client_version=getattr(client, "version", None),
        session_id=session_id,
        request_id=None if request_id is None else str(request_id),
        intent_reason=intent_reason,
        keyed=bool(request.scope.get("state", {}).get("api_key_ok")) if request is not None else False,
        identity=identity_of_request(request),
        traceparent=trace_context.client_traceparent(meta, request and request.headers)
        if trace_context.enabled
        else None,
        log=_request_log(ctx)
        if is_modern(ctx) and isinstance(meta, dict) and meta.get(LOG_LEVEL_META_KEY)
        else None,
    )


def _request_log(ctx: Any) -> Log:
    async def log(level: Any, data: Any, logger: str | None) -> None:
        await ctx.session.send_log_message(level, data, logger=logger, related_request_id=ctx.request_id)

    return log


def call_record(
    context: CallContext,
    server: str,
    what: str,
    status: str,
    started: float,
    arguments: str,
    result: str = "",
    error: str | None = None,
) -> CallRecord:
    """The activity log's record of one call (or prompt get, resource read, ...) that began at `started`."""
    return CallRecord(
        server=server, tool=what, surface=context.surface, status=status,
        duration_ms=(time.monotonic() - started) * 1000, arguments=arguments, result=result, error=error,
        client_name=context.client_name, client_version=context.client_version,
        session_id=context.session_id, request_id=context.request_id, intent_reason=context.intent_reason,
        client=context.identity.client, profile=context.identity.profile_name,
    )  # fmt: skip
