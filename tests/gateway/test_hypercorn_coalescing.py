"""hypercorn with the coalescing HTTP/1.1 protocol: sized answers are whole, streams still stream.

And the hypercorn internals the patch relies on: present in the installed hypercorn, a changed one refused.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h11
import httpx2
import hypercorn.protocol
import pytest
import trio
from hypercorn.config import Config
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio import serve
from hypercorn.typing import H11SendableEvent
from starlette.types import Receive, Scope, Send

from bus.errors import IncompatibleLibraryError
from gateway import _hypercorn_internals
from gateway._hypercorn_internals import WRITTEN_FOR, problems

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def coalescing() -> Any:
    original = hypercorn.protocol.H11Protocol  # type: ignore[attr-defined]
    _hypercorn_internals.install_coalescing()
    yield
    hypercorn.protocol.H11Protocol = original  # type: ignore[attr-defined]


class App:
    """`/json`: a sized answer; `/stream`: a head, then a body only once `release` is set."""

    def __init__(self) -> None:
        self.release = trio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        if scope["path"] == "/stream":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
            )
            await self.release.wait()
            await send({"type": "http.response.body", "body": b"late"})
            return
        body = b'{"ok": true}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
        )  # type: ignore[arg-type]
        yield urls[0]
        shutdown.set()


async def test_sized_answers_arrive_whole_on_a_kept_alive_connection() -> None:
    async with serving(App()) as url, httpx2.AsyncClient(base_url=url) as client:
        with trio.fail_after(10):
            for _ in range(5):
                answer = await client.post("/json", content=b"{}")
                assert answer.status_code == 200 and answer.json() == {"ok": True}
            head = await client.head("/json")
            assert head.status_code == 200 and head.headers["content-length"] == "12" and head.content == b""


async def test_a_stream_gets_its_head_before_its_body_exists() -> None:
    app = App()
    async with serving(app) as url, httpx2.AsyncClient(base_url=url) as client:
        with trio.fail_after(10):
            async with client.stream("GET", "/stream") as response:
                assert response.status_code == 200  # the head came while the body was still held back
                app.release.set()
                assert await response.aread() == b"late"


def test_the_installed_hypercorn_has_every_internal_the_patch_needs() -> None:
    assert problems() == []
    assert version("hypercorn").startswith(f"{WRITTEN_FOR}.")


def test_pyproject_pins_hypercorn_to_the_series_the_patch_was_written_for() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    major, minor = WRITTEN_FOR.split(".")
    assert f"hypercorn>={WRITTEN_FOR},<{major}.{int(minor) + 1}" in dependencies


def test_a_hypercorn_that_renamed_the_send_method_is_refused_and_left_unpatched() -> None:
    class RenamedSend(H11Protocol):  # what a later hypercorn might do
        async def _send_h11_event(self, event: H11SendableEvent, *, flush: bool = True) -> None:
            await self.send_events([event])  # type: ignore[attr-defined]

    found = problems(protocol=RenamedSend)
    assert "H11Protocol sends every event through the coroutine _send_h11_event(event)" in found
    assert any("_send_h11_event writes connection.send(event)" in problem for problem in found)


def test_a_module_that_no_longer_looks_the_protocol_up_refuses_the_install() -> None:
    elsewhere = SimpleNamespace(H11Protocol=H11Protocol, ProtocolWrapper=h11.Connection)
    assert problems(module=elsewhere) == [  # type: ignore[arg-type]
        "ProtocolWrapper looks the global H11Protocol up for each connection"
    ]


def test_install_raises_naming_hypercorn_and_the_version_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hypercorn without the module global: the patch would silently do nothing.
    monkeypatch.delattr(hypercorn.protocol, "H11Protocol")
    with pytest.raises(IncompatibleLibraryError) as raised:
        _hypercorn_internals.install_coalescing()
    message = str(raised.value)
    assert f"hypercorn {version('hypercorn')} is not the version mcpproxy was written for" in message
    assert f"(hypercorn {WRITTEN_FOR})" in message and "H11Protocol is the HTTP/1.1 protocol class" in message
    assert not hasattr(hypercorn.protocol, "H11Protocol")
