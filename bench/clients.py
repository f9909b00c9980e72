"""Clients the benchmarks drive: one tool call made ready to repeat, over stdio, MCP over HTTP, or REST.

Each `open_*` yields a `Call`, an argument-less coroutine function making the
same echo call again. The first call is checked, so a benchmark never times a
stream of errors.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import trio
from mcp.client.client import Client
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO: Final = Path(__file__).resolve().parent.parent
ECHO: Final = REPO / "tests" / "servers" / "echo_server.py"
ECHO_ARGV: Final = (sys.executable, str(ECHO))
MESSAGE: Final = {"message": "ping"}
CALL_TIMEOUT_S: Final = 30.0
OPEN_TIMEOUT_S: Final = 60.0

Call = Callable[[], Awaitable[None]]
CallOpener = Callable[[], AbstractAsyncContextManager[Call]]


class Transport(enum.Enum):
    """How an MCP client reaches a server over HTTP."""

    STREAMABLE_HTTP = "streamable HTTP"
    SSE = "SSE"


class CallFailedError(RuntimeError):
    """A benchmark call answered with an error: the figures would measure errors, not calls."""


def check_result(result: Any, tool: str) -> None:
    if result.is_error:
        raise CallFailedError(f"{tool} answered an error: {result.model_dump_json()[:300]}")


async def _session_call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> Call:
    with trio.fail_after(OPEN_TIMEOUT_S):
        await session.initialize()
        check_result(await session.call_tool(tool, arguments), tool)

    async def call() -> None:
        await session.call_tool(tool, arguments)

    return call


@asynccontextmanager
async def open_stdio_session(argv: tuple[str, ...] = ECHO_ARGV) -> AsyncIterator[ClientSession]:
    """The SDK's stdio client on a fresh server process (not initialized yet)."""
    params = StdioServerParameters(command=argv[0], args=list(argv[1:]))
    with open(os.devnull, "w") as devnull:
        async with (
            stdio_client(params, errlog=devnull) as (read, write),
            ClientSession(read, write) as session,
        ):
            yield session


@asynccontextmanager
async def open_stdio_call(tool: str = "echo", arguments: dict[str, Any] = MESSAGE) -> AsyncIterator[Call]:
    async with open_stdio_session() as session:
        yield await _session_call(session, tool, arguments)


@asynccontextmanager
async def open_mcp_call(
    url: str, tool: str, arguments: dict[str, Any], transport: Transport = Transport.STREAMABLE_HTTP
) -> AsyncIterator[Call]:
    """One MCP client session of its own (its own HTTP connection pool) to `url`."""
    if transport is Transport.SSE:
        async with (
            sse_client(url, timeout=CALL_TIMEOUT_S) as (read, write),
            ClientSession(read, write) as session,
        ):
            yield await _session_call(session, tool, arguments)
        return
    async with (
        httpx2.AsyncClient(timeout=CALL_TIMEOUT_S) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        yield await _session_call(session, tool, arguments)


@asynccontextmanager
async def open_client_call(url: str, tool: str, arguments: dict[str, Any], mode: str) -> AsyncIterator[Call]:
    """The SDK's high-level `Client(url, mode=...)`, as an application would hold it: "legacy" (the
    initialize handshake, a session) or a 2026-era version (no handshake, no session)."""
    async with Client(url, mode=mode, read_timeout_seconds=CALL_TIMEOUT_S) as client:
        with trio.fail_after(OPEN_TIMEOUT_S):
            check_result(await client.call_tool(tool, arguments), tool)

        async def call() -> None:
            await client.call_tool(tool, arguments)

        yield call


@asynccontextmanager
async def open_rest_call(url: str, body: dict[str, Any]) -> AsyncIterator[Call]:
    """POST `body` to `url` (an OpenAPI tool endpoint) with a client of its own."""
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT_S) as http:

        async def call() -> None:
            (await http.post(url, json=body)).raise_for_status()

        with trio.fail_after(OPEN_TIMEOUT_S):
            response = await http.post(url, json=body)
        if response.status_code != 200:
            raise CallFailedError(f"POST {url} answered {response.status_code}: {response.text[:300]}")
        yield call
