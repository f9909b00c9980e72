"""Access edited from the Web UI in a real browser (issue 21): the Profiles page adds, edits and removes
profiles and sets what a caller without a credential gets; the tools tab overrides a tool's tier.
Each change is checked where it lands: the config file and the REST API.

Sync tests on purpose, like tests/system/test_ui.py, whose proxy and browser they share: Playwright's
sync API runs its own asyncio loop, which must not meet trio. Every wait is Playwright's, bounded by
the page's default timeout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_sync

from tests.proxyctl import Proxy, echo_server
from tests.system.test_ui import browser, open_page, rest, shot, sync_proxy, wait_state

pytestmark = [pytest.mark.system, pytest.mark.requires("chromium")]

__all__ = ["browser"]  # test_ui.py's module-scoped Chromium, a fixture here too


def on_disk(proxy: Proxy) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(proxy.config_path.read_text())
    return config


def disk_profile(proxy: Proxy, name: str) -> dict[str, Any] | None:
    return next((p for p in on_disk(proxy).get("profiles", []) if p["name"] == name), None)


def test_profiles_are_added_edited_and_removed_and_a_bound_one_is_refused_with_the_reason(
    browser: Any, tmp_path: Path
) -> None:
    expect = playwright_sync.expect
    servers = [echo_server("echo"), echo_server("notes", enabled=False)]
    profiles = [{"name": "reader", "title": "Read only", "max_tier": "read"}]
    with sync_proxy(tmp_path, servers, profiles=profiles) as proxy:
        rest(proxy, "POST", "/api/v1/clients", json={"name": "chat-app", "profile": "reader"})
        # Chrome logs each refused request as a console error: the 409 is provoked on purpose.
        with open_page(browser, proxy, "#/profiles", expected=r"status of 409") as page:
            reader = page.locator('#profiles tr[data-profile="reader"]')
            expect(reader.locator(".cell-clients")).to_have_text("chat-app")
            expect(reader.locator(".cell-servers")).to_have_text("all servers")
            expect(reader.locator(".cell-max-tier")).to_have_text("read")
            expect(reader.locator(".cell-endpoints")).to_contain_text("/mcp/p/reader/all")
            expect(page.locator("nav a[aria-current=page]")).to_have_text("Profiles")

            # Add: two servers offered, one ticked; globs one per line; the management right.
            expect(page.locator("#profile-servers input")).to_have_count(2)
            page.fill("#profile-name", "ops")
            page.fill("#profile-title", "Operations")
            page.uncheck("#profile-all-servers")
            page.check('#profile-servers input[data-server="echo"]')
            page.select_option("#profile-max-tier", "write")
            page.fill("#profile-allow", "echo:*\n")
            page.fill("#profile-deny", "echo:delete_everything\necho:fail")
            page.check("#profile-management")
            page.click('#profile-form button[type="submit"]')
            expect(page.locator("#profile-saved")).to_contain_text("Profile ops added")
            ops = page.locator('#profiles tr[data-profile="ops"]')
            expect(ops.locator(".cell-servers")).to_have_text("echo")
            expect(ops.locator(".cell-tools")).to_contain_text("echo:delete_everything")
            expect(ops.locator(".cell-max-tier")).to_have_text("write")
            expect(ops.locator(".cell-management")).to_have_text("yes")
            expect(ops.locator(".cell-endpoints code")).to_have_text(["/mcp/p/ops", "/mcp/p/ops/all"])
            assert disk_profile(proxy, "ops") == {
                "name": "ops",
                "title": "Operations",
                "servers": ["echo"],
                "max_tier": "write",
                "tools": {"allow": ["echo:*"], "deny": ["echo:delete_everything", "echo:fail"]},
                "management": True,
            }

            # Edit: the form holds the profile as it is; only the tier changes.
            page.click('button[aria-label="Edit ops"]')
            expect(page.locator("#profile-form-title")).to_have_text("Edit profile ops")
            expect(page.locator("#profile-name")).to_have_value("ops")
            expect(page.locator('#profile-servers input[data-server="echo"]')).to_be_checked()
            expect(page.locator("#profile-deny")).to_have_value("echo:delete_everything\necho:fail")
            page.select_option("#profile-max-tier", "read")
            shot(page, "profiles-edit")
            page.click('#profile-form button[type="submit"]')
            expect(ops.locator(".cell-max-tier")).to_have_text("read")
            edited = disk_profile(proxy, "ops")
            assert edited is not None and edited["max_tier"] == "read"
            assert edited["servers"] == ["echo"] and edited["management"] is True

            # A profile a client is bound to stays, and the dialog says why.
            page.click('button[aria-label="Delete reader"]')
            dialog = page.locator("dialog#modal")
            expect(dialog).to_contain_text("chat-app")
            dialog.locator("#modal-confirm").click()
            expect(dialog.locator(".error")).to_contain_text("used by client(s) chat-app")
            dialog.locator('button:has-text("Cancel")').click()
            expect(reader).to_have_count(1)
            assert disk_profile(proxy, "reader") is not None

            page.click('button[aria-label="Delete ops"]')
            dialog.locator("#modal-confirm").click()
            expect(ops).to_have_count(0)
            assert disk_profile(proxy, "ops") is None

            # What a caller without a credential gets.
            expect(page.locator("#access-require-auth")).to_have_value("")
            page.select_option("#access-require-auth", "false")
            page.select_option("#access-anonymous-profile", "reader")
            page.click('#access button[type="submit"]')
            expect(page.locator("#access-saved")).to_contain_text("Saved")
            expect(reader.locator(".anonymous")).to_have_text("anonymous")
            config = on_disk(proxy)
            assert (config["require_mcp_auth"], config["anonymous_profile"]) == (False, "reader")
            page.locator("h1").scroll_into_view_if_needed()
            shot(page, "profiles")
            page.select_option("#access-require-auth", "")
            page.select_option("#access-anonymous-profile", "")
            page.click('#access button[type="submit"]')
            expect(reader.locator(".anonymous")).to_have_count(0)
            config = on_disk(proxy)
            assert "require_mcp_auth" not in config and "anonymous_profile" not in config
            shown = rest(proxy, "GET", "/api/v1/profiles")
            assert (shown["require_mcp_auth"], shown["anonymous_profile"]) == (None, None)


def tool_tier(proxy: Proxy, server: str, tool: str) -> tuple[str, str]:
    tools = rest(proxy, "GET", f"/api/v1/servers/{server}/tools")["tools"]
    found = next(t for t in tools if t["name"] == tool)
    return found["tier"], found["tier_source"]


def test_a_tier_override_set_on_the_tools_tab_changes_the_tier_and_clearing_it_restores_the_annotations(
    browser: Any, tmp_path: Path
) -> None:
    expect = playwright_sync.expect
    with sync_proxy(tmp_path, [echo_server("echo")]) as proxy:
        wait_state(proxy, "echo", "running")
        with open_page(browser, proxy, "#/server/echo/tools") as page:
            add = page.locator('#tools tr[data-tool="add"]')
            override = add.locator('select[data-tier-override="add"]')
            expect(add.locator(".tier")).to_have_text("read")
            expect(add.locator(".tier-source")).to_have_text("from annotations")
            expect(override).to_have_value("")

            override.select_option("destructive")
            expect(add.locator(".tier")).to_have_text("destructive")
            expect(add.locator(".tier-source")).to_have_text("tool_tiers")
            expect(add.locator(".cell-tier")).to_contain_text("call_tool_destructive")
            expect(override).to_have_value("destructive")
            assert tool_tier(proxy, "echo", "add") == ("destructive", "config")
            assert rest(proxy, "GET", "/api/v1/tool-tiers")["tool_tiers"] == {"echo:add": "destructive"}
            assert on_disk(proxy)["tool_tiers"] == {"echo:add": "destructive"}
            shot(page, "server-tools-tier")

            override.select_option("")
            expect(add.locator(".tier")).to_have_text("read")
            expect(add.locator(".tier-source")).to_have_text("from annotations")
            assert tool_tier(proxy, "echo", "add") == ("read", "annotations")
            assert "tool_tiers" not in on_disk(proxy)

            # A glob entry set elsewhere is named as such; the tool has no entry of its own to clear.
            rest(proxy, "PUT", "/api/v1/tool-tiers/echo%3A%2A", json={"tier": "write"})
            page.reload()
            expect(add.locator(".tier")).to_have_text("write")
            expect(override.locator("option:checked")).to_have_text("from a tool_tiers glob")
