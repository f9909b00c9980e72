"""A real hypercorn server on a free loopback port, for the tests of gateway/_hypercorn_internals.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve


@asynccontextmanager
async def loopback_server(app: Any, stop: trio.Event | None = None, **settings: Any) -> AsyncIterator[int]:
    """`app` served until the block ends (or `stop` is set); yields the port. `settings` are hypercorn
    Config attributes."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 1.0
    for name, value in settings.items():
        setattr(config, name, value)
    shutdown = stop if stop is not None else trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
        )
        yield int(urls[0].rsplit(":", 1)[1])
        shutdown.set()
