"""The MCP SDK internals the proxy reads: present in the installed SDK, and a changed SDK refused by name."""

from __future__ import annotations

import math
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from bus.errors import IncompatibleLibraryError
from services import mcp_internals
from services.mcp_internals import WRITTEN_FOR, holding_session, problems

REPO = Path(__file__).resolve().parents[2]


def test_the_installed_sdk_has_every_internal_the_proxy_reads() -> None:
    assert problems() == []
    assert version("mcp").startswith(f"{WRITTEN_FOR}.")


def test_pyproject_pins_the_sdk_to_the_series_the_adapter_was_written_for() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    major, minor = WRITTEN_FOR.split(".")
    assert f"mcp>={WRITTEN_FOR},<{major}.{int(minor) + 1}" in dependencies


def test_an_sdk_that_renamed_the_session_table_is_refused_naming_it_and_the_version_written_for() -> None:
    class RenamedTables(StreamableHTTPSessionManager):  # what a later SDK might do
        def __init__(self, app: Any) -> None:
            self._sessions: dict[str, Any] = {}

    found = problems(manager=RenamedTables)
    assert found == ["StreamableHTTPSessionManager routes requests by _server_instances and _session_owners"]
    with pytest.raises(IncompatibleLibraryError) as raised:
        IncompatibleLibraryError.require("mcp", WRITTEN_FOR, found)
    message = str(raised.value)
    assert f"mcp {version('mcp')} is not the version mcpproxy was written for (mcp {WRITTEN_FOR})" in message
    assert "_server_instances and _session_owners" in message and "scripts/bootstrap" in message


def test_an_sdk_whose_oauth_flow_changed_shape_is_refused() -> None:
    class CoroutineFlow(OAuthClientProvider):
        async def _auth_flow(self, request: Any) -> Any:  # type: ignore[override]
            return None

    assert problems(provider=CoroutineFlow) == [
        "OAuthClientProvider._auth_flow is an async generator that loads, refreshes and signs requests"
    ]


def test_an_sdk_whose_session_answers_requests_differently_is_refused() -> None:
    class ReshapedSession(ClientSession):  # a later SDK might take the request whole
        async def _on_request(self, request: Any) -> Any:  # type: ignore[override]
            return None

        def _build_capabilities(self) -> Any:  # type: ignore[override]
            return None

    assert problems(session=ReshapedSession) == [
        "ClientSession answers server requests with the coroutine _on_request(dctx, method, params)",
        "ClientSession declares its capabilities with _build_capabilities(version) at the handshake",
    ]


def test_an_answering_session_routes_the_sdks_steps_to_its_own() -> None:
    base = mcp_internals.AnsweringSession
    assert base._on_request is not ClientSession._on_request
    assert base._build_capabilities is not ClientSession._build_capabilities


def test_the_oauth_base_routes_the_sdks_hooks_to_ours() -> None:
    # The SDK's flow calls these on the provider; a subclass overrides ours.
    base = mcp_internals.OAuthProviderBase
    assert base._initialize is not OAuthClientProvider._initialize
    assert base._handle_refresh_response is not OAuthClientProvider._handle_refresh_response
    assert base._auth_flow is not OAuthClientProvider._auth_flow


async def test_a_held_session_keeps_its_idle_timer_stopped_until_the_last_request_ends(
    mock_clock: trio.testing.MockClock,
) -> None:
    transport = StreamableHTTPServerTransport("session-1", idle_timeout=30.0)
    transport.idle_scope = idle = anyio.CancelScope()  # what the transport's connect() sets up
    with holding_session(transport):
        assert idle.deadline == math.inf
        with holding_session(transport):
            mock_clock.jump(100)
        assert idle.deadline == math.inf  # another request is still running
        mock_clock.jump(100)
    assert idle.deadline == trio.current_time() + 30.0


def test_a_session_without_an_idle_timeout_is_held_as_it_is() -> None:
    transport = StreamableHTTPServerTransport("session-2")
    with holding_session(transport):
        assert transport.idle_scope is None
