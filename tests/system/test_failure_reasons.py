"""A failing upstream's `last_error` says why in its own words: the last lines of its stderr, scrubbed
of the secrets the proxy gave it, as `mcpproxy serve`, `upstream list` and REST show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.proxyctl import PYTHON, START_TIMEOUT_S, running_proxy
from tests.system.test_cli import cli, ok

pytestmark = pytest.mark.system

TOKEN = "tok-0123456789abcdef"
FAILING = (
    "import os, sys\n"
    "print('loading settings', file=sys.stderr)\n"
    "print('using token', os.environ['SERVICE_TOKEN'], file=sys.stderr)\n"
    "print('boom: missing API key', file=sys.stderr)\n"
    "sys.exit(3)\n"
)


async def test_a_failing_stdio_server_reports_the_end_of_its_stderr_without_the_secrets(
    tmp_path: Path,
) -> None:
    server = {"name": "broken", "command": PYTHON, "args": ["-c", FAILING], "env": {"SERVICE_TOKEN": TOKEN}}
    async with running_proxy(tmp_path, [server]) as proxy:
        status = await proxy.wait_for("broken", "backoff", timeout_s=START_TIMEOUT_S)
        error = status["last_error"]
        assert error.startswith("upstream ")
        assert error.endswith(
            "; its stderr ended: loading settings | using token •••• | boom: missing API key"
        )
        assert TOKEN not in error

        listed = json.loads(ok(await cli(proxy, "upstream", "list", "-o", "json")).stdout)
        assert "boom: missing API key" in listed[0]["last_error"]
    # serve's own progress line carries it too.
    assert "✗ broken: retrying: " in (tmp_path / "proxy.log").read_text()
    log = (tmp_path / "proxy.log").read_text()
    assert "boom: missing API key" in log and TOKEN not in log
