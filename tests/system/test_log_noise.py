"""What `mcpproxy serve` logs at INFO for a start, a few MCP sessions and a stop: state changes and
one line per event, not each HTTP request it makes itself nor each session the SDK opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proxyctl import echo_server, running_proxy
from tests.system.test_cli import headers_upstream

pytestmark = pytest.mark.system

NOISE = (
    "HTTP Request:",  # serve's readiness probe and progress report (httpx2)
    "session manager started",  # once per MCP endpoint
    "session manager shutting down",
    "Created new transport",  # once per MCP session
    "Terminating session",
    "hypercorn.error: Running on",  # beside "gateway listening on"
    "server(s)",
    "Received session ID",  # a remote upstream's worker: its SDK client's traffic
    "GET stream disconnected",
)


async def test_a_session_of_calls_logs_no_per_request_lines_and_nothing_twice(tmp_path: Path) -> None:
    with headers_upstream() as url:
        remote = {"name": "remote", "url": url, "protocol": "http"}
        async with running_proxy(tmp_path, [echo_server(), remote]) as proxy:
            await proxy.wait_for("echo", "running")
            await proxy.wait_for("remote", "running")
            for path in ("/mcp", "/mcp/all", "/mcp/all"):
                async with proxy.mcp(path) as session:
                    if path == "/mcp/all":
                        await session.call_tool("remote__headers", {})
                    else:
                        await session.list_tools()
    log = (tmp_path / "proxy.log").read_text()
    for noise in NOISE:
        assert noise not in log, f"{noise!r} in:\n{log}"
    lines = log.splitlines()
    assert sum("gateway listening on" in line for line in lines) == 1
    assert "INFO supervisor: supervisor ready: 2 servers configured" in lines
    assert len(lines) == len(set(lines)), log  # no line twice
