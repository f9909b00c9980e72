"""OAuth 2.1 sign-in for a remote upstream: the worker's side of `mcpproxy auth login`.

The mcp SDK's `OAuthClientProvider` (an httpx2 Auth) does the protocol work:
RFC 9728 discovery from the `WWW-Authenticate` challenge, RFC 8414 metadata,
RFC 7591 registration, PKCE S256 and the RFC 8707 `resource` parameter. This
module adds what a proxy needs around it:

- `SessionStore` keeps tokens, the registered client and the discovered
  metadata in the secrets store (keyring or encrypted file), never anywhere
  else, so a restarted worker can refresh without discovering again.
- `ProxyOAuth` has two modes. Unattended (every normal start) it refreshes
  ahead of expiry and once on a 401, and when only a person can help it raises
  `LoginRequiredError`: the server then waits in `needs_login` instead of
  retrying in a loop. Interactive (`spec.login`, a person asked to sign in) it
  runs the SDK's browser flow.
- `CallbackListener` is the loopback redirect target
  `http://127.0.0.1:<port>/oauth/callback`. The port comes from the config,
  else from the stored registration, else a free one chosen at the first
  sign-in; it is kept so a registered redirect URI stays valid.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx2
import trio
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER

from bus.errors import LoginRequiredError, UpstreamError
from bus.messages import UpstreamSpec
from services.config import LOGIN_TIMEOUT_S
from services.mcp_internals import OAuthProviderBase
from services.references import SCRUBBED
from services.secrets import SecretStore, oauth_record_names

logger = logging.getLogger(__name__)

REFRESH_AHEAD_S: Final = 60.0
"""Refresh this long before expiry (or a tenth of a short lifetime, whichever is less)."""
CALLBACK_PATH: Final = "/oauth/callback"
CLIENT_NAME: Final = "mcpproxy"
MAX_REQUEST_BYTES: Final = 16 * 1024


def login_hint(server: str) -> str:
    return f"sign-in required: run `mcpproxy auth login {server}` (or use Sign in in the Web UI)"


class SessionStore:
    """The SDK's `TokenStorage`, kept in the secrets store under names `secrets list` does not show."""

    def __init__(self, store: SecretStore | None, server: str, spec: UpstreamSpec) -> None:
        self.store = store
        self.server = server
        self.spec = spec
        self.tokens_name, self.client_name = oauth_record_names(server)
        self.saved: dict[str, Any] = {}
        """The last tokens record read or written: the token, when it was obtained, where it refreshes."""
        self.context_source: Callable[[], tuple[OAuthMetadata | None, ProtectedResourceMetadata | None]] = (
            lambda: (None, None)
        )
        self._memory: dict[str, str] = {}

    async def _get(self, name: str) -> dict[str, Any] | None:
        text = self._memory.get(name) if self.store is None else await self.store.get(name)
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            logger.warning("server %s: ignoring an unreadable %s record", self.server, name)
            return None
        return value if isinstance(value, dict) else None

    async def _set(self, name: str, value: dict[str, Any]) -> None:
        text = json.dumps(value)
        if self.store is None:
            self._memory[name] = text
        else:
            await self.store.set(name, text, indexed=False)

    async def get_tokens(self) -> OAuthToken | None:
        self.saved = await self._get(self.tokens_name) or {}
        token = self.saved.get("token")
        return OAuthToken.model_validate(token) if isinstance(token, dict) else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        metadata, resource = self.context_source()
        self.saved = {
            "token": tokens.model_dump(mode="json", exclude_none=True),
            "obtained_at": time.time(),
            "metadata": metadata.model_dump(mode="json", exclude_none=True) if metadata else None,
            "resource_metadata": resource.model_dump(mode="json", exclude_none=True) if resource else None,
        }
        await self._set(self.tokens_name, self.saved)

    async def forget_tokens(self) -> None:
        self.saved = {}
        if self.store is None:
            self._memory.pop(self.tokens_name, None)
        else:
            await self.store.delete(self.tokens_name)

    async def stored_client(self) -> OAuthClientInformationFull | None:
        record = await self._get(self.client_name)
        return OAuthClientInformationFull.model_validate(record) if record else None

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        stored = await self.stored_client()
        oauth = self.spec.oauth
        if oauth is None or not oauth.client_id:
            return stored
        # A configured client: its id and secret come from the config, only the redirect URI is kept.
        return OAuthClientInformationFull(
            client_id=oauth.client_id,
            client_secret=oauth.client_secret or None,
            redirect_uris=stored.redirect_uris if stored else None,
            token_endpoint_auth_method="client_secret_post" if oauth.client_secret else "none",
        )

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._set(self.client_name, client_info.model_dump(mode="json", exclude_none=True))

    async def remember_redirect(self, redirect_uri: str) -> None:
        """A configured client is never registered: keep its redirect URI so the port stays the same."""
        if await self._get(self.client_name) is None and self.spec.oauth and self.spec.oauth.client_id:
            await self._set(
                self.client_name, {"client_id": self.spec.oauth.client_id, "redirect_uris": [redirect_uri]}
            )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def choose_redirect_uri(spec: UpstreamSpec, sessions: SessionStore) -> str:
    """Config `redirect_port`, else the port of the stored registration, else a free one."""
    port = spec.oauth.redirect_port if spec.oauth is not None else None
    if port is None:
        stored = await sessions.stored_client()
        if stored is not None and stored.redirect_uris:
            port = urlsplit(str(stored.redirect_uris[0])).port
    return f"http://127.0.0.1:{port or free_port()}{CALLBACK_PATH}"


class CallbackListener:
    """A one-shot HTTP listener on the loopback interface that receives the authorization response."""

    def __init__(self, server: str, port: int) -> None:
        self.server = server
        self.port = port
        self.expected_state: str | None = None
        self._send, self._receive = trio.open_memory_channel[dict[str, str]](1)
        self._listeners: list[trio.SocketListener] = []
        self.answered = False

    async def open(self, nursery: trio.Nursery) -> None:
        try:
            self._listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        except OSError as exc:
            raise UpstreamError(
                f"cannot listen for the sign-in callback on 127.0.0.1:{self.port}: {exc.strerror}"
                " (set oauth.redirect_port to a free port)"
            ) from None
        nursery.start_soon(self._serve)

    async def _serve(self) -> None:
        try:
            listener = self._listeners[0]
            while not self.answered:
                stream = await listener.accept()
                async with stream:
                    await self._handle(stream)
        finally:
            for listener in self._listeners:
                await listener.aclose()

    async def _handle(self, stream: trio.SocketStream) -> None:
        request = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST_BYTES:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                request += chunk
        line = request.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        target = urlsplit(parts[1]) if len(parts) == 3 and parts[0] == "GET" else None
        if target is None or target.path != CALLBACK_PATH:
            await _respond(stream, 404, "Not found", "This address only receives mcpproxy sign-in callbacks.")
            return
        params = {key: values[0] for key, values in parse_qs(target.query).items()}
        if self.expected_state is not None and params.get("state") != self.expected_state:
            await _respond(
                stream, 400, "Unexpected sign-in response", "This is not the sign-in mcpproxy started."
            )
            return
        if "error" in params:
            await _respond(
                stream, 200, "Sign-in failed", f"{self.server}: {params['error']}. You can close this tab."
            )
        else:
            await _respond(
                stream, 200, "Signed in", f"mcpproxy is signed in to {self.server}. You can close this tab."
            )
        self.answered = True
        self._send.send_nowait(params)

    async def result(self) -> dict[str, str]:
        with trio.move_on_after(LOGIN_TIMEOUT_S):
            return await self._receive.receive()
        raise LoginRequiredError(f"sign-in was not completed within {LOGIN_TIMEOUT_S:g}s")


async def _respond(stream: trio.SocketStream, status: int, title: str, text: str) -> None:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(head + body)


class ProxyOAuth(OAuthProviderBase):
    """The SDK's provider with a proxy's two modes (see the module docstring)."""

    def __init__(
        self,
        spec: UpstreamSpec,
        sessions: SessionStore,
        redirect_uri: str,
        *,
        interactive: bool,
        on_login_url: Callable[[str], Awaitable[None]],
        nursery: trio.Nursery,
    ) -> None:
        assert spec.url is not None
        scopes = spec.oauth.scopes if spec.oauth is not None else []
        metadata = OAuthClientMetadata(
            client_name=CLIENT_NAME,
            redirect_uris=[redirect_uri],  # type: ignore[list-item]  # pydantic parses the string
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope=" ".join(scopes) or None,
        )
        super().__init__(
            spec.url,
            metadata,
            sessions,
            redirect_handler=self._on_redirect,
            callback_handler=self._on_callback,
        )
        self.spec = spec
        self.sessions = sessions
        self.redirect_uri = redirect_uri
        self.interactive = interactive
        self._on_login_url = on_login_url
        self._nursery = nursery
        self._listener: CallbackListener | None = None
        self.broken = trio.Event()
        """Set when the connection cannot go on without a person: see `failure`."""
        self.failure: UpstreamError | None = None
        sessions.context_source = lambda: (
            self.context.oauth_metadata,
            self.context.protected_resource_metadata,
        )

    @property
    def signed_in(self) -> bool:
        return self.context.current_tokens is not None

    def scrubber(self, scrub: Callable[[str], str]) -> Callable[[str], str]:
        """`scrub`, and the tokens of the moment (they change with every refresh) masked too."""

        def scrub_tokens(text: str) -> str:
            tokens = self.context.current_tokens
            for value in (tokens.access_token, tokens.refresh_token) if tokens is not None else ():
                if value and len(value) >= 4:
                    text = text.replace(value, SCRUBBED)
            return scrub(text)

        return scrub_tokens

    # --- the flow ------------------------------------------------------------

    async def oauth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self.interactive:
            flow = super().oauth_flow(request)
            try:
                outgoing = await flow.__anext__()
                while True:
                    outgoing = await flow.asend((yield outgoing))
            except StopAsyncIteration:
                if self.context.current_tokens is not None:
                    self.interactive = False  # signed in: from now on refresh, never ask again
                return
            except LoginRequiredError as exc:
                self._fail(exc)
                raise
            except Exception as exc:  # the SDK raises its own tree; the person needs to see why
                self._fail(LoginRequiredError(f"sign-in failed: {exc}"))
                raise
            finally:
                await flow.aclose()
        async with self.context.lock:
            if not self.loaded:
                await self.load()
            self.context.protocol_version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
            if self._expiring() and self.context.can_refresh_token():
                refresh_response = yield await self.refresh_request()
                await self.take_refresh_response(refresh_response)
            sent = self.context.current_tokens
        if sent is not None:
            self.add_auth_header(request)
        response = yield request
        if response.status_code != 401:
            return
        # The token was refused (revoked, or expired early): refresh once, unless another request just did.
        async with self.context.lock:
            current = self.context.current_tokens
            if current is not None and current is sent and self.context.can_refresh_token():
                refresh_response = yield await self.refresh_request()
                await self.take_refresh_response(refresh_response)
                current = self.context.current_tokens
        if current is not None and current is not sent:
            self.add_auth_header(request)
            response = yield request
            if response.status_code != 401:
                return
        if self.spec.oauth is not None or _bearer_challenge(response):
            if self.context.current_tokens is not None:
                self.context.clear_tokens()
                await self.sessions.forget_tokens()
            error = LoginRequiredError(login_hint(self.spec.name))
            self._fail(error)
            raise error
        # A plain 401 without an OAuth challenge: let it surface as the HTTP error it is.

    def _expiring(self) -> bool:
        tokens, expiry = self.context.current_tokens, self.context.token_expiry_time
        if tokens is None or expiry is None:
            return False
        lifetime = float(tokens.expires_in or 0)
        ahead = min(REFRESH_AHEAD_S, lifetime / 10) if lifetime > 0 else REFRESH_AHEAD_S
        return time.time() >= expiry - ahead

    async def load(self) -> None:
        """Load tokens and registration; restore expiry and metadata so a refresh needs no discovery."""
        await super().load()
        saved = self.sessions.saved
        tokens = self.context.current_tokens
        if tokens is not None and tokens.expires_in is not None and "obtained_at" in saved:
            self.context.token_expiry_time = float(saved["obtained_at"]) + tokens.expires_in
        if saved.get("metadata") and self.context.oauth_metadata is None:
            self.context.oauth_metadata = OAuthMetadata.model_validate(saved["metadata"])
        if saved.get("resource_metadata") and self.context.protected_resource_metadata is None:
            prm = ProtectedResourceMetadata.model_validate(saved["resource_metadata"])
            self.context.protected_resource_metadata = prm
            if prm.authorization_servers:
                self.context.auth_server_url = str(prm.authorization_servers[0])

    async def take_refresh_response(self, response: httpx2.Response) -> bool:
        """A refused refresh needs the person again; an unavailable token endpoint is retried later."""
        if response.status_code >= 500 or response.status_code == 429:
            raise UpstreamError(
                f"token refresh failed: HTTP {response.status_code} from "
                f"{response.request.url.copy_with(query=None)}; retrying with backoff"
            )
        refreshed = await super().take_refresh_response(response)
        if not refreshed:
            await self.sessions.forget_tokens()
        return refreshed

    def _fail(self, error: UpstreamError) -> None:
        if self.failure is None:
            self.failure = error
        self.broken.set()

    # --- the person's part (interactive mode only) ---------------------------

    async def _on_redirect(self, authorization_url: str) -> None:
        if not self.interactive:
            raise LoginRequiredError(login_hint(self.spec.name))
        metadata = self.context.oauth_metadata
        methods = metadata.code_challenge_methods_supported if metadata is not None else None
        if not methods or "S256" not in methods:
            raise LoginRequiredError(
                "sign-in refused: the authorization server does not advertise PKCE S256 "
                "(code_challenge_methods_supported)"
            )
        url = self._with_config_params(authorization_url)
        port = urlsplit(self.redirect_uri).port
        assert port is not None
        self._listener = CallbackListener(self.spec.name, port)
        self._listener.expected_state = parse_qs(urlsplit(url).query).get("state", [None])[0]
        await self._listener.open(self._nursery)
        await self.sessions.remember_redirect(self.redirect_uri)
        await self._on_login_url(url)

    def _with_config_params(self, url: str) -> str:
        """Configured scopes win over discovered ones; `extra_params` are added (the flow's own stay)."""
        oauth = self.spec.oauth
        if oauth is None or (not oauth.scopes and not oauth.extra_params):
            return url
        parts = urlsplit(url)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if oauth.scopes:
            query["scope"] = " ".join(oauth.scopes)
        query.update(oauth.extra_params)
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _on_callback(self) -> AuthorizationCodeResult:
        assert self._listener is not None
        params = await self._listener.result()
        if "error" in params:
            detail = params.get("error_description")
            raise LoginRequiredError(
                f"sign-in failed: the authorization server answered {params['error']}"
                + (f" ({detail})" if detail else "")
            )
        if not params.get("code"):
            raise LoginRequiredError("sign-in failed: the callback carried no authorization code")
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


def _bearer_challenge(response: httpx2.Response) -> bool:
    return response.headers.get("www-authenticate", "").lower().startswith("bearer")


async def open_oauth(
    spec: UpstreamSpec,
    store: SecretStore | None,
    nursery: trio.Nursery,
    on_login_url: Callable[[str], Awaitable[None]],
) -> ProxyOAuth:
    """The auth for a remote upstream's HTTP client; a person-led sign-in first forgets old tokens."""
    sessions = SessionStore(store, spec.name, spec)
    if spec.login:
        await sessions.forget_tokens()
    redirect_uri = await choose_redirect_uri(spec, sessions)
    return ProxyOAuth(
        spec, sessions, redirect_uri, interactive=spec.login, on_login_url=on_login_url, nursery=nursery
    )
