"""OAuth upstreams end to end: a real authorization server, a real proxy, a person simulated over HTTP.

tests/servers/oauth_server.py is an authorization server assembled from
authlib's server components (registration, authorization code + PKCE S256,
refresh with rotation, revocation) in front of an MCP server that accepts
only its tokens. The "person" follows the authorization URL with an HTTP
client and presses Allow on the consent page; the redirect then reaches the
proxy's loopback callback listener, as a browser's would.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp.types as types
import pytest
import trio

from services.secrets import SecretStore
from tests.proxyctl import PYTHON, Proxy, running_proxy, start_authorization_server, stop_process

pytestmark = pytest.mark.system

CLI = str(Path(PYTHON).parent / "mcpproxy")
WAIT_S = 60.0
HIDDEN_FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@asynccontextmanager
async def authorization_server(*flags: str, token_ttl: int = 3600) -> AsyncIterator[str]:
    """Run oauth_server.py; yield its base URL."""
    with trio.fail_after(30):
        process, base = await trio.to_thread.run_sync(
            start_authorization_server, *flags, f"--token-ttl={token_ttl}"
        )
    try:
        yield base
    finally:
        stop_process(process)


def oauth_server_entry(base: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "guarded",
        "url": f"{base}/mcp",
        "protocol": "http",
        "oauth": {"scopes": ["mcp:read"]},
        "health_check_interval": "1s",
        **extra,
    }


async def consent(authorization_url: str, choice: str = "allow") -> httpx2.Response:
    """What a person does in the browser: open the URL, press the button, follow the redirect home."""
    async with httpx2.AsyncClient(timeout=20.0, follow_redirects=False) as client:
        page = await client.get(authorization_url)
        assert page.status_code == 200, page.text
        fields = {name: html.unescape(value) for name, value in HIDDEN_FIELD.findall(page.text)}
        answer = await client.post(authorization_url.split("?", 1)[0], data={**fields, "consent": choice})
        assert answer.status_code == 302, answer.text
        return await client.get(answer.headers["location"])  # the proxy's loopback callback


async def login(proxy: Proxy, name: str = "guarded") -> str:
    response = await proxy.post(f"/api/v1/servers/{name}/login", timeout=60.0)
    assert response.status_code == 200, response.text
    url = response.json()["data"]["authorization_url"]
    assert url
    return str(url)


async def stats(base: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(timeout=10.0) as client:
        return dict((await client.get(f"{base}/admin/stats")).json())


async def admin(base: str, action: str) -> None:
    async with httpx2.AsyncClient(timeout=10.0) as client:
        (await client.post(f"{base}/admin/{action}")).raise_for_status()


async def echo(proxy: Proxy, text: str) -> types.CallToolResult:
    async with proxy.mcp("/mcp/all") as session:
        with trio.fail_after(WAIT_S):
            return await session.call_tool("guarded__echo", {"text": text})


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def issued_tokens(base: str) -> list[str]:
    async with httpx2.AsyncClient(timeout=10.0) as client:
        tokens = (await client.get(f"{base}/admin/tokens")).json()
    assert tokens
    return [str(t) for t in tokens]


def leaks(tokens: list[str], root: Path, texts: list[str]) -> list[str]:
    """Every file under `root`, every text given and every process's argv: where a token shows up."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}" for t in tokens if t.encode() in data]
    for index, text in enumerate(texts):
        found += [f"text {index}" for t in tokens if t in text]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            found += [f"argv of pid {entry.name}" for t in tokens if t.encode() in argv]
    return found


async def test_sign_in_refresh_restart_revoke_and_no_token_anywhere(tmp_path: Path) -> None:
    async with authorization_server(token_ttl=4) as base:
        servers = [oauth_server_entry(base)]
        async with running_proxy(tmp_path, servers, secrets_backend="file") as proxy:
            # Unattended, with no tokens: it waits for a person, and does not retry in a loop.
            waiting = await proxy.wait_for("guarded", "needs_login", timeout_s=WAIT_S)
            assert waiting["action"] == "login" and waiting["oauth"] is True
            assert "mcpproxy auth login guarded" in waiting["last_error"]
            rejected = (await stats(base))["mcp_requests_rejected"]
            await trio.sleep(3)  # three health-check intervals: nothing may knock meanwhile
            assert (await stats(base))["mcp_requests_rejected"] == rejected
            assert (await proxy.servers())["guarded"]["restarts"] == 0

            # A person signs in: registration, PKCE, consent, the callback; then it connects.
            callback = await consent(await login(proxy))
            assert callback.status_code == 200 and "signed in to guarded" in callback.text
            running = await proxy.wait_for("guarded", "running", timeout_s=WAIT_S, signed_in=True)
            assert running["action"] is None
            assert text_of(await echo(proxy, "first")) == "first"
            first = await stats(base)
            assert first["registrations"] == 1 and first["token_requests"]["authorization_code"] == 1

            # Tokens live 4 s: the proxy refreshes ahead of expiry and calls keep working.
            with trio.fail_after(WAIT_S):
                while (await stats(base))["token_requests"]["refresh_token"] < 2:
                    await trio.sleep(0.2)
            assert text_of(await echo(proxy, "after refresh")) == "after refresh"
            # A token the server drops early (401): refreshed on the spot, the call still succeeds.
            await admin(base, "expire-all")
            assert text_of(await echo(proxy, "after expiry")) == "after expiry"
            assert (await proxy.servers())["guarded"]["state"] == "running"
            seen = [
                (await proxy.get("/api/v1/servers")).text,
                (await proxy.get("/api/v1/config")).text,
                (await proxy.get("/api/v1/activity")).text,
                (await proxy.get("/api/v1/servers/guarded/logs")).text,
            ]

        # Restart: still signed in, no person needed.
        async with running_proxy(tmp_path, servers, secrets_backend="file") as proxy:
            await proxy.wait_for("guarded", "running", timeout_s=WAIT_S, signed_in=True)
            assert text_of(await echo(proxy, "after restart")) == "after restart"
            assert (await stats(base))["authorizations"] == 1

            # The person revokes the app's grant at the provider: the proxy asks for a sign-in again.
            await admin(base, "revoke-all")
            revoked = await proxy.wait_for("guarded", "needs_login", timeout_s=WAIT_S)
            assert revoked["action"] == "login"
            seen.append((await proxy.get("/api/v1/servers")).text)
            seen.append((await proxy.get("/api/v1/activity")).text)

        # No token in any file (config, logs, activity, the encrypted store), response or argv.
        tokens = await issued_tokens(base)
        assert leaks(tokens, tmp_path, seen) == []


async def test_cli_login_status_logout_and_a_declined_sign_in(tmp_path: Path) -> None:
    async with authorization_server() as base:
        # A confidential client whose secret is a keyring reference, stored before the proxy starts.
        SecretStore(tmp_path / "data", "file").set_sync("as_secret", "preregistered-secret")
        oauth = {"client_id": "preregistered", "client_secret": "${keyring:as_secret}"}
        servers = [oauth_server_entry(base, oauth=oauth)]
        async with running_proxy(tmp_path, servers, secrets_backend="file") as proxy:
            await proxy.wait_for("guarded", "needs_login", timeout_s=WAIT_S)
            target = ["--config", str(proxy.config_path), "--url", proxy.base_url]

            doctor = await run_cli("doctor", *target)
            assert "needs login" in doctor.stdout and "mcpproxy auth login guarded" in doctor.stdout

            status = await run_cli("auth", "status", "-o", "json", *target)
            assert json.loads(status.stdout) == [
                {
                    "name": "guarded",
                    "state": "needs_login",
                    "oauth": True,
                    "signed_in": False,
                    "action": "login",
                    "last_error": status_error(status.stdout),
                }
            ]

            # A declined consent: the server goes back to needs_login with the reason; the CLI fails.
            declined = await cli_login(target, choice="deny")
            assert declined.returncode == 1, declined
            assert "access_denied" in declined.stderr
            await proxy.wait_for("guarded", "needs_login", timeout_s=WAIT_S)

            # The configured client (no registration) signs in through the CLI, headless.
            done = await cli_login(target, choice="allow")
            assert done.returncode == 0, done
            assert "guarded: signed in and connected" in done.stdout
            assert (await stats(base))["registrations"] == 0
            assert text_of(await echo(proxy, "cli")) == "cli"

            table = await run_cli("auth", "status", *target)
            assert "guarded" in table.stdout and "yes" in table.stdout

            out = await run_cli("auth", "logout", "guarded", *target)
            assert out.returncode == 0 and "signed out" in out.stdout
            await proxy.wait_for("guarded", "needs_login", timeout_s=WAIT_S)

            unknown = await run_cli("auth", "login", "nope", *target)
            assert unknown.returncode == 4, unknown
            shown = [(await proxy.get(path)).text for path in ("/api/v1/servers", "/api/v1/config")]
        secret_and_tokens = ["preregistered-secret", *await issued_tokens(base)]
        assert leaks(secret_and_tokens, tmp_path, shown) == []


async def test_a_server_without_pkce_s256_is_refused(tmp_path: Path) -> None:
    async with authorization_server("--no-s256") as base:
        async with running_proxy(tmp_path, [oauth_server_entry(base)], secrets_backend="file") as proxy:
            await proxy.wait_for("guarded", "needs_login", timeout_s=WAIT_S)
            response = await proxy.post("/api/v1/servers/guarded/login", timeout=60.0)
            assert response.status_code == 400
            assert "PKCE S256" in response.json()["error"]
            refused = await proxy.wait_for("guarded", "needs_login", timeout_s=WAIT_S)
            assert "PKCE S256" in refused["last_error"]
            assert (await stats(base))["authorizations"] == 0


def status_error(stdout: str) -> Any:
    return json.loads(stdout)[0]["last_error"]


async def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    with trio.fail_after(WAIT_S):
        done = await trio.run_process(
            [CLI, *argv], capture_stdout=True, capture_stderr=True, check=False, stdin=b""
        )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


async def cli_login(target: list[str], choice: str) -> subprocess.CompletedProcess[str]:
    """`mcpproxy auth login guarded --no-browser`: read the URL it prints, act as the person, await it."""
    process = await trio.lowlevel.open_process(
        [CLI, "auth", "login", "guarded", "--no-browser", "--timeout", "60", *target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MCPPROXY_HEADLESS": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = b"", b""
    with trio.fail_after(WAIT_S):
        while b"\n" not in out:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, f"the CLI printed no URL: {err!r}"
            out += chunk
        url = out.split(b"\n", 1)[0].decode().strip()
        assert url.startswith("http://127.0.0.1:"), out
        await consent(url, choice)
        async with trio.open_nursery() as nursery:

            async def drain(stream: Any, sink: list[bytes]) -> None:
                while chunk := await stream.receive_some(4096):
                    sink.append(chunk)

            rest: list[bytes] = []
            errs: list[bytes] = []
            nursery.start_soon(drain, process.stdout, rest)
            nursery.start_soon(drain, process.stderr, errs)
            await process.wait()
    return subprocess.CompletedProcess(
        process.args, process.returncode, (out + b"".join(rest)).decode(), b"".join(errs).decode()
    )
