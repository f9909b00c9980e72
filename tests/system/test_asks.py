"""An upstream's questions — elicitation, sampling, roots — reach the client whose call caused them,
through the real proxy, for clients of both protocol eras (the 2026-era client answers them in
input-required rounds), and never reach anyone else.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import pytest
import trio
from mcp.client import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.proxyctl import FIXTURES, PYTHON, SERVERS, Proxy, everything_server, running_proxy

pytestmark = pytest.mark.system

MODES: Final = ("legacy", "2026-07-28")
PATHS: Final = ("/mcp/all", "/mcp")
ANSWER: Final = {"name": "Ada Lovelace", "check": True, "email": "ada@example.com"}


@asynccontextmanager
async def through(proxy: Proxy, path: str, mode: str, **callbacks: Any) -> AsyncIterator[Client]:
    with trio.fail_after(30):
        async with Client(f"{proxy.base_url}{path}", mode=mode, cache=None, **callbacks) as client:
            yield client


async def call(
    client: Client, path: str, tool: str, args: dict[str, Any] | None = None, server: str = "everything"
) -> types.CallToolResult:
    """`server:tool` through `/mcp/all` (as `server__tool`) or `/mcp` (`call_tool_write`)."""
    with trio.fail_after(60):
        if path == "/mcp/all":
            return await client.call_tool(f"{server}__{tool}", args or {})
        return await client.call_tool("call_tool_write", {"name": f"{server}:{tool}", "args": args or {}})


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(item.text for item in result.content if isinstance(item, types.TextContent))


class Answers:
    """A client's callbacks, counting what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        self.asked.append("elicitation")
        return types.ElicitResult(action="accept", content=ANSWER)

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text="sampled by the calling client"),
            model="test-model",
            stop_reason="endTurn",
        )

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.asked.append("roots")
        return types.ListRootsResult.model_validate({"roots": [{"uri": "file:///client/own/root"}]})

    def callbacks(self) -> dict[str, Any]:
        return {
            "elicitation_callback": self.elicitation,
            "sampling_callback": self.sampling,
            "list_roots_callback": self.roots,
        }


async def test_elicitation_and_sampling_reach_the_calling_client_in_both_eras(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.roots_settled()
        for path in PATHS:
            for mode in MODES:
                answers = Answers()
                async with through(proxy, path, mode, **answers.callbacks()) as client:
                    elicited = await call(client, path, "trigger-elicitation-request")
                    assert not elicited.is_error, (path, mode, text_of(elicited))
                    assert "Ada Lovelace" in text_of(elicited), (path, mode)
                    sampled = await call(client, path, "trigger-sampling-request", {"prompt": "hi"})
                    assert not sampled.is_error, (path, mode, text_of(sampled))
                    assert "sampled by the calling client" in text_of(sampled), (path, mode)
                assert answers.asked == ["elicitation", "sampling"], (path, mode)

        # Each question is in the activity log beside its call; of the answer, only its outcome.
        with trio.fail_after(20):
            while True:
                data = (await proxy.get("/api/v1/activity", params={"status": "ok"})).json()["data"]
                asks = [r for r in data["records"] if r["tool"].startswith("elicitation/create")]
                if len(asks) == len(PATHS) * len(MODES):
                    break
                await trio.sleep(0.1)
        assert all(r["server"] == "everything" for r in asks)
        assert all("Please provide inputs" in r["arguments"] for r in asks)
        assert all("Ada" not in r["result"] and "accept" in r["result"] for r in asks)


async def test_a_client_that_cannot_answer_gets_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        for path in PATHS:
            for mode in MODES:
                async with through(proxy, path, mode) as client:  # no callbacks: no capabilities
                    result = await call(client, path, "trigger-elicitation-request")
                    assert result.is_error
                    assert "does not support elicitation" in text_of(result), (path, mode, text_of(result))


async def test_roots_not_tied_to_a_call_are_the_servers_configured_roots(tmp_path: Path) -> None:
    """server-everything asks for roots once, just after start: no client is calling, so the proxy
    answers with the roots configured for the server, never a client's. (Its tool asks again if it
    has none yet; the caller here declares no roots, so that answer is the configured roots too.)"""
    root = tmp_path / "project"
    root.mkdir()
    server = {**everything_server(), "roots": [str(root)]}
    async with running_proxy(tmp_path, [server]) as proxy:
        await proxy.wait_for("everything", "running")
        for mode in MODES:
            async with through(proxy, "/mcp/all", mode) as client:
                with trio.fail_after(20):
                    while "project" not in (
                        listed := text_of(await call(client, "/mcp/all", "get-roots-list"))
                    ):
                        await trio.sleep(0.2)  # the upstream fetches its roots a moment after it starts
            assert root.as_uri() in listed


async def test_two_callers_at_once_never_get_each_others_questions(tmp_path: Path) -> None:
    """Over stdio nothing says which call a question belongs to: while two calls are in flight the
    proxy asks neither client, and the upstream gets an error instead."""
    first_asked = trio.Event()
    release = trio.Event()
    first = Answers()
    second = Answers()

    async def slow_elicitation(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        first.asked.append("elicitation")
        first_asked.set()
        await release.wait()
        return types.ElicitResult(action="accept", content=ANSWER)

    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.roots_settled()
        results: dict[str, types.CallToolResult] = {}
        async with (
            through(proxy, "/mcp/all", "legacy", elicitation_callback=slow_elicitation) as one,
            through(proxy, "/mcp/all", "legacy", **second.callbacks()) as two,
        ):

            async def first_call() -> None:
                results["first"] = await call(one, "/mcp/all", "trigger-elicitation-request")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first_call)
                with trio.fail_after(30):
                    await first_asked.wait()
                # The first call is waiting for its answer; the second's question is unattributable.
                results["second"] = await call(two, "/mcp/all", "trigger-elicitation-request")
                release.set()
        assert first.asked == ["elicitation"] and second.asked == []
        assert "Ada Lovelace" in text_of(results["first"])
        assert "cannot tell which client to ask" in text_of(results["second"]), text_of(results["second"])


@pytest.mark.parametrize("mode", MODES)
async def test_a_worker_killed_mid_question_fails_the_call_at_once(tmp_path: Path, mode: str) -> None:
    """2025 era: the client is still answering when the worker dies; its call fails at once.
    2026 era: the question is in the client's hands (the call answered input_required); the retry
    that carries its answer gets the failure at once."""
    asked = trio.Event()
    killed = trio.Event()

    async def answers_late(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        asked.set()
        if mode == "legacy":
            await trio.sleep_forever()
        await killed.wait()
        return types.ElicitResult(action="accept", content=ANSWER)

    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        status = await proxy.wait_for("everything", "running")
        async with through(proxy, "/mcp/all", mode, elicitation_callback=answers_late) as client:
            outcome: dict[str, Any] = {}

            async def calling() -> None:
                try:
                    outcome["result"] = await client.call_tool("everything__trigger-elicitation-request", {})
                except Exception as exc:  # the SDK may raise for a request cut off under its callback
                    outcome["error"] = exc
                outcome["at"] = trio.current_time()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(calling)
                with trio.fail_after(30):
                    await asked.wait()
                os.kill(status["worker_pid"], signal.SIGKILL)
                killed_at = trio.current_time()
                killed.set()
                with trio.fail_after(10):  # the call timeout is 120 s: this is "at once", not a hang
                    while "at" not in outcome:
                        await trio.sleep(0.02)
                nursery.cancel_scope.cancel()
        print(f"call failed {outcome['at'] - killed_at:.3f}s after the worker was killed ({mode}): {outcome}")
        assert "error" in outcome or outcome["result"].is_error


ASKING_SERVER: Final = str(SERVERS / "asking_server.py")


def asking_server(name: str, era: str) -> dict[str, Any]:
    return {"name": name, "command": PYTHON, "args": [ASKING_SERVER], "protocol_version": era}


async def test_every_pairing_of_eras_asks_the_caller(tmp_path: Path) -> None:
    """Upstreams of both eras (ours: the 2025 one sends elicitation/create, the 2026 one answers
    input_required), each called by clients of both eras: the caller is asked and the call completes."""
    servers = [asking_server("old", "2025-11-25"), asking_server("new", "2026-07-28")]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("old", "running")
        await proxy.wait_for("new", "running")
        for mode in MODES:
            asked: list[str] = []

            async def approve(
                context: ClientRequestContext, params: types.ElicitRequestParams, asked: list[str] = asked
            ) -> types.ElicitResult:
                asked.append(params.message)
                return types.ElicitResult(action="accept", content={"ok": True})

            async with through(proxy, "/mcp/all", mode, elicitation_callback=approve) as client:
                for server in ("old", "new"):
                    with trio.fail_after(30):
                        result = await client.call_tool(f"{server}__confirm", {"action": f"deploy {server}"})
                    assert text_of(result) == f"did deploy {server}", (mode, server, text_of(result))
            assert asked == ["May I deploy old?", "May I deploy new?"], mode


async def test_a_2026_upstreams_input_request_reaches_a_2026_client_unchanged(tmp_path: Path) -> None:
    async with running_proxy(
        tmp_path, [asking_server("new", "2026-07-28"), asking_server("old", "2025-11-25")]
    ) as proxy:
        await proxy.wait_for("new", "running")
        await proxy.wait_for("old", "running")
        answers = Answers()
        async with through(proxy, "/mcp/all", "2026-07-28", **answers.callbacks()) as client:
            session = client.session
            with trio.fail_after(30):
                first = await session.call_tool("new__confirm", {"action": "ship"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            assert first.request_state == "state-for-ship"  # the upstream's own state, unchanged
            assert list(first.input_requests or {}) == ["ask"]
            yes = {"ask": types.ElicitResult(action="accept", content={"ok": True})}
            with trio.fail_after(30):
                done = await session.call_tool(
                    "new__confirm",
                    {"action": "ship"},
                    input_responses=yes,
                    request_state=first.request_state,
                    allow_input_required=True,
                )
            assert isinstance(done, types.CallToolResult) and text_of(done) == "did ship"

            # A 2025-era upstream's question: a requestState of ours, good for one retry only.
            with trio.fail_after(30):
                asked = await session.call_tool("old__confirm", {"action": "ship"}, allow_input_required=True)
            assert isinstance(asked, types.InputRequiredResult)
            assert (asked.request_state or "").startswith("mcpproxy.")
            (key,) = asked.input_requests or {}
            answer = {key: types.ElicitResult(action="accept", content={"ok": True})}
            with trio.fail_after(30):
                done = await session.call_tool(
                    "old__confirm",
                    {"action": "ship"},
                    input_responses=answer,
                    request_state=asked.request_state,
                    allow_input_required=True,
                )
            assert isinstance(done, types.CallToolResult) and text_of(done) == "did ship"
            with pytest.raises(MCPError, match="requestState is unknown or was used already"):
                await session.call_tool(
                    "old__confirm",
                    {"action": "ship"},
                    input_responses=answer,
                    request_state=asked.request_state,
                    allow_input_required=True,
                )
        assert answers.asked == []  # every question above was answered by hand


FILESYSTEM_JS: Final = FIXTURES / "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"


async def test_server_filesystem_is_limited_to_the_configured_roots(tmp_path: Path) -> None:
    """server-filesystem replaces the directories on its command line with the roots it is given;
    with none configured it keeps them (an empty roots answer changes nothing)."""
    started_with, root = tmp_path / "started-with", tmp_path / "root"
    started_with.mkdir()
    root.mkdir()
    (root / "inside.txt").write_text("in the root")
    base = {"command": "node", "args": [str(FILESYSTEM_JS), str(started_with)], "protocol": "stdio"}
    servers = [{**base, "name": "limited", "roots": [str(root)]}, {**base, "name": "plain"}]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("limited", "running")
        await proxy.wait_for("plain", "running")
        async with through(proxy, "/mcp/all", "legacy") as client:
            with trio.fail_after(20):
                while str(root) not in (
                    allowed := text_of(await client.call_tool("limited__list_allowed_directories", {}))
                ):
                    await trio.sleep(0.2)  # it asks for roots just after it starts
            assert str(started_with) not in allowed
            inside = await client.call_tool("limited__read_text_file", {"path": str(root / "inside.txt")})
            assert text_of(inside) == "in the root"
            outside = await client.call_tool("limited__list_directory", {"path": str(started_with)})
            assert outside.is_error
            plain = text_of(await client.call_tool("plain__list_allowed_directories", {}))
            assert str(started_with) in plain and str(root) not in plain


@pytest.mark.parametrize("path", PATHS)
async def test_a_2026_client_gets_the_log_messages_of_its_own_call(tmp_path: Path, path: str) -> None:
    """2026-07-28 has no standing stream: an upstream's log message sent while the client's call is
    its one call in flight reaches that call's response stream, at the levels the client opted in to."""
    servers = [asking_server("old", "2025-11-25"), asking_server("new", "2026-07-28")]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("old", "running")
        await proxy.wait_for("new", "running")
        for log_level in ("info", None):
            logged: list[tuple[str, Any, str | None]] = []

            async def on_log(
                params: types.LoggingMessageNotificationParams, logged: list[Any] = logged
            ) -> None:
                logged.append((params.level, params.data, params.logger))

            async with through(
                proxy, path, "2026-07-28", logging_callback=on_log, log_level=log_level
            ) as client:
                for server in ("old", "new"):
                    assert text_of(await call(client, path, "chatty", server=server)) == "chatted"
            expected = [
                ("info", f"chat {n}", f"{server}:chatter") for server in ("old", "new") for n in (1, 2)
            ]
            assert logged == (expected if log_level else []), log_level


async def test_a_call_cancelled_while_its_client_is_asked_ends_the_question(tmp_path: Path) -> None:
    """The client gives up on its call while it is being asked: the question ends with the call (the
    upstream gets an error, not a hang), and the next call is asked and answered as usual."""
    asked = trio.Event()
    answers = Answers()

    async def stalls_once(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult:
        if not asked.is_set():
            asked.set()
            await trio.sleep_forever()
        return await answers.elicitation(context, params)

    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        async with through(proxy, "/mcp/all", "legacy", elicitation_callback=stalls_once) as client:
            async with trio.open_nursery() as nursery:

                async def first_call() -> None:
                    await client.call_tool("everything__trigger-elicitation-request", {})

                nursery.start_soon(first_call)
                with trio.fail_after(30):
                    await asked.wait()
                nursery.cancel_scope.cancel()  # the client gives up (the SDK sends notifications/cancelled)
            again = await call(client, "/mcp/all", "trigger-elicitation-request")
        assert "Ada Lovelace" in text_of(again), text_of(again)
        assert answers.asked == ["elicitation"]


async def test_a_callers_roots_reach_only_its_own_call(tmp_path: Path) -> None:
    """Asked for roots during a call, the upstream gets the caller's; a caller without roots gets the
    server's configured ones for it, whatever another client's are."""
    configured = tmp_path / "configured"
    server = {**asking_server("old", "2025-11-25"), "roots": [str(configured)]}
    async with running_proxy(tmp_path, [server]) as proxy:
        await proxy.wait_for("old", "running")
        for mode in MODES:
            answers = Answers()
            async with (
                through(proxy, "/mcp/all", mode, **answers.callbacks()) as with_roots,
                through(proxy, "/mcp/all", mode) as without,
            ):
                mine = await call(with_roots, "/mcp/all", "roots", server="old")
                theirs = await call(without, "/mcp/all", "roots", server="old")
            assert text_of(mine) == "file:///client/own/root", (mode, text_of(mine))
            assert text_of(theirs) == configured.as_uri(), (mode, text_of(theirs))
            assert answers.asked == ["roots"], mode


async def test_url_mode_elicitation_reaches_the_caller_with_its_url_as_it_is(tmp_path: Path) -> None:
    url = "https://example.com/authorize?state=abc&scope=read%20write"
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        for mode in MODES:
            seen: list[types.ElicitRequestParams] = []

            async def opens_nothing(
                context: ClientRequestContext,
                params: types.ElicitRequestParams,
                seen: list[types.ElicitRequestParams] = seen,
            ) -> types.ElicitResult:
                seen.append(params)
                return types.ElicitResult(action="accept")

            async with through(proxy, "/mcp/all", mode, elicitation_callback=opens_nothing) as client:
                result = await call(
                    client, "/mcp/all", "trigger-url-elicitation", {"url": url, "message": "sign in"}
                )
            assert not result.is_error, (mode, text_of(result))
            (asked,) = seen
            assert isinstance(asked, types.ElicitRequestURLParams), mode
            assert asked.url == url and asked.message == "sign in", mode
