"""A header or env value that holds a secret reference is a template: REST and the CLI show it as
written, while a literal secret beside it stays masked (a real proxy, the real `mcpproxy` CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.proxyctl import echo_server, free_port, running_proxy
from tests.system.test_cli import cli, ok

pytestmark = pytest.mark.system

LITERAL = "literal-secret-" + "z" * 16 + "77"


async def test_templates_show_as_written_and_literal_secrets_stay_masked(tmp_path: Path) -> None:
    remote = {
        "name": "remote",
        "url": f"http://127.0.0.1:{free_port()}/mcp",
        "headers": {"Authorization": "Bearer ${keyring:ex_token}", "X-Api-Key": LITERAL},
    }
    local = echo_server(env={"DB_URL_PASSWORD": "pw=${env:DB_PW}", "API_TOKEN": LITERAL})
    async with running_proxy(tmp_path, [remote, local]) as proxy:
        servers = await proxy.servers()
        assert servers["remote"]["headers"] == {
            "Authorization": "Bearer ${keyring:ex_token}",
            "X-Api-Key": "••••77 (33 chars)",
        }
        assert servers["echo"]["env"] == {
            "DB_URL_PASSWORD": "pw=${env:DB_PW}",
            "API_TOKEN": "••••77 (33 chars)",
        }

        shown = json.loads(ok(await cli(proxy, "upstream", "show", "remote", "-o", "json")).stdout)
        assert shown["headers"]["Authorization"] == "Bearer ${keyring:ex_token}"
        table = ok(await cli(proxy, "upstream", "show", "remote")).stdout
        assert "Bearer ${keyring:ex_token}" in table and "••••77 (33 chars)" in table
        for text in (json.dumps(servers), table):
            assert LITERAL not in text
