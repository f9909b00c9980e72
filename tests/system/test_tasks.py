"""Tasks (MCP 2025-11-25) through the real proxy: server-everything's `simulate-research-query`
(`taskSupport: required`) runs as a task at its upstream, through `/mcp/all` and `call_tool_*` on
`/mcp`; tasks/get, tasks/result, tasks/cancel and tasks/list reach the owner; two servers' tasks never
collide; a task whose worker dies fails at once, naming the server.

The client speaks raw JSON-RPC over httpx2: the SDK's client checks every `tools/call` answer against
`CallToolResult` and refuses a `CreateTaskResult`, and it has no task helpers.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest
import trio
from mcp.client import Client

from tests.proxyctl import INITIALIZE_2025, Proxy, everything_server, running_proxy

pytestmark = pytest.mark.system

TOOL: Final = "simulate-research-query"
RELATED_TASK: Final = "io.modelcontextprotocol/related-task"
TERMINAL: Final = ("completed", "failed", "cancelled")
TASK_DEADLINE_S: Final = 60.0
"""The research takes four one-second stages; a loaded 2-core machine gets ample room."""
POLL_S: Final = 0.2


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = str(error.get("message"))


class RawSession:
    """A 2025-era MCP session as plain JSON-RPC: requests answered as JSON or on an SSE stream, and
    the standing GET stream's notifications collected."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url
        self.session_id = ""
        self.capabilities: dict[str, Any] = {}
        self.notifications: list[dict[str, Any]] = []
        self.notified = trio.Event()
        self._ids = iter(range(2, 1_000_000))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self.session_id:
            headers |= {"mcp-session-id": self.session_id, "mcp-protocol-version": "2025-11-25"}
        return headers

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> None:
        body = INITIALIZE_2025
        if capabilities is not None:
            body = {**body, "params": {**body["params"], "capabilities": capabilities}}
        response = await self.http.post(self.url, json=body, headers=self._headers())
        response.raise_for_status()
        self.session_id = response.headers["mcp-session-id"]
        self.capabilities = self._answer(response, 1)["capabilities"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        (await self.http.post(self.url, json=note, headers=self._headers())).raise_for_status()

    def _answer(self, response: httpx2.Response, request_id: int) -> dict[str, Any]:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            messages = [
                json.loads(line[len("data:") :])
                for line in response.text.splitlines()
                if line.startswith("data:") and line[len("data:") :].strip()
            ]
        else:
            messages = [response.json()]
        for message in messages:
            if message.get("id") == request_id:
                if "error" in message:
                    raise RpcError(message["error"])
                answer: dict[str, Any] = message["result"]
                return answer
        raise AssertionError(f"no answer to request {request_id} in {messages}")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
        response = await self.http.post(self.url, json=body, headers=self._headers())
        response.raise_for_status()
        return self._answer(response, request_id)

    async def request_answering(
        self, method: str, params: dict[str, Any], answer: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """A request whose response stream may carry the server's own requests: each is answered with
        `answer(request)`, posted back, before the response comes."""
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        async with self.http.stream("POST", self.url, json=body, headers=self._headers()) as response:
            response.raise_for_status()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if not line.startswith("data:") or not line[len("data:") :].strip():
                    continue
                message = json.loads(line[len("data:") :])
                if message.get("id") == request_id and "method" not in message:
                    if "error" in message:
                        raise RpcError(message["error"])
                    result: dict[str, Any] = message["result"]
                    return result
                if "method" in message and "id" in message:
                    reply = {"jsonrpc": "2.0", "id": message["id"], "result": answer(message)}
                    (await self.http.post(self.url, json=reply, headers=self._headers())).raise_for_status()
        raise AssertionError(f"the stream of request {request_id} ended without its answer")

    async def listen(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Collect the notifications of the session's standing GET stream, until cancelled."""
        headers = {**self._headers(), "Accept": "text/event-stream"}
        async with self.http.stream("GET", self.url, headers=headers) as response:
            response.raise_for_status()
            task_status.started()
            async for line in response.aiter_lines():
                if line.startswith("data:") and line[len("data:") :].strip():
                    self.notifications.append(json.loads(line[len("data:") :]))
                    self.notified.set()
                    self.notified = trio.Event()


@asynccontextmanager
async def raw_session(
    proxy: Proxy, path: str, capabilities: dict[str, Any] | None = None
) -> AsyncIterator[RawSession]:
    async with httpx2.AsyncClient(timeout=TASK_DEADLINE_S) as http, trio.open_nursery() as nursery:
        session = RawSession(http, f"{proxy.base_url}{path}")
        with trio.fail_after(30):
            await session.initialize(capabilities)
            await nursery.start(session.listen)
        yield session
        nursery.cancel_scope.cancel()


def call_params(path: str, server: str, topic: str, **extra: Any) -> dict[str, Any]:
    """`server`'s research tool called as a task: `server__tool` on /mcp/all, call_tool_write on /mcp."""
    arguments = {"topic": topic, **extra}
    if path == "/mcp/all":
        return {"name": f"{server}__{TOOL}", "arguments": arguments, "task": {"ttl": 60_000}}
    return {
        "name": "call_tool_write",
        "arguments": {"name": f"{server}:{TOOL}", "args": arguments},
        "task": {"ttl": 60_000},
    }


async def wait_for_tool(session: RawSession, servers: list[str]) -> None:
    """server-everything registers the research tool once it is initialized (a list change later)."""
    wanted = {f"{server}__{TOOL}" for server in servers}
    with trio.fail_after(30):
        while True:
            tools = (await session.request("tools/list"))["tools"]
            shown = {tool["name"]: tool for tool in tools}
            if wanted <= shown.keys():
                assert all(shown[name]["execution"] == {"taskSupport": "required"} for name in wanted)
                return
            await trio.sleep(POLL_S)


async def until_terminal(session: RawSession, task_id: str) -> dict[str, Any]:
    with trio.fail_after(TASK_DEADLINE_S):
        while True:
            task = await session.request("tasks/get", {"taskId": task_id})
            if task["status"] in TERMINAL:
                return task
            await trio.sleep(POLL_S)


def report_text(result: dict[str, Any]) -> str:
    return "\n".join(item["text"] for item in result["content"] if item["type"] == "text")


async def test_tasks_of_two_servers_run_at_their_owners_through_both_endpoints(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server("alpha"), everything_server("beta")]) as proxy:
        await proxy.wait_for("alpha", "running")
        await proxy.wait_for("beta", "running")
        async with raw_session(proxy, "/mcp/all") as direct, raw_session(proxy, "/mcp") as menu:
            await wait_for_tool(direct, ["alpha", "beta"])
            for session in (direct, menu):
                assert session.capabilities["tasks"]["requests"]["tools"]["call"] == {}
                assert {"list", "cancel"} <= session.capabilities["tasks"].keys()
            menu_tools = {tool["name"]: tool for tool in (await menu.request("tools/list"))["tools"]}
            assert menu_tools["call_tool_write"]["execution"] == {"taskSupport": "optional"}

            created = {}  # (session, server) -> the task as created
            for session, path in ((direct, "/mcp/all"), (menu, "/mcp")):
                for server in ("alpha", "beta"):
                    topic = f"{server} via {path}"
                    answer = await session.request("tools/call", call_params(path, server, topic))
                    created[(path, server)] = answer["task"]
            ids = [task["taskId"] for task in created.values()]
            assert len(set(ids)) == 4
            for (_, server), task in created.items():
                assert task["taskId"].startswith(f"{server}:"), task
                assert task["status"] == "working"

            # The owner answers for its own ids; the other server does not know them.
            alpha_task = created[("/mcp/all", "alpha")]["taskId"]
            with pytest.raises(RpcError) as unknown:
                await direct.request("tasks/get", {"taskId": "beta:" + alpha_task.partition(":")[2]})
            assert unknown.value.message.startswith("beta: ")

            for (path, server), task in created.items():
                session = direct if path == "/mcp/all" else menu
                done = await until_terminal(session, task["taskId"])
                assert done["status"] == "completed" and done["taskId"] == task["taskId"]
                result = await session.request("tasks/result", {"taskId": task["taskId"]})
                assert f"# Research Report: {server} via {path}" in report_text(result)
                assert result["_meta"][RELATED_TASK] == {"taskId": task["taskId"]}

            # Each session lists its own tasks, under the proxy's ids.
            for session, path in ((direct, "/mcp/all"), (menu, "/mcp")):
                listed = {task["taskId"]: task for task in (await session.request("tasks/list"))["tasks"]}
                assert listed.keys() == {
                    created[(path, "alpha")]["taskId"],
                    created[(path, "beta")]["taskId"],
                }
                assert {task["status"] for task in listed.values()} == {"completed"}

            # The upstreams' status notifications reached the creating session, with the proxy's ids.
            statuses = [
                n["params"] for n in direct.notifications if n["method"] == "notifications/tasks/status"
            ]
            assert {status["taskId"] for status in statuses} <= set(ids)
            assert {status["taskId"] for status in statuses} >= {created[("/mcp/all", "alpha")]["taskId"]}
            assert "completed" in {status["status"] for status in statuses}

        # Each creation and each result is in the activity log (written off the call path: wait).
        wanted = {(TOOL, "task_created"), (f"tasks/result {TOOL}", "ok")}
        with trio.fail_after(20):
            while True:
                data = (await proxy.get("/api/v1/activity", params={"limit": 50})).json()["data"]
                kinds = [(record["tool"], record["status"]) for record in data["records"]]
                if all(kinds.count(kind) == 4 for kind in wanted):
                    break
                await trio.sleep(POLL_S)


async def test_a_task_can_be_cancelled_at_its_owner(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server("alpha")]) as proxy:
        await proxy.wait_for("alpha", "running")
        async with raw_session(proxy, "/mcp/all") as session:
            await wait_for_tool(session, ["alpha"])
            task = (await session.request("tools/call", call_params("/mcp/all", "alpha", "cancel me")))[
                "task"
            ]
            cancelled = await session.request("tasks/cancel", {"taskId": task["taskId"]})
            assert cancelled["status"] == "cancelled" and cancelled["taskId"] == task["taskId"]
            assert (await session.request("tasks/get", {"taskId": task["taskId"]}))["status"] == "cancelled"
            with pytest.raises(RpcError) as again:
                await session.request("tasks/cancel", {"taskId": task["taskId"]})
            assert again.value.code == -32602

            # A tool that does not run as a task is not called as one (spec: -32601).
            echo = {"name": "alpha__echo", "arguments": {"message": "hi"}, "task": {}}
            with pytest.raises(RpcError) as forbidden:
                await session.request("tools/call", echo)
            assert forbidden.value.code == -32601 and "alpha__echo" in forbidden.value.message


async def test_a_task_whose_worker_dies_fails_naming_its_server(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server("alpha"), everything_server("beta")]) as proxy:
        await proxy.wait_for("beta", "running")
        alpha = await proxy.wait_for("alpha", "running")
        async with raw_session(proxy, "/mcp/all") as session:
            await wait_for_tool(session, ["alpha", "beta"])
            doomed = (await session.request("tools/call", call_params("/mcp/all", "alpha", "doomed")))["task"]
            spared = (await session.request("tools/call", call_params("/mcp/all", "beta", "spared")))["task"]
            waiting: dict[str, Any] = {}

            async def wait_for_result() -> None:
                waiting["result"] = await session.request("tasks/result", {"taskId": doomed["taskId"]})

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_for_result)
                await trio.sleep(POLL_S)  # (the result request is on its way; the assertions hold either way)
                os.kill(alpha["worker_pid"], signal.SIGKILL)
                with trio.fail_after(10):  # a dead worker's waiters are answered at once, never hang
                    while not waiting:
                        await trio.sleep(POLL_S)
            # The session that created the task is told it failed (it need not poll to find out).
            with trio.fail_after(10):
                while not any(
                    n["method"] == "notifications/tasks/status"
                    and n["params"]["taskId"] == doomed["taskId"]
                    and n["params"]["status"] == "failed"
                    for n in session.notifications
                ):
                    await session.notified.wait()
            result = waiting["result"]
            assert result["isError"] is True
            assert result["_meta"]["mcpproxy/error"] == {"kind": "unavailable", "server": "alpha"}
            assert result["_meta"][RELATED_TASK] == {"taskId": doomed["taskId"]}
            assert "alpha" in report_text(result)

            failed = await session.request("tasks/get", {"taskId": doomed["taskId"]})
            assert failed["status"] == "failed" and failed["taskId"] == doomed["taskId"]
            assert "server 'alpha'" in failed["statusMessage"] and "lost" in failed["statusMessage"]
            with pytest.raises(RpcError) as refused:
                await session.request("tasks/cancel", {"taskId": doomed["taskId"]})
            assert refused.value.code == -32602 and "alpha" in refused.value.message
            listed = {
                task["taskId"]: task["status"] for task in (await session.request("tasks/list"))["tasks"]
            }
            assert listed[doomed["taskId"]] == "failed"

            # The other server's task is untouched.
            assert (await until_terminal(session, spared["taskId"]))["status"] == "completed"

            # alpha is back (a new worker): its lost task stays failed, and new tasks work.
            with trio.fail_after(60):
                while not (
                    (now := (await proxy.servers())["alpha"])["state"] == "running"
                    and now["worker_pid"] != alpha["worker_pid"]
                ):
                    await trio.sleep(POLL_S)
            await wait_for_tool(session, ["alpha"])
            assert (await session.request("tasks/get", {"taskId": doomed["taskId"]}))["status"] == "failed"
            again = (await session.request("tools/call", call_params("/mcp/all", "alpha", "again")))["task"]
            assert (await until_terminal(session, again["taskId"]))["status"] == "completed"


async def test_a_client_that_makes_no_tasks_gets_the_result_of_a_task_only_tool(tmp_path: Path) -> None:
    """A 2026-era client (no core tasks) or a 2025-era one that calls without `task`: the worker
    runs the task for it and answers with the task's result."""
    async with running_proxy(tmp_path, [everything_server("alpha")]) as proxy:
        await proxy.wait_for("alpha", "running")
        async with raw_session(proxy, "/mcp/all") as session:
            await wait_for_tool(session, ["alpha"])
        for mode in ("legacy", "2026-07-28"):
            async with Client(f"{proxy.base_url}/mcp/all", mode=mode, cache=None) as client:
                with trio.fail_after(TASK_DEADLINE_S):
                    result = await client.call_tool(f"alpha__{TOOL}", {"topic": f"plain {mode}"})
                assert not result.is_error, result
                assert f"# Research Report: plain {mode}" in result.content[0].text  # type: ignore[union-attr]
            async with Client(f"{proxy.base_url}/mcp", mode=mode, cache=None) as client:
                with trio.fail_after(TASK_DEADLINE_S):
                    result = await client.call_tool(
                        "call_tool_write", {"name": f"alpha:{TOOL}", "args": {"topic": f"menu {mode}"}}
                    )
                assert not result.is_error, result
                assert f"# Research Report: menu {mode}" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("path", ["/mcp/all", "/mcp"])
async def test_a_task_that_needs_input_asks_its_client_on_the_result_stream(
    tmp_path: Path, path: str
) -> None:
    """The 2025-11-25 `input_required` flow: the task stops to ask (elicitation); the client, seeing
    `input_required`, calls tasks/result, and the question comes on that request's stream, naming the
    task by the proxy's id; the answer reaches the upstream, and the task finishes with it."""
    async with running_proxy(tmp_path, [everything_server("alpha")]) as proxy:
        await proxy.wait_for("alpha", "running")
        async with raw_session(proxy, path, {"elicitation": {"form": {}}}) as session:
            async with raw_session(proxy, "/mcp/all") as lister:
                await wait_for_tool(lister, ["alpha"])
            params = call_params(path, "alpha", "python", ambiguous=True)
            task = (await session.request("tools/call", params))["task"]
            with trio.fail_after(TASK_DEADLINE_S):
                while (await session.request("tasks/get", {"taskId": task["taskId"]}))["status"] != (
                    "input_required"
                ):
                    await trio.sleep(POLL_S)
            asked: list[dict[str, Any]] = []

            def answer(request: dict[str, Any]) -> dict[str, Any]:
                asked.append(request)
                return {"action": "accept", "content": {"interpretation": "snake"}}

            with trio.fail_after(TASK_DEADLINE_S):
                result = await session.request_answering("tasks/result", {"taskId": task["taskId"]}, answer)
            assert [request["method"] for request in asked] == ["elicitation/create"]
            assert asked[0]["params"]["_meta"][RELATED_TASK] == {"taskId": task["taskId"]}
            assert "**Clarification**: snake" in report_text(result)
            assert result["_meta"][RELATED_TASK] == {"taskId": task["taskId"]}

        # The question is in the activity log beside the task, as a call's questions are.
        with trio.fail_after(20):
            while True:
                data = (await proxy.get("/api/v1/activity", params={"limit": 50})).json()["data"]
                kinds = {(record["tool"], record["status"]) for record in data["records"]}
                if {(f"elicitation/create {TOOL}", "ok"), (f"tasks/result {TOOL}", "ok")} <= kinds:
                    break
                await trio.sleep(POLL_S)
