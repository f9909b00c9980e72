"""An upstream that asks its client to run an elicitation or a sampling request as a task (the client
side of 2025-11-25 tasks, issue 19): the worker is that client. server-everything's
`trigger-*-async` tools create the task, poll `tasks/get` and fetch `tasks/result`; the question
itself reaches the client whose call caused it, in both eras, on both endpoints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.proxyctl import everything_server, running_proxy
from tests.system.test_asks import MODES, PATHS, Answers, call, text_of, through

pytestmark = pytest.mark.system


async def test_an_upstreams_task_augmented_questions_reach_the_calling_client(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.roots_settled()
        for path in PATHS:
            for mode in MODES:
                answers = Answers()
                async with through(proxy, path, mode, **answers.callbacks()) as client:
                    elicited = await call(client, path, "trigger-elicitation-request-async")
                    assert not elicited.is_error, (path, mode, text_of(elicited))
                    assert "[COMPLETED]" in text_of(elicited), (path, mode, text_of(elicited))
                    assert "Name: Ada Lovelace" in text_of(elicited), (path, mode)
                    sampled = await call(client, path, "trigger-sampling-request-async", {"prompt": "hi"})
                    assert not sampled.is_error, (path, mode, text_of(sampled))
                    assert "sampled by the calling client" in text_of(sampled), (path, mode, text_of(sampled))
                assert answers.asked == ["elicitation", "sampling"], (path, mode)


async def test_a_task_whose_client_cannot_answer_fails_instead_of_waiting(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [everything_server()]) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.roots_settled()
        async with through(proxy, "/mcp/all", "legacy") as client:  # declares no elicitation
            result = await call(client, "/mcp/all", "trigger-elicitation-request-async")
        text = text_of(result)
        assert "does not support elicitation" in text or "[FAILED]" in text, text
