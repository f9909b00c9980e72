"""2026-07-28 clients get the proxy's change notifications on `subscriptions/listen` streams: tools,
prompts and resources list changes and resource updates, through the real proxy and real upstreams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import mcp.types as types
import pytest
import trio
from mcp.client import Client
from mcp.client.subscriptions import Subscription
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

from tests.proxyctl import PYTHON, SERVERS, everything_server, running_proxy

pytestmark = pytest.mark.system

MODE: Final = "2026-07-28"
EVENT_TIMEOUT_S: Final = 30.0


def resource_server(name: str) -> dict[str, Any]:
    return {"name": name, "command": PYTHON, "args": [str(SERVERS / "resource_server.py"), "--name", name]}


async def events_until(subscription: Subscription, wanted: set[ServerEvent]) -> set[ServerEvent]:
    """Read the stream until every wanted event has come; return all that came."""
    seen: set[ServerEvent] = set()
    with trio.fail_after(EVENT_TIMEOUT_S):
        async for event in subscription:
            seen.add(event)
            if wanted <= seen:
                return seen
    raise AssertionError(f"the stream ended; seen {seen}, wanted {wanted}")


async def test_list_changes_reach_a_2026_client_on_its_listen_stream(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [resource_server("one")]) as proxy:
        await proxy.wait_for("one", "running")
        with trio.fail_after(90):
            async with Client(f"{proxy.base_url}/mcp/all", mode=MODE, cache=None) as client:
                discovered = await client.session.send_discover(MODE)
                caps = types.DiscoverResult.model_validate(discovered).capabilities
                assert caps.tools and caps.tools.list_changed
                assert caps.prompts and caps.prompts.list_changed
                assert caps.resources and caps.resources.list_changed and caps.resources.subscribe
                assert [p.name for p in (await client.list_prompts()).prompts] == ["one__greet"]
                listening = client.listen(
                    tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
                )
                async with listening as subscription:
                    # The upstream rewords its prompt: prompt pinning holds it, so the list changes.
                    await client.call_tool("one__reword_prompts", {})
                    # A list change says "fetch again": one may be for an earlier change (the prompts of
                    # `one` coming), and the one for the reword follows. Re-fetch on each until it shows.
                    prompts = [p.name for p in (await client.list_prompts()).prompts]
                    while prompts:
                        await events_until(subscription, {PromptsListChanged()})
                        prompts = [p.name for p in (await client.list_prompts()).prompts]

                    added = await proxy.post(
                        "/api/v1/servers", json={**resource_server("two"), "quarantined": False}
                    )
                    assert added.status_code in (200, 201), added.text
                    wanted = {ToolsListChanged(), PromptsListChanged(), ResourcesListChanged()}
                    await events_until(subscription, wanted)
                    # Likewise the first tools change may come when `two` appears, before its tools do.
                    tools = [t.name for t in (await client.list_tools()).tools]
                    while "two__link" not in tools:
                        await events_until(subscription, {ToolsListChanged()})
                        tools = [t.name for t in (await client.list_tools()).tools]


@pytest.mark.parametrize("path", ["/mcp/all", "/mcp"])
async def test_a_listen_stream_gets_updates_of_the_resources_it_names(tmp_path: Path, path: str) -> None:
    uri = "mcpproxy://everything/demo://resource/static/document/features.md"
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        with trio.fail_after(30):
            async with Client(f"{proxy.base_url}{path}", mode=MODE, cache=None) as client:
                async with client.listen(resource_subscriptions=[uri]) as subscription:
                    assert subscription.honored.resource_subscriptions == [uri]
                    await client.call_tool(
                        "everything__toggle-subscriber-updates" if path == "/mcp/all" else "call_tool_write",
                        {}
                        if path == "/mcp/all"
                        else {"name": "everything:toggle-subscriber-updates", "args": {}},
                    )
                    assert await events_until(subscription, {ResourceUpdated(uri=uri)}) == {
                        ResourceUpdated(uri=uri)
                    }
