"""An HTTP MCP server of our own that reports the request headers it received.

    python tests/servers/headers_server.py --port PORT [--mode streamable|sse]

streamable: MCP streamable HTTP at /mcp.  sse: legacy HTTP+SSE at /sse (posts to /messages/).
Tool `headers` returns the headers of the HTTP request that carried the call, as JSON text.
Tool `request_url` returns that request's URL (path and query string).
Tool `echo` returns its message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from typing import Any

import mcp.types as types
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

TOOLS = [
    types.Tool(
        name="headers",
        description="Report the HTTP request headers this call arrived with.",
        input_schema={"type": "object", "properties": {}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="request_url",
        description="Report the URL (path and query string) of the HTTP request this call arrived with.",
        input_schema={"type": "object", "properties": {}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="echo",
        description="Echo a message back.",
        input_schema={"type": "object", "properties": {"message": {"type": "string"}}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
]
LAST_HEADERS: dict[str, str] = {}
LAST_URL: list[str] = [""]


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "headers":
        request = getattr(ctx, "request", None)
        seen = dict(request.headers) if request is not None else dict(LAST_HEADERS)
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(seen))])
    if params.name == "request_url":
        request = getattr(ctx, "request", None)
        url = str(request.url) if request is not None else LAST_URL[0]
        return types.CallToolResult(content=[types.TextContent(type="text", text=url)])
    message = str((params.arguments or {}).get("message", ""))
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)])


def make_server() -> Server[Any]:
    return Server("headers-server", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)


def streamable_app() -> Starlette:
    manager = StreamableHTTPSessionManager(make_server())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    class Endpoint:  # an object, so Starlette passes the raw ASGI call through
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await manager.handle_request(scope, receive, send)

    return Starlette(routes=[Route("/mcp", Endpoint(), methods=["GET", "POST", "DELETE"])], lifespan=lifespan)


def sse_app() -> Starlette:
    transport = SseServerTransport("/messages/")
    server = make_server()

    async def sse(request: Request) -> Response:
        LAST_HEADERS.clear()
        LAST_HEADERS.update(dict(request.headers))
        LAST_URL[0] = str(request.url)
        async with transport.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return Response()

    async def messages(scope: Any, receive: Any, send: Any) -> None:
        LAST_HEADERS.clear()
        LAST_HEADERS.update({k.decode(): v.decode() for k, v in scope["headers"]})
        await transport.handle_post_message(scope, receive, send)

    return Starlette(routes=[Route("/sse", sse), Mount("/messages/", app=messages)])


async def main(port: int, mode: str) -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.graceful_timeout = 0.5
    config.accesslog = None
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(on_signal)
            app = streamable_app() if mode == "streamable" else sse_app()
            await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["streamable", "sse"], default="streamable")
    arguments = parser.parse_args()
    trio.run(main, arguments.port, arguments.mode)
