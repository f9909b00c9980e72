"""hypercorn with the coalescing HTTP/1.1 protocol: sized answers are whole, streams still stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import hypercorn.protocol
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.types import Receive, Scope, Send

from gateway import _h11_coalesce


@pytest.fixture(autouse=True)
def coalescing() -> Any:
    original = hypercorn.protocol.H11Protocol  # type: ignore[attr-defined]
    assert _h11_coalesce.install()
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
