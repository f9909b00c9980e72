"""The management API against a real proxy: one writer, merge patch, redaction on every channel, events."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from tests.proxyctl import PYTHON, Proxy, echo_server, running_proxy

pytestmark = pytest.mark.system

TOKEN = "Bearer " + "t" * 62 + "59"  # 71 characters ending in 59: the seed's example
MASK = "••••59 (71 chars)"
CLI = str(Path(PYTHON).parent / "mcpproxy")


async def request(proxy: Proxy, method: str, path: str, **kwargs: Any) -> httpx2.Response:
    headers = {**proxy.headers, **kwargs.pop("headers", {})}
    async with httpx2.AsyncClient(base_url=proxy.base_url, timeout=30) as client:
        return await client.request(method, path, headers=headers, **kwargs)


def on_disk(proxy: Proxy) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(proxy.config_path.read_text())
    return data


def disk_server(proxy: Proxy, name: str) -> dict[str, Any]:
    return next(s for s in on_disk(proxy)["mcpServers"] if s["name"] == name)


@asynccontextmanager
async def event_stream(
    proxy: Proxy, headers: dict[str, str] | None = None
) -> AsyncIterator[list[tuple[str, Any]]]:
    """Collect /events (as the API key, or `headers`) into a list while the block runs."""
    seen: list[tuple[str, Any]] = []
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            async with (
                httpx2.AsyncClient(base_url=proxy.base_url, timeout=None) as client,
                client.stream("GET", "/events", headers=headers or proxy.headers) as response,
            ):
                assert response.status_code == 200
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        seen.append((event, json.loads(line[6:])))

        nursery.start_soon(reader)
        with trio.fail_after(10):
            while not seen:
                await trio.sleep(0.05)
        try:
            yield seen
        finally:
            nursery.cancel_scope.cancel()


async def wait_event(seen: list[tuple[str, Any]], name: str, timeout_s: float = 20) -> Any:
    with trio.fail_after(timeout_s):
        while True:
            for event, data in seen:
                if event == name:
                    return data
            await trio.sleep(0.05)


async def test_every_channel_masks_the_seed_token_and_shows_references_unchanged(tmp_path: Path) -> None:
    server = echo_server(
        headers={"Authorization": TOKEN, "X-Ref": "${keyring:gh_token}", "X-Trace": "on"},
        env={"API_KEY": "k" * 20, "REF": "${env:HOME}", "LOG_LEVEL": "debug"},
    )
    async with running_proxy(tmp_path, [server]) as proxy:
        # The secret it references does not exist: the server fails, and is shown all the same.
        await proxy.wait_for("echo", "backoff")
        async with event_stream(proxy) as seen:
            listed = (await request(proxy, "GET", "/api/v1/servers")).json()["data"]["servers"][0]
            one = (await request(proxy, "GET", "/api/v1/servers/echo")).json()["data"]["server"]
            whole = (await request(proxy, "GET", "/api/v1/config")).json()["data"]["mcpServers"][0]
            first = await wait_event(seen, "servers.changed")
            streamed = first["servers"][0]
            for view in (listed, one, whole, streamed):
                assert view["headers"] == {
                    "Authorization": MASK,
                    "X-Ref": "${keyring:gh_token}",
                    "X-Trace": "on",
                }
                assert view["env"]["API_KEY"] == "••••kk (20 chars)"
                assert view["env"]["REF"] == "${env:HOME}" and view["env"]["LOG_LEVEL"] == "debug"
            for path in ("/api/v1/servers", "/api/v1/config", "/api/v1/servers/echo"):
                assert TOKEN[7:] not in (await request(proxy, "GET", path)).text
            assert (
                (await request(proxy, "GET", "/api/v1/config")).json()["data"]["api_key"].startswith("••••")
            )


async def test_reveal_secret_headers_turns_masking_off(tmp_path: Path) -> None:
    server = echo_server(headers={"Authorization": TOKEN})
    async with running_proxy(tmp_path, [server], reveal_secret_headers=True) as proxy:
        await proxy.wait_for("echo", "running")
        view = (await request(proxy, "GET", "/api/v1/servers/echo")).json()["data"]["server"]
        assert view["headers"]["Authorization"] == TOKEN


async def test_merge_patch_corner_cases_and_the_file_on_disk(tmp_path: Path) -> None:
    server = echo_server(headers={"Authorization": TOKEN, "X-Stale": "old", "X-Keep": "kept"}, env={"A": "1"})
    async with running_proxy(tmp_path, [server]) as proxy:
        await proxy.wait_for("echo", "running")
        patch = {
            "headers": {"X-New": "value", "X-Stale": None, "Authorization": MASK, "X-Empty": ""},
            "env": {"B": "2"},
            "args": [*server["args"], "--name", "patched"],
        }
        response = await request(proxy, "PATCH", "/api/v1/servers/echo", json=patch)
        assert response.status_code == 200, response.text
        stored = disk_server(proxy, "echo")
        assert stored["headers"] == {
            "Authorization": TOKEN,
            "X-Keep": "kept",
            "X-New": "value",
            "X-Empty": "",
        }
        assert stored["env"] == {"A": "1", "B": "2"}
        assert stored["args"][-2:] == ["--name", "patched"]
        assert (proxy.config_path.with_name("mcp_config.json.bak")).exists()
        assert response.json()["data"]["server"]["headers"]["Authorization"] == MASK

        bad = await request(proxy, "PATCH", "/api/v1/servers/echo", json={"args": "nope"})
        assert (
            bad.status_code == 400
            and "args" in bad.json()["error"]
            and "expected array" in bad.json()["error"]
        )
        mask_for_new = await request(
            proxy, "PATCH", "/api/v1/servers/echo", json={"headers": {"X-Other": MASK}}
        )
        assert mask_for_new.status_code == 400
        assert (await request(proxy, "PATCH", "/api/v1/servers/nope", json={})).status_code == 404
        invalid = await request(proxy, "PATCH", "/api/v1/servers/echo", content=b"{not json")
        assert invalid.status_code == 400
        assert json.loads(proxy.config_path.read_text())  # the file on disk is always valid
        await proxy.wait_for("echo", "running")


async def test_fifty_concurrent_patches_are_all_kept(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(enabled=False)]) as proxy:
        await proxy.wait_for("echo", "stopped")
        statuses: list[int] = []

        async def patch(i: int) -> None:
            response = await request(proxy, "PATCH", "/api/v1/servers/echo", json={"env": {f"K{i}": str(i)}})
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(patch, i)
        assert statuses == [200] * 50
        env = disk_server(proxy, "echo")["env"]
        assert env == {f"K{i}": str(i) for i in range(50)}


async def test_config_to_secret_moves_a_masked_header_into_the_store(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server(headers={"Authorization": TOKEN})]) as proxy:
        await proxy.wait_for("echo", "running")
        body = {"scope": "header", "key": "Authorization", "secret_name": "echo_auth"}
        response = await request(proxy, "POST", "/api/v1/servers/echo/config-to-secret", json=body)
        assert response.status_code == 200, response.text
        assert disk_server(proxy, "echo")["headers"]["Authorization"] == "${keyring:echo_auth}"
        revealed = subprocess.run(
            [
                CLI,
                "secrets",
                "get",
                "echo_auth",
                "--reveal",
                "--config",
                str(proxy.config_path),
                "--data-dir",
                str(proxy.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert revealed.stdout.strip() == TOKEN
        assert TOKEN not in proxy.config_path.read_text()
        again = await request(proxy, "POST", "/api/v1/servers/echo/config-to-secret", json=body)
        assert again.status_code == 400 and "already a reference" in again.json()["error"]
        missing = await request(
            proxy, "POST", "/api/v1/servers/echo/config-to-secret", json={**body, "key": "X-None"}
        )
        assert missing.status_code == 404
        unknown = await request(proxy, "POST", "/api/v1/servers/nope/config-to-secret", json=body)
        assert unknown.status_code == 404
        await proxy.wait_for("echo", "running")


async def test_add_remove_enable_disable_quarantine(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        added = await request(proxy, "POST", "/api/v1/servers", json=echo_server("second"))
        assert added.status_code == 201, added.text
        await proxy.wait_for("second", "running")
        assert (
            await request(proxy, "POST", "/api/v1/servers", json=echo_server("second"))
        ).status_code == 409
        bad = await request(proxy, "POST", "/api/v1/servers", json={"name": "bad name!", "command": "x"})
        assert bad.status_code == 400 and "name" in bad.json()["error"]

        assert (await request(proxy, "POST", "/api/v1/servers/second/disable")).status_code == 200
        stopped = await proxy.wait_for("second", "stopped")
        assert stopped["worker_pid"] is None and disk_server(proxy, "second")["enabled"] is False
        assert (await request(proxy, "POST", "/api/v1/servers/second/enable")).status_code == 200
        await proxy.wait_for("second", "running")
        assert (await request(proxy, "POST", "/api/v1/servers/second/quarantine")).status_code == 200
        await proxy.wait_for("second", "stopped", quarantined=True)
        assert (await request(proxy, "POST", "/api/v1/servers/second/unquarantine")).status_code == 200
        await proxy.wait_for("second", "running", quarantined=False)

        assert (await request(proxy, "DELETE", "/api/v1/servers/second")).status_code == 200
        with trio.fail_after(30):
            while "second" in await proxy.servers():
                await trio.sleep(0.1)
        assert [s["name"] for s in on_disk(proxy)["mcpServers"]] == ["echo"]
        assert (await request(proxy, "DELETE", "/api/v1/servers/second")).status_code == 404
        await proxy.wait_for("echo", "running")


async def test_hand_edits_are_picked_up_and_invalid_ones_rejected(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        await proxy.wait_for("echo", "running")
        async with event_stream(proxy) as seen:
            good = proxy.config_path.read_text()
            proxy.config_path.write_text("{ this is not json")
            error = await wait_event(seen, "config.error")
            assert "invalid JSON" in error["error"]
            assert (await proxy.servers())["echo"]["state"] == "running"

            data = json.loads(good)
            data["mcpServers"].append(echo_server("handmade"))
            proxy.config_path.write_text(json.dumps(data))
            await wait_event(seen, "config.reloaded")
            handmade = await proxy.wait_for("handmade", "stopped", quarantined=True)
            assert handmade["worker_pid"] is None
            assert disk_server(proxy, "handmade")["quarantined"] is True


async def test_validate_checks_a_whole_config_without_applying_it(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        ok = await request(proxy, "POST", "/api/v1/config/validate", json={"mcpServers": []})
        assert ok.status_code == 200 and ok.json()["data"] == {"valid": True}
        bad = await request(proxy, "POST", "/api/v1/config/validate", json={"mcpServers": [{"name": "x"}]})
        assert bad.status_code == 400 and "mcpServers[0]" in bad.json()["error"]
        assert len(on_disk(proxy)["mcpServers"]) == 1


async def test_the_front_door_refuses_foreign_hosts_origins_and_huge_bodies(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        foreign = await request(proxy, "GET", "/api/v1/status", headers={"Host": "evil.example"})
        assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
        cross = await request(proxy, "GET", "/api/v1/status", headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
        same = await request(
            proxy, "GET", "/api/v1/status", headers={"Origin": f"http://127.0.0.1:{proxy.port}"}
        )
        assert same.status_code == 200
        mcp_foreign = await request(proxy, "POST", "/mcp", headers={"Host": "evil.example"}, json={})
        assert mcp_foreign.status_code == 403
        huge = await request(
            proxy,
            "POST",
            "/api/v1/servers",
            content=b"x" * (5 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        assert "access-control-allow-origin" not in {k.lower() for k in same.headers}


async def test_events_need_the_key(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()]) as proxy:
        assert (await request(proxy, "GET", "/events", headers={"X-API-Key": "wrong"})).status_code == 401


async def test_the_openapi_document_is_served(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, []) as proxy:
        doc = (await request(proxy, "GET", "/api/v1/openapi.json")).json()
        assert doc["openapi"].startswith("3.") and "/api/v1/servers/{name}" in doc["paths"]
