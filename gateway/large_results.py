"""Large tool results: cut to the caller's limit on the MCP endpoints, the rest paged by `read_cache`.

Each text item of a result longer than the server's `tool_response_limit`
(the supervisor's `ResultLimits`) is cut at a clean boundary
(services/result_pages.py), its whole text is kept in the result cache
(services/result_cache.py, scrubbed of known secrets first), and a notice
follows it naming the handle, the next offset and the total. Other content
(images, audio, resources) passes unchanged; structured content larger than the
limit is dropped with the text, unless the client was shown an output schema
that requires it (a `/mcp/all` tool that has one). REST callers get results
whole. `read_cache` is a tool of both endpoints; it gives a handle's pages to
callers of the profile it was made for.

Every tool both endpoints list carries `_meta["anthropic/maxResultSizeChars"]`,
so clients that honour it keep whole what the proxy sends.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import mcp.types as types
import trio

from bus.messages import ResultLimits, ToolInfo
from gateway.access import Identity
from services.result_cache import CacheMissError, ResultCache
from services.result_pages import Cut, Page, cut, page

logger = logging.getLogger(__name__)

READ_CACHE: Final = "read_cache"
MAX_RESULT_META_KEY: Final = "anthropic/maxResultSizeChars"
CACHE_META_KEY: Final = "mcpproxy/result_cache"
CUT_SURFACES: Final = frozenset({"mcp", "mcp_all"})
"""Agents' surfaces: REST, the CLI and the UI get results whole."""

READ_CACHE_TOOL: Final = types.Tool(
    name=READ_CACHE,
    description=(
        "Read the rest of a tool result the proxy cut because it was long. The cut result ends with a "
        "notice giving its handle and the next offset; call this with them, then with each answer's "
        "next offset until none is left. A JSON array is paged by record (offset and limit count records); "
        'anything else, or `by: "chars"`, by character.'
    ),
    input_schema={
        "type": "object",
        "properties": {
            "handle": {"type": "string", "description": "The handle from the notice (rc_...)."},
            "offset": {"type": "integer", "minimum": 0, "default": 0, "description": "Where to start."},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "description": "How many records or characters (default: a page as large as the limit).",
            },
            "by": {
                "type": "string",
                "enum": ["records", "chars"],
                "description": "Page by record or by character.",
            },
        },
        "required": ["handle"],
    },
    annotations=types.ToolAnnotations(read_only_hint=True),
)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _call(handle: str, offset: int) -> str:
    return f'read_cache {{"handle": "{handle}", "offset": {offset}}}'


def notice(handle: str, piece: Cut, limit: int, chars: int) -> str:
    """What the agent reads after a cut text: exactly how to get the rest."""
    if piece.unit == "records":
        return (
            f"[mcpproxy: this result is a JSON array of {piece.total:,} records ({chars:,} characters); the "
            f"first {piece.next_offset:,} are shown (limit {limit:,} characters). For the rest call "
            f"{_call(handle, piece.next_offset)}; offset and limit count records, and each answer names the "
            f'next offset. `"by": "chars"` pages the text itself instead.]'
        )
    return (
        f"[mcpproxy: this result is {piece.total:,} characters; the first {piece.next_offset:,} are shown "
        f"(limit {limit:,}). For the rest call {_call(handle, piece.next_offset)}; each answer names the "
        "next offset.]"
    )


def page_footer(handle: str, shown: Page) -> str:
    what = "records" if shown.unit == "records" else "characters"
    end = shown.next_offset if shown.next_offset is not None else shown.total
    where = f"[mcpproxy: {what} {shown.offset:,} to {end:,} of {shown.total:,}; "
    if shown.next_offset is None:
        return where + "this is the end of the result.]"
    return where + f"next: {_call(handle, shown.next_offset)}]"


class LargeResults:
    """The limits the supervisor sent, and the cache behind `read_cache`."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache
        self.limits = ResultLimits()

    def limit_for(self, server: str) -> int:
        return self.limits.server_limits.get(server, self.limits.tool_response_limit)

    def advertise(self, tools: list[types.Tool]) -> list[types.Tool]:
        """`tools`, each with `_meta["anthropic/maxResultSizeChars"]` (unless that is configured 0)."""
        size = self.limits.max_result_size_chars
        if not size:
            return tools
        return [
            tool.model_copy(update={"meta": {**(tool.meta or {}), MAX_RESULT_META_KEY: size}})
            for tool in tools
        ]

    async def shorten(
        self,
        result: types.CallToolResult,
        server: str,
        tool: ToolInfo | None,
        surface: str,
        identity: Identity,
    ) -> types.CallToolResult:
        """`result` as the agent gets it: each text item over the limit cut, its whole text cached."""
        limit = self.limit_for(server)
        if not limit or surface not in CUT_SURFACES:
            return result
        if not any(isinstance(item, types.TextContent) and len(item.text) > limit for item in result.content):
            return result
        content: list[types.ContentBlock] = []
        cached: list[dict[str, Any]] = []
        for item in result.content:
            if not isinstance(item, types.TextContent) or len(item.text) <= limit:
                content.append(item)
                continue
            # What is shown and what is cached are cut from one text, so their offsets agree.
            text = self.cache.scrub(item.text)
            piece = cut(text, limit)
            if piece is None:
                content.append(item.model_copy(update={"text": text}))
                continue
            try:
                handle = await trio.to_thread.run_sync(
                    self.cache.put, text, piece.unit, limit, identity.profile_name
                )
            except OSError as exc:  # no cache, no cut: the agent gets the whole result rather than a part
                logger.error("result cache: cannot write to %s: %s", self.cache.directory, exc)
                return result
            content.append(item.model_copy(update={"text": piece.shown}))
            content.append(types.TextContent(type="text", text=notice(handle, piece, limit, len(text))))
            cached.append(
                {"handle": handle, "unit": piece.unit, "next_offset": piece.next_offset, "total": piece.total}
            )
        structured = result.structured_content
        schema_shown = surface == "mcp_all" and tool is not None and bool(tool.output_schema)
        if structured is not None and not schema_shown and len(json.dumps(structured)) > limit:
            structured = None
        meta = {**(result.meta or {}), CACHE_META_KEY: cached}
        return result.model_copy(update={"content": content, "structured_content": structured, "meta": meta})

    async def read(self, arguments: dict[str, Any], identity: Identity) -> types.CallToolResult:
        """The `read_cache` tool."""
        handle, offset, limit, by = (arguments.get(k) for k in ("handle", "offset", "limit", "by"))
        if not isinstance(handle, str) or not handle:
            return _error("read_cache: `handle` must be the string from the notice (rc_...)")
        offset = 0 if offset is None else offset
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            return _error("read_cache: `offset` must be an integer, 0 or more")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            return _error("read_cache: `limit` must be a positive integer")
        if by not in (None, "records", "chars"):
            return _error('read_cache: `by` must be "records" or "chars"')
        try:
            entry = await trio.to_thread.run_sync(self.cache.get, handle, identity.profile_name)
        except CacheMissError:
            hours = self.cache.ttl_s / 3600
            return _error(
                f"read_cache: no cached result {handle!r}. Results are kept {hours:g} h; this one expired, "
                "was removed to make room, or was never made for you. Call the tool again for a new handle."
            )
        try:
            shown = page(entry.text, by or entry.unit, offset, limit, entry.page_chars)
        except ValueError as exc:
            return _error(f"read_cache {handle}: {exc}")
        footer = page_footer(handle, shown)
        meta = {
            CACHE_META_KEY: {
                "handle": handle, "unit": shown.unit, "offset": shown.offset,
                "next_offset": shown.next_offset, "total": shown.total,
            }
        }  # fmt: skip
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text=shown.text),
                types.TextContent(type="text", text=footer),
            ],
            _meta=meta,
        )
