"""A worker lists its upstream's prompts, resources and templates, and forwards requests to it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from mcp.shared.exceptions import MCPError

from bus.messages import UpstreamSpec
from services.upstream_log import RotatingLog
from services.worker.catalog import forward, list_catalog
from services.worker.upstream import Upstream, open_upstream
from tests.proxyctl import EVERYTHING_JS


@asynccontextmanager
async def everything_upstream(tmp_path: Path) -> AsyncIterator[Upstream]:
    log_path = tmp_path / "everything.log"
    spec = UpstreamSpec(
        name="everything", protocol="stdio", command="node", args=[str(EVERYTHING_JS), "stdio"]
    )

    async def ignore(message: Any) -> None:
        pass

    log = RotatingLog(log_path, 1024 * 1024)
    try:
        with trio.fail_after(30):
            async with open_upstream(spec, log, lambda child: None, ignore) as upstream:
                yield upstream
    finally:
        log.close()


async def test_the_catalog_holds_what_the_upstream_lists(tmp_path: Path) -> None:
    async with everything_upstream(tmp_path) as upstream:
        catalog = await list_catalog(upstream.session)
        direct = await upstream.session.list_prompts()
    assert [p["name"] for p in catalog.prompts] == [p.name for p in direct.prompts]
    assert len(catalog.prompts) == 4 and len(catalog.resources) == 7 and len(catalog.templates) == 2
    assert all("uri" in r for r in catalog.resources)
    assert all("uriTemplate" in t for t in catalog.templates)  # camelCase, as on the wire
    assert {"prompts", "resources", "completions", "logging"} <= set(catalog.capabilities)


async def test_forwarded_requests_answer_as_the_upstream_does(tmp_path: Path) -> None:
    async with everything_upstream(tmp_path) as upstream:
        catalog = await list_catalog(upstream.session)
        uri = catalog.resources[0]["uri"]
        read = json.loads(
            await forward(upstream.session, "resources/read", json.dumps({"uri": uri}).encode())
        )
        assert read["contents"][0]["uri"] == uri
        prompt = next(p for p in catalog.prompts if not p.get("arguments"))
        got = json.loads(
            await forward(upstream.session, "prompts/get", json.dumps({"name": prompt["name"]}).encode())
        )
        assert got["messages"]
        with pytest.raises(MCPError):
            await forward(upstream.session, "prompts/get", b'{"name": "no-such-prompt"}')
        with pytest.raises(ValueError, match="not forwarded"):
            await forward(upstream.session, "tools/call", b"{}")
