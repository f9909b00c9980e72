"""The MCP registry client against a local server answering as the real API does (recorded entries
in tests/fixtures/registry), and the conversion of entries into our server configs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from services import mcp_registry

RECORDED: Final = Path(__file__).resolve().parent.parent / "fixtures" / "registry" / "servers.json"


class _Registry(BaseHTTPRequestHandler):
    """`GET /v0.1/servers?search=&version=latest`, as registry.modelcontextprotocol.io answers it."""

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        if split.path != "/v0.1/servers":
            self._send(404, {"title": "Not Found", "status": 404})
            return
        query = parse_qs(split.query)
        words = query.get("search", [""])[0].lower()
        items = json.loads(RECORDED.read_text())["servers"]
        if not self.fuzzy:
            items = [i for i in items if words in i["server"]["name"].lower()]
        if query.get("version") == ["latest"]:
            items = [i for i in items if i["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"]]
        # Pages of `limit` entries, the next one named by an opaque cursor (here: its first entry's name).
        limit = int(query.get("limit", ["30"])[0])
        names = [i["server"]["name"] for i in items]
        start = names.index(query["cursor"][0]) if "cursor" in query else 0
        page, rest = items[start : start + limit], items[start + limit :]
        metadata: dict[str, Any] = {"count": len(page)}
        if rest:
            metadata["nextCursor"] = rest[0]["server"]["name"]
        self._send(200, {"servers": page, "metadata": metadata})

    fuzzy = False
    """Answer every server whatever the search words (a full-text search ranks others first)."""

    def _send(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _FuzzyRegistry(_Registry):
    fuzzy = True


@contextmanager
def serving_registry(handler: type[_Registry] = _Registry) -> Iterator[str]:
    """A local registry on a free port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def recorded(name: str, version: str | None = None) -> dict[str, Any]:
    return next(
        i["server"]
        for i in json.loads(RECORDED.read_text())["servers"]
        if i["server"]["name"] == name and version in (None, i["server"]["version"])
    )


async def test_search_answers_the_latest_version_of_each_match() -> None:
    with serving_registry() as base:
        async with httpx2.AsyncClient() as http:
            found = await mcp_registry.search(http, base, "example/github-")
    assert [(e["name"], e["version"]) for e in found] == [
        ("io.github.example/github-tools", "1.4.0"),
        ("io.github.example/github-docker", "2.0.0"),
    ]


def test_of_several_versions_the_one_marked_latest_is_kept() -> None:
    items = json.loads(RECORDED.read_text())["servers"]
    chosen = mcp_registry._latest(items[:2][::-1])
    assert [e["version"] for e in chosen] == ["1.4.0"]


async def test_find_falls_back_to_the_shipped_list_and_names_what_failed() -> None:
    with serving_registry() as base:
        async with httpx2.AsyncClient() as http:
            assert (await mcp_registry.find(http, [base], "io.github.example/sqlite-py"))[
                "version"
            ] == "0.6.1"
            time = await mcp_registry.find(http, [base, "http://127.0.0.1:9"], "modelcontextprotocol/time")
            assert time["packages"][0]["identifier"] == "mcp-server-time"
            with pytest.raises(mcp_registry.RegistryError, match=r"127\.0\.0\.1:9"):
                await mcp_registry.find(http, ["http://127.0.0.1:9"], "io.github.nobody/nothing")
            with pytest.raises(mcp_registry.RegistryError, match="HTTP 404"):
                await mcp_registry.search(http, base + "/elsewhere", "x")


async def test_find_follows_the_registry_pages_to_the_exact_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_registry, "SEARCH_LIMIT", 1)  # one entry a page: the match is on the last
    with serving_registry(_FuzzyRegistry) as base:
        async with httpx2.AsyncClient() as http:
            assert len(await mcp_registry.search(http, base, "anything", limit=1)) == 1
            found = await mcp_registry.find(http, [base], "com.example/weather")
            assert found["name"] == "com.example/weather"
            monkeypatch.setattr(mcp_registry, "FIND_PAGES", 2)  # a bounded walk: not found, then offline
            with pytest.raises(mcp_registry.RegistryError, match=r"no server 'com\.example/weather'"):
                await mcp_registry.find(http, [base], "com.example/weather")


def test_an_npm_package_runs_with_npx_and_its_secret_is_a_keyring_reference() -> None:
    conversion = mcp_registry.to_server(recorded("io.github.example/github-tools", "1.4.0"))
    assert conversion.server == {
        "name": "github-tools",
        "quarantined": True,
        "command": "npx",
        "args": ["-y", "@example/github-tools@1.4.0", "--toolsets", "issues,pulls"],
        "env": {"GITHUB_TOKEN": "${keyring:github-tools_GITHUB_TOKEN}", "GITHUB_HOST": "github.com"},
    }
    assert any("GITHUB_TOKEN" in need for need in conversion.needs)


def test_a_remote_is_chosen_when_asked_and_its_headers_are_references() -> None:
    conversion = mcp_registry.to_server(
        recorded("io.github.example/github-tools", "1.4.0"), "gh", prefer_remote=True
    )
    assert conversion.server == {
        "name": "gh",
        "quarantined": True,
        "url": "https://github-tools.example.com/mcp",
        "protocol": "http",
        "headers": {"Authorization": "${keyring:gh_Authorization}"},
    }
    sse = mcp_registry.to_server(recorded("com.example/weather"))
    assert sse.server["protocol"] == "sse" and sse.server["url"] == "https://weather.example.com/sse"


def test_pypi_runs_with_uvx_and_a_missing_required_argument_is_reported() -> None:
    conversion = mcp_registry.to_server(recorded("io.github.example/sqlite-py"))
    assert conversion.server["command"] == "uvx"
    assert conversion.server["args"] == ["mcp-sqlite-example==0.6.1", "--db-path", "<db_path>"]
    assert any("<db_path>" in need for need in conversion.needs)


def test_an_oci_image_runs_with_docker_and_gets_its_variables_passed_in() -> None:
    conversion = mcp_registry.to_server(recorded("io.github.example/github-docker"))
    assert conversion.server["command"] == "docker"
    assert conversion.server["args"] == [
        "run",
        "-i",
        "--rm",
        "-e",
        "GITHUB_TOKEN",
        "example/github-mcp:2.0.0",
    ]


def test_every_shipped_reference_server_converts() -> None:
    servers = mcp_registry.reference_servers()
    assert {s["name"].rsplit("/", 1)[1] for s in servers} >= {"filesystem", "git", "memory", "time", "fetch"}
    for entry in servers:
        assert mcp_registry.to_server(entry).server["command"] in ("npx", "uvx")
    filesystem = mcp_registry.to_server(next(e for e in servers if e["name"].endswith("/filesystem")))
    assert filesystem.server["args"][-1] == "<allowed_directory>" and filesystem.needs
    assert [e["name"] for e in mcp_registry.search_offline("git")] == ["modelcontextprotocol/git"]
