"""The 2026-07-28 Tasks extension through the real proxy: a client that declares it gets a task
handle for server-everything's `simulate-research-query` (task support required) and polls it,
answers its question with `tasks/update`, or cancels it. A raw JSON-RPC client speaks the wire
(the MCP Python SDK has no client for the extension).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest
import trio

from tests.proxyctl import everything_server, running_proxy

pytestmark = pytest.mark.system

EXTENSION: Final = "io.modelcontextprotocol/tasks"
PATHS: Final = ("/mcp/all", "/mcp")


class Client2026:
    """Stateless 2026-07-28 requests, with the capabilities given."""

    def __init__(self, http: httpx2.AsyncClient, url: str, capabilities: dict[str, Any]) -> None:
        self.http, self.url, self.capabilities = http, url, capabilities
        self.ids = itertools.count(1)

    async def request(self, method: str, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw-tasks", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
        }
        headers = {
            "Accept": "application/json, text/event-stream",
            "Mcp-Protocol-Version": "2026-07-28",
            "Mcp-Method": method,
        }
        if name is not None:
            headers["Mcp-Name"] = name
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": {**params, "_meta": meta}}
        with trio.fail_after(30):
            response = await self.http.post(self.url, headers=headers, json=body)
        answer: dict[str, Any] = response.json()
        return answer

    async def call(self, path: str, topic: str, **extra: Any) -> dict[str, Any]:
        arguments = {"topic": topic, **extra}
        if path == "/mcp/all":
            params = {"name": "everything__simulate-research-query", "arguments": arguments}
        else:
            params = {
                "name": "call_tool_write",
                "arguments": {"name": "everything:simulate-research-query", "args": arguments},
            }
        return await self.request("tools/call", params, params["name"])

    async def task(self, method: str, task_id: str, **params: Any) -> dict[str, Any]:
        return await self.request(method, {"taskId": task_id, **params}, task_id)

    async def until(self, task_id: str, *statuses: str) -> dict[str, Any]:
        with trio.fail_after(60):
            while True:
                state = (await self.task("tasks/get", task_id))["result"]
                if state["status"] in statuses:
                    return state
                await trio.sleep(state.get("pollIntervalMs", 500) / 1000)


def text_of(result: dict[str, Any]) -> str:
    return " ".join(item.get("text", "") for item in result.get("content", []))


@pytest.mark.parametrize("path", PATHS)
async def test_a_client_with_the_extension_gets_a_task_and_its_result(tmp_path: Path, path: str) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        async with httpx2.AsyncClient(timeout=60.0) as http:
            client = Client2026(http, f"{proxy.base_url}{path}", {"extensions": {EXTENSION: {}}})
            discovered = await client.request("server/discover", {})
            assert EXTENSION in discovered["result"]["capabilities"]["extensions"]
            created = (await client.call(path, "volcanoes"))["result"]
            assert created["resultType"] == "task" and created["status"] == "working", created
            assert created["taskId"].startswith("mcpproxy-task-") and created["ttlMs"] > 0
            done = await client.until(created["taskId"], "completed", "failed", "cancelled")
            assert done["status"] == "completed", done
            assert "volcanoes" in text_of(done["result"]) and not done["result"].get("isError")

            # Without the extension the same call is answered in full (no task), as the spec requires.
            plain = Client2026(http, f"{proxy.base_url}{path}", {})
            answered = (await plain.call(path, "glaciers"))["result"]
            assert answered.get("resultType") == "complete" and "glaciers" in text_of(answered)


async def test_a_tasks_question_is_answered_with_tasks_update(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        async with httpx2.AsyncClient(timeout=60.0) as http:
            capabilities = {"extensions": {EXTENSION: {}}, "elicitation": {}}
            client = Client2026(http, f"{proxy.base_url}/mcp/all", capabilities)
            created = (await client.call("/mcp/all", "python", ambiguous=True))["result"]
            asking = await client.until(created["taskId"], "input_required")
            ((key, question),) = asking["inputRequests"].items()
            assert question["method"] == "elicitation/create" and "python" in question["params"]["message"]
            answer = {key: {"action": "accept", "content": {"interpretation": "snake"}}}
            acknowledged = await client.task("tasks/update", created["taskId"], inputResponses=answer)
            assert acknowledged["result"]["resultType"] == "complete"
            done = await client.until(created["taskId"], "completed", "failed", "cancelled")
            assert done["status"] == "completed" and "snake" in text_of(done["result"]), done


async def test_a_cancelled_task_is_cancelled(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        async with httpx2.AsyncClient(timeout=60.0) as http:
            client = Client2026(http, f"{proxy.base_url}/mcp/all", {"extensions": {EXTENSION: {}}})
            created = (await client.call("/mcp/all", "tides"))["result"]
            acknowledged = await client.task("tasks/cancel", created["taskId"])
            assert acknowledged["result"]["resultType"] == "complete"
            assert (await client.until(created["taskId"], "cancelled", "completed"))["status"] == "cancelled"
            missing = await client.task("tasks/get", "mcpproxy-task-no-such-task")
            assert missing["error"]["code"] == -32602
