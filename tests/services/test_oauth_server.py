"""Our OAuth test server (tests/servers/oauth_server.py) walked through by hand over HTTP: discovery,
registration, consent, PKCE, tokens, MCP calls, refresh rotation, expiry and revocation; and once
by the MCP SDK's own OAuth client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import mcp.types as types
import trio
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.proxyctl import free_port

OAUTH_SERVER: Final = Path(__file__).resolve().parents[1] / "servers" / "oauth_server.py"
PRE_ID: Final = "preregistered"
PRE_SECRET: Final = "preregistered-secret"
SCOPE: Final = "mcp:read mcp:write"
# Start-up is imports (mcp, authlib, starlette) and a bind: about a second; the margin is for loaded hosts.
START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
STEP_TIMEOUT_S: Final = 20.0


@dataclass(frozen=True)
class OAuthServer:
    base_url: str
    log_path: Path

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def challenge(self) -> str:
        return f'Bearer resource_metadata="{self.base_url}/.well-known/oauth-protected-resource/mcp"'


@asynccontextmanager
async def running_oauth_server(tmp_path: Path, *flags: str, port: int = 0) -> AsyncIterator[OAuthServer]:
    """Start the server; yield once it prints its ready line; SIGTERM it (then SIGKILL its group)."""
    log_path = tmp_path / "oauth_server.log"
    with log_path.open("wb") as log:
        process = await trio.lowlevel.open_process(
            [sys.executable, str(OAUTH_SERVER), "--port", str(port), *flags],
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    assert process.stdout is not None
    try:
        line = b""
        with trio.fail_after(START_TIMEOUT_S):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, f"oauth_server exited before ready:\n{log_path.read_text()}"
                line += chunk
        ready, _, base_url = line.decode().strip().partition(" ")
        assert ready == "ready", line
        yield OAuthServer(base_url, log_path)
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            with trio.move_on_after(STOP_TIMEOUT_S):
                await process.wait()
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            await process.stdout.aclose()


def new_pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def loopback_redirect(port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or free_port()}/oauth/callback"


class ConsentForm(HTMLParser):
    """The consent page's form: where it posts, its hidden fields, and its buttons."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.method = self.action = ""
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, str] = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.method, self.action = attr["method"], attr["action"]
        elif tag == "input" and attr.get("type") == "hidden":
            self.fields[attr["name"]] = attr["value"]
        elif tag == "button":
            self.buttons[attr["value"]] = attr["name"]


def query_of(response: httpx2.Response) -> dict[str, str]:
    assert response.status_code == 302, (response.status_code, response.text)
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


async def consent(http: httpx2.AsyncClient, authorize_url: str, decision: str = "allow") -> httpx2.Response:
    """What a person does in the browser, headless: open the page, press a button."""
    page = await http.get(authorize_url)
    assert page.status_code == 200, page.text
    form = ConsentForm(page.text)
    assert (form.method, form.action) == ("post", "/authorize")
    return await http.post(
        authorize_url.split("?")[0], data={**form.fields, form.buttons[decision]: decision}
    )


def authorize_url(
    server: OAuthServer, client_id: str, redirect_uri: str, challenge: str, **extra: str
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": "state-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": server.mcp_url,
        **extra,
    }
    return f"{server.base_url}/authorize?{urlencode({k: v for k, v in params.items() if v != ''})}"


@dataclass
class Authorized:
    code: str
    verifier: str
    redirect_uri: str


async def authorize(
    http: httpx2.AsyncClient, server: OAuthServer, client_id: str, redirect_uri: str | None = None
) -> Authorized:
    redirect_uri = redirect_uri or loopback_redirect()
    verifier, challenge = new_pkce()
    params = query_of(await consent(http, authorize_url(server, client_id, redirect_uri, challenge)))
    assert params["state"] == "state-123"
    assert params["iss"] == server.base_url
    return Authorized(params["code"], verifier, redirect_uri)


async def exchange(
    http: httpx2.AsyncClient, server: OAuthServer, client_id: str, granted: Authorized, **extra: Any
) -> httpx2.Response:
    auth = extra.pop("auth", None)
    data = {
        "grant_type": "authorization_code",
        "code": granted.code,
        "redirect_uri": granted.redirect_uri,
        "client_id": client_id,
        "code_verifier": granted.verifier,
        "resource": server.mcp_url,
        **extra,
    }
    kwargs = {"auth": auth} if auth else {}
    return await http.post(f"{server.base_url}/token", data={k: v for k, v in data.items() if v}, **kwargs)


async def refresh(
    http: httpx2.AsyncClient, server: OAuthServer, client_id: str, refresh_token: str, **extra: str
) -> httpx2.Response:
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "resource": server.mcp_url,
        **extra,
    }
    return await http.post(f"{server.base_url}/token", data={k: v for k, v in data.items() if v})


async def register_public(http: httpx2.AsyncClient, server: OAuthServer) -> str:
    response = await http.post(
        f"{server.base_url}/register",
        json={
            "redirect_uris": [loopback_redirect(4000)],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "test client",
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


async def tokens_for_public_client(
    http: httpx2.AsyncClient, server: OAuthServer
) -> tuple[str, dict[str, Any]]:
    client_id = await register_public(http, server)
    response = await exchange(http, server, client_id, await authorize(http, server, client_id))
    assert response.status_code == 200, response.text
    return client_id, response.json()


async def mcp_answer(server: OAuthServer, token: str | None) -> httpx2.Response:
    """One raw MCP initialize POST, to see whether the bearer check lets it through."""
    headers = {"Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    async with httpx2.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
        return await http.post(server.mcp_url, json=body, headers=headers)


async def admin(server: OAuthServer, method: str, path: str) -> Any:
    async with httpx2.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
        response = await http.request(method, f"{server.base_url}/admin/{path}")
    response.raise_for_status()
    return response.json()


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


@asynccontextmanager
async def open_mcp(server: OAuthServer, **http_kwargs: Any) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(timeout=STEP_TIMEOUT_S, **http_kwargs) as http,
        streamable_http_client(server.mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        with trio.fail_after(STEP_TIMEOUT_S):
            await session.initialize()
        yield session


async def test_metadata_describes_endpoints_pkce_s256_and_the_issuer_parameter(tmp_path: Path) -> None:
    port = free_port()
    async with running_oauth_server(tmp_path, port=port) as server, httpx2.AsyncClient() as http:
        issuer = f"http://127.0.0.1:{port}"
        assert server.base_url == issuer
        with trio.fail_after(STEP_TIMEOUT_S):
            metadata = (await http.get(f"{issuer}/.well-known/oauth-authorization-server")).json()
            path_prm = (await http.get(f"{issuer}/.well-known/oauth-protected-resource/mcp")).json()
            root_prm = (await http.get(f"{issuer}/.well-known/oauth-protected-resource")).json()
    methods = ["none", "client_secret_post", "client_secret_basic"]
    assert metadata == {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "registration_endpoint": f"{issuer}/register",
        "revocation_endpoint": f"{issuer}/revoke",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": ["mcp:read", "mcp:write"],
        "authorization_response_iss_parameter_supported": True,
    }
    assert path_prm == root_prm
    assert path_prm["resource"] == f"{issuer}/mcp"
    assert path_prm["authorization_servers"] == [issuer]
    assert path_prm["scopes_supported"] == ["mcp:read", "mcp:write"]
    assert path_prm["bearer_methods_supported"] == ["header"]


async def test_no_s256_and_no_registration_flags_drop_those_from_the_metadata(tmp_path: Path) -> None:
    async with (
        running_oauth_server(tmp_path, "--no-s256", "--no-registration") as server,
        httpx2.AsyncClient() as http,
    ):
        with trio.fail_after(STEP_TIMEOUT_S):
            metadata = (await http.get(f"{server.base_url}/.well-known/oauth-authorization-server")).json()
            registration = await http.post(f"{server.base_url}/register", json={"redirect_uris": []})
            # The server itself still insists on S256.
            _, challenge = new_pkce()
            url = authorize_url(server, PRE_ID, loopback_redirect(), challenge, code_challenge_method="plain")
            plain = await http.get(url)
    assert "code_challenge_methods_supported" not in metadata
    assert "registration_endpoint" not in metadata
    assert registration.status_code == 404
    assert query_of(plain)["error"] == "invalid_request"


async def test_mcp_without_a_valid_token_gets_the_resource_metadata_challenge(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server:
        with trio.fail_after(STEP_TIMEOUT_S):
            bare = await mcp_answer(server, None)
            unknown = await mcp_answer(server, "not-a-token")
            async with httpx2.AsyncClient() as http:
                basic = await http.post(server.mcp_url, json={}, auth=(PRE_ID, PRE_SECRET))
            stats = await admin(server, "GET", "stats")
    assert bare.status_code == basic.status_code == unknown.status_code == 401
    assert bare.headers["www-authenticate"] == server.challenge
    assert basic.headers["www-authenticate"] == server.challenge  # RFC 6750 §3.1: no error code
    assert unknown.headers["www-authenticate"].startswith(f'{server.challenge}, error="invalid_token"')
    assert stats["mcp_requests_rejected"] == 3
    assert stats["mcp_requests_authorized"] == 0


async def test_a_registered_public_client_walks_the_whole_flow_and_calls_tools(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        with trio.fail_after(STEP_TIMEOUT_S):
            registered = await http.post(
                f"{server.base_url}/register",
                json={
                    "redirect_uris": [loopback_redirect(4000)],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "client_name": "walker",
                },
            )
            client_id = registered.json()["client_id"]
            redirect_uri = loopback_redirect()  # another port than registered: RFC 8252 §7.3
            verifier, challenge = new_pkce()
            url = authorize_url(server, client_id, redirect_uri, challenge)
            page = await http.get(url)
            form = ConsentForm(page.text)
            answer = await http.post(f"{server.base_url}/authorize", data={**form.fields, "consent": "allow"})
            params = query_of(answer)
            granted = Authorized(params["code"], verifier, redirect_uri)
            tokens = await exchange(http, server, client_id, granted)
        body = tokens.json()
        with trio.fail_after(STEP_TIMEOUT_S):
            bearer = {"Authorization": f"Bearer {body['access_token']}"}
            async with open_mcp(server, headers=bearer) as session:
                listed = await session.list_tools()
                echoed = await session.call_tool("echo", {"text": "hello"})
                who = await session.call_tool("whoami", {})
            stats = await admin(server, "GET", "stats")
            issued = await admin(server, "GET", "tokens")

    assert registered.status_code == 201
    assert "client_secret" not in registered.json()
    assert page.status_code == 200
    assert 'value="allow"' in page.text
    assert form.fields == {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": "state-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": server.mcp_url,
    }
    assert answer.headers["location"].startswith(f"{redirect_uri}?")
    assert params["state"] == "state-123"
    assert params["iss"] == server.base_url
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == SCOPE
    assert body["refresh_token"]
    assert {tool.name for tool in listed.tools} == {"echo", "whoami"}
    assert text_of(echoed) == "hello"
    assert json.loads(text_of(who)) == {"client_id": client_id, "scope": SCOPE}
    assert who.structured_content == {"client_id": client_id, "scope": SCOPE}
    assert stats["registrations"] == 1
    assert stats["authorizations"] == 1
    assert stats["token_requests"] == {"authorization_code": 1, "refresh_token": 0}
    assert stats["mcp_requests_authorized"] >= 3
    assert set(issued) == {body["access_token"], body["refresh_token"]}
    log = server.log_path.read_text()
    assert "issued tokens" in log
    assert not [value for value in [*issued, granted.code] if value in log]


async def test_confidential_clients_authenticate_with_basic_or_post_and_not_without_a_secret(
    tmp_path: Path,
) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        with trio.fail_after(STEP_TIMEOUT_S):
            registered = (
                await http.post(
                    f"{server.base_url}/register", json={"redirect_uris": [loopback_redirect(4000)]}
                )
            ).json()
            client_id, secret = registered["client_id"], registered["client_secret"]
            granted = await authorize(http, server, client_id)
            no_secret = await exchange(http, server, client_id, granted)
            basic = await exchange(http, server, client_id, granted, auth=(client_id, secret))
            # The pre-registered client, from two loopback ports, once by POST and once by Basic.
            first = await authorize(http, server, PRE_ID, loopback_redirect())
            by_post = await exchange(http, server, PRE_ID, first, client_secret=PRE_SECRET)
            second = await authorize(http, server, PRE_ID, loopback_redirect())
            by_basic = await exchange(http, server, PRE_ID, second, auth=(PRE_ID, PRE_SECRET))
            wrong = await exchange(
                http, server, PRE_ID, await authorize(http, server, PRE_ID), client_secret="wrong"
            )
    assert registered["token_endpoint_auth_method"] == "client_secret_basic"
    assert no_secret.status_code in (400, 401)
    assert no_secret.json()["error"] == "invalid_client"
    assert basic.status_code == 200, basic.text
    # RFC 7591's default grant_types is authorization_code alone: no refresh token.
    assert "refresh_token" not in basic.json()
    assert by_post.status_code == by_basic.status_code == 200
    assert by_post.json()["refresh_token"]
    assert wrong.json()["error"] == "invalid_client"


async def test_redirect_uris_that_are_not_registered_get_a_400_page_and_no_redirect(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        _, challenge = new_pkce()
        with trio.fail_after(STEP_TIMEOUT_S):
            answers = [
                await http.get(authorize_url(server, PRE_ID, redirect, challenge))
                for redirect in (
                    "http://evil.example:8080/oauth/callback",
                    "http://127.0.0.1:5000/other/callback",
                    "https://127.0.0.1:5000/oauth/callback",
                )
            ]
            unknown_client = await http.get(authorize_url(server, "nobody", loopback_redirect(), challenge))
            bad_registration = await http.post(
                f"{server.base_url}/register", json={"redirect_uris": ["http://evil.example/cb"]}
            )
    for answer in [*answers, unknown_client]:
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert answer.headers["content-type"].startswith("text/html")
    assert bad_registration.status_code == 400
    assert bad_registration.json()["error"] == "invalid_redirect_uri"


async def test_refresh_rotates_and_the_old_refresh_token_is_refused(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        with trio.fail_after(STEP_TIMEOUT_S):
            client_id, first = await tokens_for_public_client(http, server)
            rotated = await refresh(http, server, client_id, first["refresh_token"])
            replayed = await refresh(http, server, client_id, first["refresh_token"])
            again = await refresh(http, server, client_id, rotated.json()["refresh_token"])
            works = await mcp_answer(server, again.json()["access_token"])
            stats = await admin(server, "GET", "stats")
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == SCOPE
    assert second["expires_in"] == 3600
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_grant"
    assert again.status_code == 200
    assert works.status_code == 200
    assert stats["token_requests"] == {"authorization_code": 1, "refresh_token": 3}
    assert stats["refresh_failures"] == 1


async def test_expired_access_tokens_are_refused_until_refreshed_and_token_ttl_sets_expires_in(
    tmp_path: Path,
) -> None:
    async with running_oauth_server(tmp_path, "--token-ttl", "1234") as server, httpx2.AsyncClient() as http:
        with trio.fail_after(STEP_TIMEOUT_S):
            client_id, tokens = await tokens_for_public_client(http, server)
            before = await mcp_answer(server, tokens["access_token"])
            expired = await admin(server, "POST", "expire-all")
            after = await mcp_answer(server, tokens["access_token"])
            renewed = (await refresh(http, server, client_id, tokens["refresh_token"])).json()
            renewed_answer = await mcp_answer(server, renewed["access_token"])
    assert tokens["expires_in"] == 1234
    assert before.status_code == 200
    assert expired == {"expired": 1}
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["www-authenticate"]
    assert "expired" in after.headers["www-authenticate"]
    assert renewed["expires_in"] == 1234
    assert renewed_answer.status_code == 200


async def test_revoke_all_makes_mcp_answer_401_and_refresh_fail(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        with trio.fail_after(STEP_TIMEOUT_S):
            client_id, tokens = await tokens_for_public_client(http, server)
            async with open_mcp(
                server, headers={"Authorization": f"Bearer {tokens['access_token']}"}
            ) as session:
                assert text_of(await session.call_tool("echo", {"text": "before"})) == "before"
                await admin(server, "POST", "revoke-all")
            after = await mcp_answer(server, tokens["access_token"])
            refreshed = await refresh(http, server, client_id, tokens["refresh_token"])
            stats = await admin(server, "GET", "stats")
    assert after.status_code == 401
    assert after.headers["www-authenticate"].startswith(f'{server.challenge}, error="invalid_token"')
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert stats["refresh_failures"] == 1


async def test_rfc7009_revocation_of_access_and_refresh_tokens(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        revoke = f"{server.base_url}/revoke"
        with trio.fail_after(STEP_TIMEOUT_S):
            client_id, tokens = await tokens_for_public_client(http, server)
            access_revoked = await http.post(
                revoke, data={"token": tokens["access_token"], "client_id": client_id}
            )
            access_answer = await mcp_answer(server, tokens["access_token"])
            renewed = (await refresh(http, server, client_id, tokens["refresh_token"])).json()
            refresh_revoked = await http.post(
                revoke,
                data={
                    "token": renewed["refresh_token"],
                    "token_type_hint": "refresh_token",
                    "client_id": client_id,
                },
            )
            # Revoking the refresh token kills the access tokens of its grant too (RFC 7009 §2.1).
            renewed_answer = await mcp_answer(server, renewed["access_token"])
            refused = await refresh(http, server, client_id, renewed["refresh_token"])
            unknown = await http.post(revoke, data={"token": "no-such-token", "client_id": client_id})
            anonymous = await http.post(revoke, data={"token": renewed["access_token"]})
    assert access_revoked.status_code == 200
    assert access_answer.status_code == 401
    assert "access_token" in renewed
    assert refresh_revoked.status_code == 200
    assert renewed_answer.status_code == 401
    assert refused.json()["error"] == "invalid_grant"
    assert unknown.status_code == 200  # RFC 7009 §2.2: an unknown token is not an error
    assert anonymous.json()["error"] == "invalid_client"


async def test_a_wrong_or_missing_pkce_verifier_is_refused(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        with trio.fail_after(STEP_TIMEOUT_S):
            client_id = await register_public(http, server)
            granted = await authorize(http, server, client_id)
            wrong_verifier, _ = new_pkce()
            wrong = await exchange(http, server, client_id, granted, code_verifier=wrong_verifier)
            missing = await exchange(http, server, client_id, granted, code_verifier="")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def test_authorization_requests_without_an_s256_challenge_are_refused_by_redirect(
    tmp_path: Path,
) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        redirect = loopback_redirect()
        _, challenge = new_pkce()
        with trio.fail_after(STEP_TIMEOUT_S):
            answers = [
                await http.get(authorize_url(server, PRE_ID, redirect, challenge, **extra))
                for extra in (
                    {"code_challenge": "", "code_challenge_method": ""},
                    {"code_challenge_method": ""},
                    {"code_challenge_method": "plain"},
                )
            ]
    for answer in answers:
        params = query_of(answer)
        assert answer.headers["location"].startswith(f"{redirect}?")
        assert params["error"] == "invalid_request"
        assert params["state"] == "state-123"
        assert params["iss"] == server.base_url
        assert "code" not in params


async def test_a_wrong_or_missing_resource_is_refused_with_invalid_target(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        _, challenge = new_pkce()
        other = f"{server.base_url}/other"
        with trio.fail_after(STEP_TIMEOUT_S):
            at_authorize = [
                await http.get(
                    authorize_url(server, PRE_ID, loopback_redirect(), challenge, resource=resource)
                )
                for resource in (other, "")
            ]
            client_id = await register_public(http, server)
            granted = await authorize(http, server, client_id)
            at_token = [await exchange(http, server, client_id, granted, resource=other)]
            good = (await exchange(http, server, client_id, granted)).json()
            at_refresh = [
                await refresh(http, server, client_id, good["refresh_token"], resource=resource)
                for resource in (other, "")
            ]
            still_good = await refresh(http, server, client_id, good["refresh_token"])
    for answer in at_authorize:
        assert query_of(answer)["error"] == "invalid_target"
    for answer in [*at_token, *at_refresh]:
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_target"
    assert "access_token" in good
    assert still_good.status_code == 200


async def test_an_authorization_code_is_single_use_and_reusing_it_revokes_its_tokens(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        with trio.fail_after(STEP_TIMEOUT_S):
            client_id = await register_public(http, server)
            granted = await authorize(http, server, client_id)
            first = await exchange(http, server, client_id, granted)
            second = await exchange(http, server, client_id, granted)
            answer = await mcp_answer(server, first.json()["access_token"])
    assert first.status_code == 200
    assert second.json()["error"] == "invalid_grant"
    assert answer.status_code == 401


async def test_denied_consent_redirects_with_access_denied(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server, httpx2.AsyncClient() as http:
        _, challenge = new_pkce()
        redirect = loopback_redirect()
        with trio.fail_after(STEP_TIMEOUT_S):
            denied = await consent(http, authorize_url(server, PRE_ID, redirect, challenge), decision="deny")
            stats = await admin(server, "GET", "stats")
    params = query_of(denied)
    assert denied.headers["location"].startswith(f"{redirect}?")
    assert (params["error"], params["state"], params["iss"]) == (
        "access_denied",
        "state-123",
        server.base_url,
    )
    assert "code" not in params
    assert stats["authorizations"] == 0


@dataclass
class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


async def test_the_sdk_oauth_client_discovers_registers_consents_and_calls_tools(tmp_path: Path) -> None:
    async with running_oauth_server(tmp_path) as server:
        storage = MemoryStorage()
        redirected: dict[str, str] = {}

        async def on_redirect(url: str) -> None:
            async with httpx2.AsyncClient(timeout=STEP_TIMEOUT_S) as http:
                redirected.update(query_of(await consent(http, url)))

        async def on_callback() -> AuthorizationCodeResult:
            return AuthorizationCodeResult(
                code=redirected["code"], state=redirected.get("state"), iss=redirected.get("iss")
            )

        provider = OAuthClientProvider(
            server.mcp_url,
            OAuthClientMetadata(
                redirect_uris=[loopback_redirect()],  # type: ignore[list-item]
                client_name="sdk client",
                grant_types=["authorization_code", "refresh_token"],
                token_endpoint_auth_method="none",
            ),
            storage,
            redirect_handler=on_redirect,
            callback_handler=on_callback,
        )
        with trio.fail_after(STEP_TIMEOUT_S):
            async with open_mcp(server, auth=provider) as session:
                who = await session.call_tool("whoami", {})
            stats = await admin(server, "GET", "stats")
    assert storage.client_info is not None
    assert storage.tokens is not None
    assert storage.tokens.refresh_token
    assert who.structured_content == {"client_id": storage.client_info.client_id, "scope": SCOPE}
    assert stats["registrations"] == 1
    assert stats["token_requests"]["authorization_code"] == 1
