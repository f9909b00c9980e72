"""Secrets never in outputs (issue 16: findings 2, 3 and the masking parts of 5), through a real proxy.

Every test plants distinctive secret values — stored in the secrets store and
referenced from the config, or written into it as they are — and looks for
them wherever a person, an agent or a log reader could see them. The last
test plants one in every kind of field and searches every output there is.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest
import trio
from mcp.client.session import ClientSession

from tests.proxyctl import PYTHON, SERVERS, Proxy, echo_server, running_proxy
from tests.system.test_remote_and_secrets import http_upstream, text_of

pytestmark = pytest.mark.system

CLI: Final = str(Path(PYTHON).parent / "mcpproxy")
CLI_TIMEOUT_S: Final = 90.0
SCRUBBED: Final = "••••"
STORE_FILES: Final = frozenset({"secrets.enc", "secrets.key"})
"""The secrets store itself: the one place a secret value is meant to be (encrypted)."""


def planted(role: str) -> str:
    """A value found anywhere only if it leaked from where it was planted."""
    return f"PLANTED{role}{secrets.token_hex(10)}"


async def store_secret(proxy: Proxy, name: str, value: str) -> None:
    response = await proxy.post("/api/v1/secrets", json={"name": name, "value": value})
    assert response.status_code == 201, response.text


async def run_cli(proxy: Proxy, *args: str) -> str:
    """`mcpproxy ARGS` against the proxy: stdout and stderr together (what a person sees)."""
    target = ["--config", str(proxy.config_path), "--data-dir", str(proxy.data_dir), "--url", proxy.base_url]
    with trio.fail_after(CLI_TIMEOUT_S):
        done = await trio.run_process(
            [CLI, *args, *target], capture_stdout=True, capture_stderr=True, check=False
        )
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


@asynccontextmanager
async def captured_events(proxy: Proxy) -> AsyncIterator[list[str]]:
    """Every line /events sends while the block runs."""
    lines: list[str] = []
    connected = trio.Event()
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            async with (
                httpx2.AsyncClient(base_url=proxy.base_url, timeout=None) as client,
                client.stream("GET", "/events", headers=proxy.headers) as response,
            ):
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    lines.append(line)
                    connected.set()

        nursery.start_soon(reader)
        with trio.fail_after(10):
            await connected.wait()
        yield lines
        nursery.cancel_scope.cancel()


def leaks(texts: Iterable[tuple[str, str]], values: Iterable[str]) -> list[str]:
    """`where: value` for each planted value found in a text."""
    return [f"{where}: {value}" for where, text in texts for value in values if value in text]


def assert_nothing_leaked(texts: Iterable[tuple[str, str]], values: Iterable[str]) -> None:
    found = leaks(texts, values)
    assert not found, "secret values found:\n" + "\n".join(found)


def files_under(directory: Path) -> list[tuple[str, str]]:
    """Every file but the secrets store, as text (bytes decoded leniently: SQLite files too)."""
    return [
        (str(path), path.read_bytes().decode("utf-8", errors="replace"))
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in STORE_FILES
    ]


def command_lines() -> list[tuple[str, str]]:
    """/proc/*/cmdline of every process on the machine."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                raw = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            found.append((f"/proc/{entry.name}/cmdline", raw.replace(b"\0", b" ").decode(errors="replace")))
    return found


async def dumped_call(session: ClientSession, name: str, arguments: dict[str, Any], *, sdk: bool) -> str:
    """A tool call's whole answer as JSON; `sdk`: the SDK's path (a progress token), else the fast lane."""

    async def no_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    with trio.fail_after(60):
        result = await session.call_tool(name, arguments, progress_callback=no_progress if sdk else None)
    return result.model_dump_json(by_alias=True)


async def rest_answers(proxy: Proxy, names: Iterable[str]) -> list[tuple[str, str]]:
    paths = [
        "/api/v1/servers",
        "/api/v1/config",
        "/api/v1/status",
        "/api/v1/secrets",
        "/api/v1/activity?limit=500",
    ]
    for name in names:
        paths += [
            f"/api/v1/servers/{name}",
            f"/api/v1/servers/{name}/logs?tail=1000",
            f"/api/v1/servers/{name}/tools",
        ]
    answers = [(f"GET {path}", (await proxy.get(path)).text) for path in paths]
    activity = json.loads(answers[4][1])["data"]
    for record in activity["records"]:
        path = f"/api/v1/activity/{record['id']}"
        answers.append((f"GET {path}", (await proxy.get(path)).text))
    return answers


async def cli_answers(proxy: Proxy, names: Iterable[str]) -> list[tuple[str, str]]:
    commands = [
        ("upstream", "list"),
        ("upstream", "list", "-o", "json"),
        ("status",),
        ("status", "-o", "json"),
        ("doctor",),
    ]
    commands += [("upstream", "show", name) for name in names]
    return [(f"mcpproxy {' '.join(args)}", await run_cli(proxy, *args)) for args in commands]


# --- F2: resolved secrets in the log ---------------------------------------------------------


async def test_a_stored_secret_in_a_url_query_and_userinfo_never_shows_in_logs_or_answers(
    tmp_path: Path,
) -> None:
    query_secret, password = planted("QUERY"), planted("PASSWORD")
    with http_upstream() as (url, _server):
        remote = (
            url.replace("http://", "http://bot:${keyring:url_password}@")
            + "?api_key=${keyring:url_key}&page=1"
        )
        servers = [{"name": "q", "url": remote, "protocol": "http"}]
        async with running_proxy(tmp_path, servers) as proxy, captured_events(proxy) as events:
            await store_secret(proxy, "url_key", query_secret)
            await store_secret(proxy, "url_password", password)
            await proxy.wait_for("q", "running")
            async with proxy.mcp() as session:
                seen = text_of(
                    await session.call_tool("call_tool_read", {"name": "q:request_url", "args": {}})
                )
                listed = await dumped_call(session, "upstream_servers", {"operation": "list"}, sdk=False)
            outputs = [("MCP q:request_url", seen), ("MCP upstream_servers list", listed)]
            outputs += await rest_answers(proxy, ["q"])
            view = (await proxy.servers())["q"]["url"]
        outputs += [("/events", "\n".join(events)), ("serve log", (tmp_path / "proxy.log").read_text())]
        outputs += files_under(proxy.data_dir)
        assert_nothing_leaked(outputs, [query_secret, password])
        # The upstream was reached with the resolved value; its answer shows it scrubbed.
        assert seen.endswith(f"/mcp?api_key={SCRUBBED}&page=1"), seen
        # The config view shows the references as they are (the literal user name is masked).
        assert view.endswith(":${keyring:url_password}@" + remote.partition("@")[2]), view


# --- F3: a URL password in last_error ----------------------------------------------------------


async def test_a_404_upstream_with_a_url_password_has_a_scrubbed_last_error_everywhere(
    tmp_path: Path,
) -> None:
    password = planted("PASS")
    with http_upstream() as (url, _server):
        wrong = url.replace("http://", f"http://user:{password}@").replace("/mcp", "/nothing-here")
        servers = [{"name": "wrongpath", "url": wrong, "protocol": "http"}]
        async with running_proxy(tmp_path, servers) as proxy, captured_events(proxy) as events:
            state = await proxy.wait_for("wrongpath", "backoff")
            error = state["last_error"]
            assert "HTTP 404 Not Found from http://127.0.0.1:" in error and "/nothing-here" in error, error
            assert password not in error and "user:" not in error
            async with proxy.mcp() as session:
                listed = await dumped_call(session, "upstream_servers", {"operation": "list"}, sdk=False)
            async with proxy.mcp("/mcp/all") as session:
                direct = (await session.list_tools()).model_dump_json()
            outputs = [("MCP upstream_servers list", listed), ("MCP /mcp/all tools/list", direct)]
            outputs += await rest_answers(proxy, ["wrongpath"])
            outputs += await cli_answers(proxy, ["wrongpath"])
            assert any("HTTP 404" in text for where, text in outputs if where == "mcpproxy doctor")
        log = (tmp_path / "proxy.log").read_text()
        outputs += [("/events", "\n".join(events)), ("serve log", log)]
        outputs += files_under(proxy.data_dir)
        assert_nothing_leaked(outputs, [password])
        assert "HTTP 404" in "\n".join(events)
        assert "HTTP 404 Not Found from http://127.0.0.1:" in log


# --- F5: tool results that echo what the proxy injected --------------------------------------


async def test_a_tool_echoing_its_env_shows_injected_secrets_masked_unless_the_server_allows_it(
    tmp_path: Path,
) -> None:
    stored, literal = planted("STORED"), planted("LITERAL")
    env = {
        "API_TOKEN": "${keyring:echo_token}",
        "DB_PASSWORD": literal,
        "ECHO_SERVER_REPORT_ENV": "API_TOKEN,DB_PASSWORD",
    }
    servers = [echo_server("guarded", env=env), echo_server("open", env=env, allow_secret_echo=True)]
    async with running_proxy(tmp_path, servers) as proxy:
        await store_secret(proxy, "echo_token", stored)
        await proxy.wait_for("guarded", "running")
        await proxy.wait_for("open", "running")
        answers: dict[str, list[str]] = {"guarded": [], "open": []}
        async with proxy.mcp() as session:
            for server in answers:
                for sdk in (False, True):
                    arguments = {"name": f"{server}:whoami", "args": {}}
                    answers[server].append(await dumped_call(session, "call_tool_read", arguments, sdk=sdk))
        async with proxy.mcp("/mcp/all") as session:
            for server in answers:
                for sdk in (False, True):
                    answers[server].append(await dumped_call(session, f"{server}__whoami", {}, sdk=sdk))
        for server in answers:
            response = await proxy.post("/api/v1/tools/call", json={"name": f"{server}:whoami", "args": {}})
            answers[server].append(response.text)
        for answer in answers["guarded"]:  # /mcp and /mcp/all, fast lane and SDK path, REST
            assert stored not in answer and literal not in answer, answer
            assert SCRUBBED in answer
        for answer in answers["open"]:
            assert stored in answer and literal in answer, answer
        # allow_secret_echo is an ordinary, validated field
        bad = await proxy.post(
            "/api/v1/config/validate", json={"mcpServers": [echo_server("x", allow_secret_echo="yes")]}
        )
        assert bad.status_code == 400 and "allow_secret_echo: expected boolean, got string" in bad.text


# --- F5: masking by name in URLs and by value everywhere -------------------------------------


async def test_config_views_mask_sensitive_query_values_and_known_values_by_value(tmp_path: Path) -> None:
    token, stored, literal = planted("TOKEN"), planted("STORED"), planted("LITERAL")
    servers = [
        {"name": "remote", "url": f"http://127.0.0.1:9/mcp?token={token}&page=2", "enabled": False},
        {
            "name": "neutral",
            "command": PYTHON,
            "args": [str(SERVERS / "echo_server.py"), f"--flag={literal}", f"--api-key={literal}"],
            "env": {"MYVAR": stored, "REAL": "${keyring:known}", "DB_PASSWORD": literal},
            "headers": {"X-Custom": stored},
            "enabled": False,
        },
    ]
    async with running_proxy(tmp_path, servers) as proxy:
        await store_secret(proxy, "known", stored)
        views: list[tuple[str, str]] = []
        with trio.fail_after(30):  # the store's values reach every view once the supervisor read them
            while not views or leaks(views, [stored]):
                views = [("GET /api/v1/servers", (await proxy.get("/api/v1/servers")).text)]
                await trio.sleep(0.05)
        views += [("GET /api/v1/config", (await proxy.get("/api/v1/config")).text)]
        async with proxy.mcp() as session:
            views.append(
                (
                    "MCP upstream_servers list",
                    await dumped_call(session, "upstream_servers", {"operation": "list"}, sdk=False),
                )
            )
        assert_nothing_leaked(views, [token, stored, literal])
        shown = await proxy.servers()
        assert (
            shown["remote"]["url"]
            == f"http://127.0.0.1:9/mcp?token=••••{token[-2:]} ({len(token)} chars)&page=2"
        )
        neutral = shown["neutral"]
        assert neutral["env"]["MYVAR"] == f"••••{stored[-2:]} ({len(stored)} chars)"
        assert neutral["env"]["REAL"] == "${keyring:known}"
        assert neutral["headers"]["X-Custom"] == neutral["env"]["MYVAR"]
        assert neutral["args"][1:] == [
            f"--flag=••••{literal[-2:]} ({len(literal)} chars)",
            f"--api-key=••••{literal[-2:]} ({len(literal)} chars)",
        ]


# --- everything at once -------------------------------------------------------------------------

CALLED: Final = [
    ("remote-ref", "headers"),
    ("remote-ref", "request_url"),
    ("remote-literal", "headers"),
    ("remote-literal", "request_url"),
    ("echo", "whoami"),
]


async def mcp_answers(proxy: Proxy, names: Iterable[str]) -> list[tuple[str, str]]:
    """Lists and calls on /mcp and /mcp/all (fast lane and SDK path), and the management tools."""
    answers = []
    async with proxy.mcp() as session:
        answers.append(("/mcp tools/list", (await session.list_tools()).model_dump_json()))
        for server, tool in CALLED:
            for sdk in (False, True):
                arguments = {"name": f"{server}:{tool}", "args": {}}
                answer = await dumped_call(session, "call_tool_read", arguments, sdk=sdk)
                answers.append((f"/mcp call {server}:{tool} (sdk={sdk})", answer))
        management: list[tuple[str, dict[str, Any]]] = [
            ("upstream_servers", {"operation": "list"}),
            ("quarantine_security", {"operation": "list_quarantined"}),
            ("quarantine_security", {"operation": "inspect_quarantined", "name": "held"}),
            ("quarantine_security", {"operation": "inspect_tools", "name": "echo"}),
        ]
        management += [("upstream_servers", {"operation": "tail_log", "name": name}) for name in names]
        for tool, arguments in management:
            answer = await dumped_call(session, tool, arguments, sdk=False)
            answers.append((f"/mcp {tool} {json.dumps(arguments)}", answer))
    async with proxy.mcp("/mcp/all") as session:
        answers.append(("/mcp/all tools/list", (await session.list_tools()).model_dump_json()))
        for server, tool in CALLED:
            for sdk in (False, True):
                answer = await dumped_call(session, f"{server}__{tool}", {}, sdk=sdk)
                answers.append((f"/mcp/all call {server}__{tool} (sdk={sdk})", answer))
    for server, tool in CALLED:
        response = await proxy.post("/api/v1/tools/call", json={"name": f"{server}:{tool}", "args": {}})
        answers.append((f"POST /api/v1/tools/call {server}:{tool}", response.text))
    return answers


async def test_a_secret_planted_in_every_kind_of_field_shows_in_no_output(tmp_path: Path) -> None:
    value = {
        role: planted(role)
        for role in (
            "KENV",
            "KHEADER",
            "KQUERY",
            "KUSER",
            "LHEADER",
            "LENV",
            "LQUERY",
            "LPASS",
            "LOAUTH",
            "LARG",
        )
    }
    with http_upstream() as (url, _server):
        base = url.removesuffix("/mcp")
        host = base.removeprefix("http://")
        servers: list[dict[str, Any]] = [
            {  # stored secrets referenced from a header, the URL query and the URL userinfo
                "name": "remote-ref",
                "url": f"http://bot:${{keyring:k_user}}@{host}/mcp?api_key=${{keyring:k_query}}&page=1",
                "protocol": "http",
                "headers": {"X-Api-Key": "${keyring:k_header}", "X-Trace": "on"},
            },
            {  # literal secrets: a sensitive header, a sensitive query value
                "name": "remote-literal",
                "url": f"{base}/mcp?token={value['LQUERY']}",
                "protocol": "http",
                "headers": {"Authorization": f"Bearer {value['LHEADER']}"},
            },
            {  # a literal URL password on an upstream that answers 404
                "name": "broken",
                "url": f"http://user:{value['LPASS']}@{host}/nothing-here",
                "protocol": "http",
            },
            echo_server(  # a stored secret and a literal one in the environment, which whoami echoes
                "echo",
                env={
                    "API_TOKEN": "${keyring:k_env}",
                    "DB_PASSWORD": value["LENV"],
                    "ECHO_SERVER_REPORT_ENV": "API_TOKEN,DB_PASSWORD",
                },
            ),
            {  # quarantined, as a reviewer inspects it: a secret argument, a known value under a neutral name
                **echo_server("held", env={"MYVAR": value["LENV"], "SERVICE_TOKEN": "${keyring:k_env}"}),
                "args": [str(SERVERS / "echo_server.py"), f"--api-key={value['LARG']}"],
                "quarantined": True,
            },
        ]
        # Added once the secrets are stored: an OAuth client secret, and a stored value under a
        # neutral header name (never started).
        parked = {
            "name": "parked",
            "url": f"{base}/mcp",
            "protocol": "http",
            "enabled": False,
            "oauth": {"client_id": "proxy-client", "client_secret": value["LOAUTH"]},
            "headers": {"X-Custom": value["KHEADER"]},
        }
        names = [str(server["name"]) for server in [*servers, parked]]
        async with running_proxy(tmp_path, servers) as proxy, captured_events(proxy) as events:
            for name, role in (
                ("k_user", "KUSER"),
                ("k_query", "KQUERY"),
                ("k_header", "KHEADER"),
                ("k_env", "KENV"),
            ):
                await store_secret(proxy, name, value[role])
            for name in ("remote-ref", "remote-literal", "echo"):
                await proxy.wait_for(name, "running")
            added = await proxy.post("/api/v1/servers", json=parked)
            assert added.status_code == 201, added.text
            outputs = [("POST /api/v1/servers", added.text)]
            broken = await proxy.wait_for("broken", "backoff")
            assert "HTTP 404 Not Found" in broken["last_error"]
            outputs += await mcp_answers(proxy, names)
            outputs += await rest_answers(proxy, names)
            outputs += await cli_answers(proxy, names)
            outputs += [
                (f"mcpproxy {' '.join(args)}", await run_cli(proxy, *args))
                for args in (("secrets", "list"), ("activity", "list"))
            ]
            outputs += command_lines()
        outputs += [("/events", "\n".join(events)), ("serve log", (tmp_path / "proxy.log").read_text())]
        outputs += files_under(proxy.data_dir)
    assert_nothing_leaked(outputs, value.values())
    # The values did reach the upstreams: their echoes came back scrubbed.
    echoed = dict(outputs)
    whoami = json.loads(json.loads(echoed["/mcp call echo:whoami (sdk=False)"])["content"][0]["text"])
    assert whoami["env"] == {"API_TOKEN": SCRUBBED, "DB_PASSWORD": SCRUBBED}
    headers = json.loads(
        json.loads(echoed["/mcp/all call remote-ref__headers (sdk=True)"])["content"][0]["text"]
    )
    assert headers["x-api-key"] == SCRUBBED
    request_url = json.loads(echoed["/mcp call remote-literal:request_url (sdk=True)"])["content"][0]["text"]
    assert request_url.endswith(f"/mcp?token={SCRUBBED}")
