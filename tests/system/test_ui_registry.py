"""The Web UI's "Add from registry" page in a real browser (issue 26): a search reaches the registries
of the config (a local one answering with recorded entries of the official registry's shape) and the
list shipped with mcpproxy; Add puts a server in quarantine with its secrets as references, and says
what it still needs. Each step is checked where it lands: the config file and the REST API.

Sync, like tests/system/test_ui.py, whose proxy and browser it shares (Playwright's sync API runs its
own asyncio loop, which must not meet trio). Every wait is Playwright's, bounded by the page's default
timeout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_sync

from tests.proxyctl import echo_server
from tests.services.test_mcp_registry import serving_registry
from tests.system.test_ui import browser, open_page, server_state, shot, sync_proxy

pytestmark = [pytest.mark.system, pytest.mark.requires("chromium")]

__all__ = ["browser"]  # test_ui.py's module-scoped Chromium, a fixture here too


def test_a_registry_search_lists_servers_and_add_quarantines_one_with_what_it_still_needs(
    browser: Any, tmp_path: Path
) -> None:
    expect = playwright_sync.expect
    with (
        serving_registry() as registry,
        sync_proxy(tmp_path, [echo_server()], registries=[registry]) as proxy,
        open_page(browser, proxy, "#/registry") as page,
    ):
        expect(page.locator("h1")).to_have_text("Add from registry")
        page.fill("#registry-query", "example/github-")
        page.click('#registry-search button[type="submit"]')
        rows = page.locator("#registry-results tbody tr")
        expect(rows).to_have_count(2)
        tools = page.locator('tr[data-registry-id="io.github.example/github-tools"]')
        expect(tools.locator("th")).to_have_text("io.github.example/github-tools")
        runs, source = tools.locator("td").nth(1), tools.locator("td").nth(2)
        expect(runs).to_contain_text("npm:")
        expect(runs).to_contain_text("https://github-tools.example.com/mcp")
        expect(source).to_have_text(registry)
        expect(page.locator("#registry-notes")).to_have_text("")
        shot(page, "registry-search")

        tools.locator("button", has_text="Add").click()
        added = page.locator("#registry-added")
        expect(added).to_be_visible()
        expect(added.locator("h2")).to_have_text("Added github-tools (quarantined)")
        expect(added).to_contain_text("Still needed before it can run")
        expect(added).to_contain_text("GITHUB_TOKEN")
        expect(added.locator("a")).to_have_attribute("href", "#/server/github-tools")
        status = server_state(proxy, "github-tools")
        assert status["quarantined"] is True, status
        disk = next(
            s for s in json.loads(proxy.config_path.read_text())["mcpServers"] if s["name"] == "github-tools"
        )
        assert disk["env"]["GITHUB_TOKEN"] == "${keyring:github-tools_GITHUB_TOKEN}", disk

        # The shipped list alone: no registry asked.
        page.fill("#registry-query", "files")
        page.check("#registry-offline")
        page.click('#registry-search button[type="submit"]')
        shipped = page.locator('tr[data-registry-id="modelcontextprotocol/filesystem"]')
        expect(shipped).to_have_count(1)
        expect(shipped.locator("td").nth(2)).to_have_text("offline")
