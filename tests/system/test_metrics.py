"""`/metrics` (issue 23 item 5), scraped by a real Prometheus server (Debian's `prometheus`).

The test starts its own Prometheus on a free port, with its own data dir and a config that scrapes
the proxy every second with the API key, queries its HTTP API for the series, and stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest
import trio
from mcp.client import Client

from tests.proxyctl import API_KEY, Proxy, echo_server, free_port, running_proxy

pytestmark = pytest.mark.system

PROMETHEUS: Final = "/usr/bin/prometheus"
DEADLINE_S: Final = 90.0
STOP_S: Final = 15.0
POLL_S: Final = 0.2


@pytest.fixture
def prometheus_binary() -> str:
    """Skipped (sync, so the reason survives) where Debian's prometheus is not installed."""
    found = PROMETHEUS if os.access(PROMETHEUS, os.X_OK) else shutil.which("prometheus")
    if found is None:
        pytest.skip("needs Debian's prometheus (apt-get install prometheus)")
    return found


@asynccontextmanager
async def running_prometheus(binary: str, directory: Path, target_port: int) -> AsyncIterator[str]:
    """A Prometheus scraping `127.0.0.1:<target_port>/metrics` every second; yields its base URL."""
    directory.mkdir()
    port = free_port()
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: mcpproxy\n"
        "    metrics_path: /metrics\n"
        f"    authorization: {{type: Bearer, credentials: {API_KEY}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
    )
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with trio.fail_after(DEADLINE_S):
            async with httpx2.AsyncClient(timeout=5.0) as http:
                while True:
                    assert process.poll() is None, (directory / "prometheus.log").read_text()
                    try:
                        if (await http.get(f"{base}/-/ready")).status_code == 200:
                            break
                    except httpx2.HTTPError:
                        pass
                    await trio.sleep(POLL_S)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_S)
        log.close()


async def series(base: str, query: str) -> list[dict[str, Any]]:
    async with httpx2.AsyncClient(timeout=10.0) as http:
        answer = await http.get(f"{base}/api/v1/query", params={"query": query})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def until_value(base: str, query: str, expected: float) -> None:
    """Until Prometheus answers `query` with one series of value `expected` (each scrape is a second)."""
    last: list[dict[str, Any]] = []
    with trio.move_on_after(DEADLINE_S):
        while True:
            last = await series(base, query)
            if len(last) == 1 and float(last[0]["value"][1]) == expected:
                return
            await trio.sleep(POLL_S)
    raise AssertionError(f"{query}: expected {expected}, last answer {last}")


async def gate_entered(proxy: Proxy, count: int) -> None:
    while True:
        logs = (await proxy.get("/api/v1/servers/db/logs", params={"tail": 200})).json()["data"]["lines"]
        if sum("gate entered" in line for line in logs) >= count:
            return
        await trio.sleep(0.05)


@pytest.mark.requires("prometheus")
async def test_prometheus_scrapes_states_calls_latency_queue_memory_and_tools(
    tmp_path: Path, prometheus_binary: str
) -> None:
    gate = tmp_path / "gate"
    servers = [
        echo_server(),
        echo_server("db", env={"ECHO_SERVER_GATE": str(gate)}, max_concurrent_calls=1),
    ]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("echo", "running")
        await proxy.wait_for("db", "running")
        with trio.fail_after(DEADLINE_S):
            for mode in ("legacy", "2026-07-28"):
                async with Client(f"{proxy.base_url}/mcp/all", mode=mode, cache=None) as client:  # type: ignore[arg-type]
                    for _ in range(3):
                        assert not (await client.call_tool("echo__echo", {"message": "hi"})).is_error
                    assert (await client.call_tool("echo__fail", {"message": "no"})).is_error
        async with running_prometheus(prometheus_binary, tmp_path / "prometheus", proxy.port) as prom:
            await until_value(prom, 'mcpproxy_server_state{server="echo",state="running"}', 1)
            await until_value(prom, 'mcpproxy_server_state{server="echo",state="stopped"}', 0)
            await until_value(prom, 'mcpproxy_tool_calls_total{server="echo",status="ok"}', 6)
            await until_value(prom, 'mcpproxy_tool_calls_total{server="echo",status="error"}', 2)
            await until_value(prom, 'mcpproxy_tool_call_duration_seconds_count{server="echo"}', 8)
            await until_value(prom, 'mcpproxy_tool_call_duration_seconds_bucket{server="echo",le="+Inf"}', 8)
            await until_value(prom, 'mcpproxy_server_restarts_total{server="echo"}', 0)
            await until_value(prom, 'mcpproxy_tools_indexed{server="echo"}', 6)
            await until_value(prom, 'count(mcpproxy_worker_rss_bytes{server="echo"} > 1000000)', 1)
            await until_value(prom, 'count(mcpproxy_upstream_rss_bytes{server="echo"} > 1000000)', 1)
            # Queue depth: one call holds db's one slot, one more waits for it.
            with trio.fail_after(DEADLINE_S):
                async with (
                    Client(f"{proxy.base_url}/mcp/all", mode="2026-07-28", cache=None) as client,
                    trio.open_nursery() as nursery,
                ):
                    nursery.start_soon(client.call_tool, "db__gate", {})
                    await gate_entered(proxy, 1)
                    nursery.start_soon(client.call_tool, "db__gate", {})
                    await until_value(prom, 'mcpproxy_call_queue_depth{scope="db"}', 1)
                    await until_value(prom, 'mcpproxy_calls_running{scope="db"}', 1)
                    gate.touch()
            await until_value(prom, 'mcpproxy_call_queue_depth{scope="db"}', 0)
            await until_value(prom, 'mcpproxy_tool_calls_total{server="db",status="ok"}', 2)
            await until_value(prom, 'up{job="mcpproxy"}', 1)


async def test_metrics_needs_the_api_key_by_default(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, []) as proxy:
        refused = await proxy.get("/metrics", headers={})
        assert refused.status_code == 401, refused.text
        allowed = await proxy.get("/metrics")
        assert allowed.status_code == 200
        assert allowed.headers["content-type"].startswith("text/plain")
        assert "# TYPE mcpproxy_tool_calls_total counter" in allowed.text


async def test_metrics_access_loopback_opens_metrics_to_this_machine_only(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()], metrics_access="loopback") as proxy:
        await proxy.wait_for("echo", "running")
        answer = await proxy.get("/metrics", headers={})
        assert answer.status_code == 200, answer.text
        assert 'mcpproxy_server_state{server="echo",state="running"} 1.0' in answer.text
        # The rest of the API still wants the key.
        assert (await proxy.get("/api/v1/servers", headers={})).status_code == 401
