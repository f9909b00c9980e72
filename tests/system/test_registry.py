"""`mcpproxy registry search | add` and `/api/v1/registry` on a real proxy whose `registries` point
at a local server answering with recorded entries of the official registry's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.proxyctl import echo_server, running_proxy
from tests.services.test_mcp_registry import serving_registry
from tests.system.test_cli import cli, ok, run

pytestmark = pytest.mark.system


async def test_registry_search_and_add_reach_the_configured_registry_and_add_quarantined(
    tmp_path: Path,
) -> None:
    with serving_registry() as registry:
        async with running_proxy(tmp_path, [echo_server()], registries=[registry]) as proxy:
            found = json.loads(
                ok(await cli(proxy, "registry", "search", "example/github-", "-o", "json")).stdout
            )
            assert [s["id"] for s in found["servers"]] == [
                "io.github.example/github-tools",
                "io.github.example/github-docker",
            ]
            assert found["errors"] == [] and found["servers"][0]["source"] == registry
            table = ok(await cli(proxy, "registry", "search", "sqlite")).stdout
            assert "sqlite-py" in table and "0.6.1" in table and "registry add ID" in table

            added = ok(await cli(proxy, "registry", "add", "io.github.example/github-tools"))
            assert "quarantined" in added.stdout and "GITHUB_TOKEN" in added.stdout
            servers = await proxy.servers()
            assert servers["github-tools"]["quarantined"] is True
            disk = next(
                s
                for s in json.loads(proxy.config_path.read_text())["mcpServers"]
                if s["name"] == "github-tools"
            )
            assert (
                disk["command"] == "npx"
                and disk["env"]["GITHUB_TOKEN"] == "${keyring:github-tools_GITHUB_TOKEN}"
            )

            remote = json.loads(
                ok(
                    await cli(
                        proxy,
                        "registry",
                        "add",
                        "io.github.example/github-tools",
                        "--name",
                        "gh",
                        "--remote",
                        "-o",
                        "json",
                    )
                ).stdout
            )
            assert remote["server"]["url"] == "https://github-tools.example.com/mcp"
            assert (await proxy.servers())["gh"]["quarantined"] is True

            # Not in this registry: the shipped reference list answers.
            ok(await cli(proxy, "registry", "add", "modelcontextprotocol/time"))
            assert (await proxy.servers())["time"]["quarantined"] is True

            response = await proxy.post("/api/v1/registry/add", json={"id": "io.github.nobody/nothing"})
            assert response.status_code == 404 and "io.github.nobody/nothing" in response.json()["error"]
            again = await proxy.post("/api/v1/registry/add", json={"id": "io.github.example/github-tools"})
            assert again.status_code == 409


async def test_an_unreachable_registry_is_named_and_the_shipped_list_still_answers(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server()], registries=["http://127.0.0.1:9"]) as proxy:
        response = await proxy.get("/api/v1/registry/search", params={"q": "memory"})
        data = response.json()["data"]
        assert "127.0.0.1:9" in data["errors"][0]
        assert [s["id"] for s in data["servers"]] == ["modelcontextprotocol/memory"]
    offline = json.loads(ok(await run("registry", "search", "--offline", "files", "-o", "json")).stdout)
    assert [s["id"] for s in offline["servers"]] == ["modelcontextprotocol/filesystem"]
