"""Open an MCP client session to one upstream, whatever its transport."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import mcp.types as types
import trio
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from bus.errors import UpstreamError
from bus.messages import ToolInfo, UpstreamSpec
from services import process
from services.upstream_log import RotatingLog
from services.worker.stdio import StdioUpstream, open_stdio_upstream

logger = logging.getLogger(__name__)

CLIENT_INFO: Final = types.Implementation(name="mcpproxy", version="0.1.0")
HTTP_TIMEOUT_S: Final = 30.0

MessageHandler = Callable[[Any], Awaitable[None]]


def tool_info(tool: types.Tool) -> ToolInfo:
    """Keep the upstream's definition as it was sent (camelCase JSON for schemas and annotations)."""
    dumped = tool.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return ToolInfo(
        name=tool.name,
        description=tool.description or "",
        title=tool.title,
        input_schema=dumped.get("inputSchema") or {"type": "object"},
        output_schema=dumped.get("outputSchema"),
        annotations=dumped.get("annotations"),
    )


async def list_all_tools(session: ClientSession) -> list[ToolInfo]:
    """Every page of tools/list."""
    tools: list[ToolInfo] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(tool_info(tool) for tool in page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


class Upstream:
    """A connected, initialized upstream session plus what we know about its process."""

    def __init__(self, session: ClientSession, stdio: StdioUpstream | None) -> None:
        self.session = session
        self.stdio = stdio
        self.gone = stdio.closed if stdio is not None else trio.Event()

    @property
    def exit_reason(self) -> str:
        if self.stdio is not None and self.stdio.exit_reason:
            return self.stdio.exit_reason
        return "upstream connection closed"


@asynccontextmanager
async def open_upstream(
    spec: UpstreamSpec,
    log: RotatingLog,
    on_spawn: Callable[[process.Child], None],
    message_handler: MessageHandler,
) -> AsyncIterator[Upstream]:
    """Connect and initialize within `spec.init_timeout_s`; the exit stops the upstream (staged)."""
    async with AsyncExitStack() as stack:
        stdio: StdioUpstream | None = None
        if spec.protocol == "stdio":
            assert spec.command is not None
            stdio = await stack.enter_async_context(
                open_stdio_upstream(
                    spec.command,
                    spec.args,
                    spec.env,
                    spec.working_dir,
                    log,
                    spec.close_timeout_s,
                    spec.kill_timeout_s,
                    on_spawn,
                )
            )
            read, write = stdio.read_stream, stdio.write_stream
        else:
            assert spec.url is not None
            client = await stack.enter_async_context(
                httpx2.AsyncClient(headers=spec.headers, timeout=HTTP_TIMEOUT_S, follow_redirects=True)
            )
            if spec.protocol == "sse":
                read, write = await stack.enter_async_context(sse_client(spec.url, headers=spec.headers))
            else:
                read, write = await stack.enter_async_context(
                    streamable_http_client(spec.url, http_client=client)
                )
        session = await stack.enter_async_context(
            ClientSession(read, write, client_info=CLIENT_INFO, message_handler=message_handler)
        )
        upstream = Upstream(session, stdio)
        with trio.move_on_after(spec.init_timeout_s) as scope:
            initialize = trio.Event()

            async def _initialize() -> None:
                await session.initialize()
                initialize.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(_initialize)
                if stdio is not None:
                    nursery.start_soon(_cancel_when, stdio.closed, nursery.cancel_scope)
                await initialize.wait()
                nursery.cancel_scope.cancel()
        if scope.cancelled_caught:
            raise UpstreamError(f"initialize did not finish within init_timeout ({spec.init_timeout_s:g}s)")
        if not initialize.is_set():
            raise UpstreamError(f"upstream failed during initialize: {upstream.exit_reason}")
        yield upstream


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def log_path(data_dir: Path, server: str) -> Path:
    return data_dir / "logs" / f"server-{server}.log"
