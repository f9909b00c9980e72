"""The `login` and `logout` commands of a server that signs in with OAuth, and forgetting its tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import trio

from bus.errors import ProxyError
from bus.messages import CommandResult, ControlCommand
from services.secrets import SecretStore, oauth_record_names
from supervisor.inbox import Command

if TYPE_CHECKING:
    from supervisor.runner import ServerRunner

Send = Callable[[object], Awaitable[bool]]
LOGIN_URL_TIMEOUT_S: Final = 30.0
"""How long `login` waits for the worker to discover the authorization server and send its URL."""


async def sign_in(send: Send, secrets: SecretStore, command: ControlCommand, runner: ServerRunner) -> None:
    """Start a person-led sign-in and answer with its authorization URL (None: no person needed).
    (`secrets`: the same signature as sign_out's.)"""
    outcome = runner.begin_login()
    with trio.move_on_after(LOGIN_URL_TIMEOUT_S):
        await outcome.done.wait()
    error = outcome.error
    if not outcome.done.is_set():
        error = f"the server did not start its sign-in within {LOGIN_URL_TIMEOUT_S:g}s"
    result = CommandResult(
        request_id=command.request_id,
        ok=error is None,
        error=error,
        status=runner.status(),
        login_url=outcome.url,
    )
    await send(result)


async def sign_out(send: Send, secrets: SecretStore, command: ControlCommand, runner: ServerRunner) -> None:
    """Forget the server's tokens (its client registration stays) and reconnect: it then needs login."""
    try:
        await forget_oauth(secrets, runner.name, keep_client=True)
    except ProxyError as exc:
        await send(CommandResult(request_id=command.request_id, ok=False, error=str(exc)))
        return
    runner.deliver_nowait(Command("logout"))
    await send(CommandResult(request_id=command.request_id, ok=True, status=runner.status()))


async def forget_oauth(secrets: SecretStore, server: str, *, keep_client: bool) -> None:
    """Delete a server's OAuth tokens (and its client registration unless `keep_client`)."""
    tokens, client = oauth_record_names(server)
    await secrets.delete(tokens)
    if not keep_client:
        await secrets.delete(client)
