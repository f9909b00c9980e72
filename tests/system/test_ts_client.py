"""A real TypeScript SDK client (tests/fixtures/ts_client.mjs, @modelcontextprotocol/sdk from npm) on
/mcp/all sees the same tools, prompts, resources and templates as the Python SDK client, and gets
the same prompt and resource contents.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Final

import pytest
import trio
from mcp.client import Client

from tests.proxyctl import FIXTURES, PYTHON, SERVERS, everything_server, running_proxy

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("node") is None, reason="needs node"),
]

TS_CLIENT: Final = FIXTURES / "ts_client.mjs"
NODE_TIMEOUT_S: Final = 60.0
PROMPT: Final = "beta__args-prompt"
PROMPT_ARGS: Final = {"city": "Paris", "state": "TX"}


def dumped(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def catalog(listing: dict[str, Any]) -> dict[str, Any]:
    """What both clients must agree on, in a form that ignores order."""
    return {
        "tools": {t["name"]: t["inputSchema"] for t in listing["tools"]},
        "prompts": {p["name"]: p.get("arguments", []) for p in listing["prompts"]},
        "resources": sorted(r["uri"] for r in listing["resources"]),
        "templates": sorted(t["uriTemplate"] for t in listing["templates"]),
        "prompt": listing["prompt"]["messages"],
        "resource": listing["resource"]["contents"],
    }


async def run_ts_client(url: str, resource_uri: str) -> dict[str, Any]:
    with trio.fail_after(NODE_TIMEOUT_S):
        done = await trio.run_process(
            ["node", str(TS_CLIENT), url, PROMPT, json.dumps(PROMPT_ARGS), resource_uri],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def test_typescript_sdk_client_sees_what_the_python_client_sees(tmp_path: Path) -> None:
    servers = [everything_server("alpha"), everything_server("beta")]
    async with running_proxy(tmp_path, servers) as proxy:
        await proxy.wait_for("alpha", "running")
        await proxy.wait_for("beta", "running")
        url = f"{proxy.base_url}/mcp/all"
        with trio.fail_after(30):
            async with Client(url, mode="legacy", cache=None) as client:
                resources = (await client.list_resources()).resources
                resource_uri = next(r.uri for r in resources if r.uri.startswith("mcpproxy://alpha/"))
                python = {
                    "tools": [dumped(t) for t in (await client.list_tools()).tools],
                    "prompts": [dumped(p) for p in (await client.list_prompts()).prompts],
                    "resources": [dumped(r) for r in resources],
                    "templates": [
                        dumped(t) for t in (await client.list_resource_templates()).resource_templates
                    ],
                    "prompt": dumped(await client.get_prompt(PROMPT, PROMPT_ARGS)),
                    "resource": dumped(await client.read_resource(resource_uri)),
                }
        typescript = await run_ts_client(url, resource_uri)

    assert typescript["protocolVersion"], typescript
    assert {"tools", "prompts", "resources"} <= set(typescript["capabilities"])
    assert catalog(typescript) == catalog(python)
    assert len(typescript["prompts"]) == 8 and len(typescript["templates"]) == 4
    assert "Paris" in json.dumps(typescript["prompt"]["messages"])
    assert typescript["resource"]["contents"][0]["uri"] == resource_uri


TS_ASKING_CLIENT: Final = FIXTURES / "ts_asking_client.mjs"


async def test_typescript_sdk_client_is_asked_what_its_calls_upstreams_ask(tmp_path: Path) -> None:
    """Elicitation and sampling from server-everything (stdio, 2025 era) and elicitation from our
    2026-era SDK server reach the TypeScript client that made the call, as server-initiated requests."""
    asking = {"name": "new", "command": PYTHON, "args": [str(SERVERS / "asking_server.py")]}
    async with running_proxy(
        tmp_path, [everything_server(), {**asking, "protocol_version": "2026-07-28"}]
    ) as proxy:
        await proxy.wait_for("everything", "running")
        await proxy.wait_for("new", "running")
        await proxy.roots_settled()
        tools = [
            "everything__trigger-elicitation-request",
            "everything__trigger-sampling-request",
            "new__confirm",
        ]
        with trio.fail_after(NODE_TIMEOUT_S):
            done = await trio.run_process(
                ["node", str(TS_ASKING_CLIENT), f"{proxy.base_url}/mcp/all", *tools],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert done.returncode == 0, done.stderr.decode()
        outcome = json.loads(done.stdout)
    texts = [" ".join(item.get("text", "") for item in result["content"]) for result in outcome["results"]]
    assert not any(result.get("isError") for result in outcome["results"]), texts
    assert "Grace Hopper" in texts[0]
    assert "sampled by the TypeScript client" in texts[1]
    assert texts[2] == "did ship"
    assert outcome["asked"] == ["elicitation/create", "sampling/createMessage", "elicitation/create"]
