"""Large tool results (issue 22): cut at the limit with a notice, the rest read back through `read_cache`
pages, on `/mcp` and `/mcp/all`, for clients of both protocol eras, fast lane and SDK path alike.

The upstream is tests/servers/echo_server.py with ECHO_SERVER_LARGE=1 (its `large` tool).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import pytest
import trio
from mcp.client import Client

from tests.proxyctl import Proxy, echo_server, running_proxy
from tests.servers.echo_server import long_text

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
PATHS: Final = ("/mcp", "/mcp/all")
CACHE_KEY: Final = "mcpproxy/result_cache"
SIZE_KEY: Final = "anthropic/maxResultSizeChars"
LARGE: Final = {"ECHO_SERVER_LARGE": "1"}
TOKEN: Final = "sk-live-" + "R" * 24 + "77"


def large_server(name: str = "echo", **extra: Any) -> dict[str, Any]:
    return echo_server(name, env={**LARGE, **extra.pop("env", {})}, **extra)


@asynccontextmanager
async def through(proxy: Proxy, path: str, mode: str) -> AsyncIterator[Client]:
    with trio.fail_after(30):
        async with Client(f"{proxy.base_url}{path}", mode=mode, cache=None) as client:  # type: ignore[arg-type]
            yield client


async def call_large(
    client: Client, path: str, args: dict[str, Any], server: str = "echo", **options: Any
) -> types.CallToolResult:
    with trio.fail_after(60):
        if path == "/mcp/all":
            return await client.call_tool(f"{server}__large", args, **options)
        return await client.call_tool("call_tool_read", {"name": f"{server}:large", "args": args}, **options)


async def read_rest(client: Client, first: types.CallToolResult, item: int = 0, **by: Any) -> list[str]:
    """The shown text, then every `read_cache` page of the cut text item `item`."""
    texts = [c for c in first.content if isinstance(c, types.TextContent)]
    (info,) = (first.meta or {})[CACHE_KEY]
    return [texts[item].text, *await read_pages(client, info["handle"], info["next_offset"], **by)]


async def read_pages(client: Client, handle: str, offset: int | None, **by: Any) -> list[str]:
    pieces = []
    while offset is not None:
        with trio.fail_after(30):
            page = await client.call_tool("read_cache", {"handle": handle, "offset": offset, **by})
        assert not page.is_error, page.content
        assert isinstance(page.content[0], types.TextContent)
        pieces.append(page.content[0].text)
        offset = (page.meta or {})[CACHE_KEY]["next_offset"]
    return pieces


async def no_progress(progress: float, total: float | None, message: str | None) -> None:
    """Asking for progress takes the call off the fast lane, onto the SDK's path."""


async def test_a_200_kb_text_is_read_back_whole_through_read_cache_on_both_endpoints_in_both_eras(
    tmp_path: Path,
) -> None:
    expected = long_text(200_000)
    async with running_proxy(tmp_path, [large_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        for path in PATHS:
            for mode in MODES:
                async with through(proxy, path, mode) as client:
                    listed = (await client.list_tools()).tools
                    assert "read_cache" in {tool.name for tool in listed}
                    assert all((tool.meta or {}).get(SIZE_KEY) == 100_000 for tool in listed), path
                    lanes = [{}, {"progress_callback": no_progress}] if mode == "legacy" else [{}]
                    for lane in lanes:
                        first = await call_large(client, path, {"kind": "text", "size": 200_000}, **lane)
                        assert not first.is_error
                        shown, notice = (c.text for c in first.content if isinstance(c, types.TextContent))
                        assert len(shown) <= 20_000 and expected.startswith(shown)
                        assert "read_cache" in notice and "200,000 characters" in notice
                        pieces = await read_rest(client, first)
                        assert "".join(pieces) == expected, (path, mode, lane)
                        assert "".join(pieces).encode() == expected.encode()
                        assert all(len(piece) <= 20_000 for piece in pieces)


async def test_limits_per_server_json_arrays_by_record_and_images_unchanged(tmp_path: Path) -> None:
    servers = [
        large_server(),
        large_server("small", tool_response_limit=5_000),
        large_server("unlimited", tool_response_limit=0),
    ]
    async with running_proxy(tmp_path, servers, tool_response_limit=30_000) as proxy:
        for name in ("echo", "small", "unlimited"):
            await proxy.wait_for(name, "running")
        async with through(proxy, "/mcp/all", "legacy") as client:
            whole = await call_large(client, "/mcp/all", {"kind": "json", "size": 1000}, "unlimited")
            assert CACHE_KEY not in (whole.meta or {})  # 0: not cut at all
            assert isinstance(whole.content[0], types.TextContent)
            original = whole.content[0].text
            records = json.loads(original)
            assert len(records) == 1000 and len(original) > 90_000

            first = await call_large(client, "/mcp/all", {"kind": "json", "size": 1000})
            (info,) = (first.meta or {})[CACHE_KEY]
            assert info["unit"] == "records" and info["total"] == 1000
            shown = first.content[0]
            assert isinstance(shown, types.TextContent) and len(shown.text) <= 30_000  # the global limit
            pages = await read_rest(client, first)
            assert [record for page in pages for record in json.loads(page)] == records
            by_chars = await read_pages(client, info["handle"], 0, by="chars")
            assert "".join(by_chars) == original  # the array's own text, byte for byte

            small = await call_large(client, "/mcp/all", {"kind": "text", "size": 12_000}, "small")
            assert isinstance(small.content[0], types.TextContent) and len(small.content[0].text) <= 5_000
            assert "".join(await read_rest(client, small)) == long_text(12_000)
            page = await client.call_tool(
                "read_cache",
                {"handle": small.meta[CACHE_KEY][0]["handle"], "offset": 0},  # type: ignore[index]
            )
            assert isinstance(page.content[0], types.TextContent) and len(page.content[0].text) <= 5_000

            mixed = await call_large(client, "/mcp/all", {"kind": "image", "size": 40_000})
            image = mixed.content[0]
            assert isinstance(image, types.ImageContent) and len(image.data) > 100_000  # passed whole
            assert "".join(await read_rest(client, mixed, item=0)) == long_text(40_000)


async def test_the_cache_holds_no_known_secret_and_a_stale_handle_is_refused_clearly(tmp_path: Path) -> None:
    server = large_server(env={"API_TOKEN": TOKEN}, allow_secret_echo=True)
    async with running_proxy(tmp_path, [server]) as proxy:
        await proxy.wait_for("echo", "running")
        async with through(proxy, "/mcp", "2026-07-28") as client:
            first = await call_large(client, "/mcp", {"kind": "text", "size": 60_000, "env": "API_TOKEN"})
            whole = "".join(await read_rest(client, first))
            assert TOKEN not in whole and "••••" in whole  # the cache was scrubbed, as the activity log is
            cache_dir = proxy.data_dir / "result_cache"
            files = list(cache_dir.iterdir())
            assert files and all(TOKEN not in f.read_text() for f in files)

            unknown = await client.call_tool("read_cache", {"handle": "rc_no-such-handle"})
            assert unknown.is_error
            assert "no cached result" in unknown.content[0].text  # type: ignore[union-attr]
            for file in files:  # what expiry and eviction do to an entry
                file.unlink()
            handle = (first.meta or {})[CACHE_KEY][0]["handle"]
            gone = await client.call_tool("read_cache", {"handle": handle, "offset": 10})
            assert gone.is_error and "Call the tool again" in gone.content[0].text  # type: ignore[union-attr]
