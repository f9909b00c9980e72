"""`--wait`: do an action on a server, then follow `/events` until it runs again or fails.

The event stream is opened before the action is sent, so no state change
between the two can be missed; the first frame (the whole server list) says
the subscription is live. Every wait has a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import click
import httpx2
import trio

from cli.client import (
    EXIT_FAILURE,
    EXIT_UNREACHABLE,
    CommandError,
    Target,
    die,
    run_async,
    unpack,
    unreachable_message,
)
from cli.output import console, emit_json

DEFAULT_WAIT_S: Final = 60.0
ACTION_TIMEOUT_S: Final = 45.0
"""The action's own answer (a sign-in answers once the server sent its authorization URL)."""


@dataclass
class Outcome:
    """How a wait ended: `running`, `failed`, `stopped`, `removed` or `timeout`."""

    result: str
    state: str
    last_error: str | None
    answer: Any
    """The `data` of the action's own answer."""
    elapsed_s: float

    def summary(self, name: str) -> dict[str, Any]:
        """The outcome as `-o json` prints it."""
        return {
            "server": name,
            "result": self.result,
            "state": self.state,
            "last_error": self.last_error,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def timeout_option(default_s: float, help_text: str) -> Callable[[Any], Any]:
    """`--timeout SECONDS` (as `timeout_s`) for a command that waits."""
    return click.option(
        "--timeout",
        "timeout_s",
        type=click.FloatRange(min=0.1),
        default=default_s,
        show_default=True,
        help=help_text,
    )


Progress = Callable[[str, str | None, float], None]


async def _frames(response: httpx2.Response) -> AsyncGenerator[tuple[str, Any], None]:
    event, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield event, json.loads(data)
            event, data = "message", ""


async def act_and_wait(
    target: Target,
    name: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    timeout_s: float = DEFAULT_WAIT_S,
    needs_move: bool = False,
    progress: Progress | None = None,
    on_answer: Callable[[Any], None] | None = None,
) -> Outcome:
    """Send `method path` and wait until server `name` is running or has failed.

    needs_move: only a state change after the action counts (a restart of a running
    server must first leave `running`); otherwise the state right after the action
    counts too (enabling a server that already runs is done at once).
    on_answer: called with the action's `data` as soon as it arrives (before the wait).
    """
    watch = _Watch(name, needs_move, progress)
    read_forever = httpx2.Timeout(10.0, read=None)
    try:
        async with target.async_client(timeout=read_forever) as client:
            with trio.move_on_after(timeout_s):
                async with (
                    client.stream("GET", "/events") as stream,
                    aclosing(_frames(stream)) as frames,
                ):
                    if stream.status_code != 200:
                        await stream.aread()
                        raise CommandError(unpack(stream, target.url, "/events").error)
                    await anext(frames)  # the snapshot: from here on we see every change
                    reply = unpack(
                        await client.request(method, path, json=body, timeout=ACTION_TIMEOUT_S),
                        target.url,
                        path,
                    )
                    if not reply.ok:
                        raise CommandError(reply.error, reply.exit_code)
                    watch.answer = reply.data
                    if on_answer is not None:
                        on_answer(reply.data)
                    now = unpack(await client.get(f"/api/v1/servers/{name}"), target.url, path)
                    if now.ok:  # (a server just added may not be listed yet)
                        server = now.data["server"]
                        if watch.see(server["state"], server.get("last_error"), changed=False):
                            return watch.outcome()
                    async for event, data in frames:
                        if event != "server.state_changed" or data.get("name") != name:
                            continue
                        if watch.see(data["state"], data.get("last_error"), changed=True):
                            return watch.outcome()
    except (httpx2.ConnectError, httpx2.ConnectTimeout):
        raise CommandError(unreachable_message(target.url), EXIT_UNREACHABLE) from None
    except httpx2.TransportError as exc:
        raise CommandError(f"lost the event stream of {target.url}: {exc}", EXIT_FAILURE) from None
    watch.result = "timeout"
    return watch.outcome()


class _Watch:
    def __init__(self, name: str, needs_move: bool, progress: Progress | None) -> None:
        self.name = name
        self.needs_move = needs_move
        self.progress = progress
        self.started = time.monotonic()
        self.moved = False
        self.state = "unknown"
        self.last_error: str | None = None
        self.answer: Any = None
        self.result = ""

    def see(self, state: str, last_error: str | None, *, changed: bool) -> bool:
        """Take in a state; True when the wait is over."""
        self.state, self.last_error = state, last_error
        if changed:
            self.moved = True
            if self.progress is not None:
                self.progress(state, last_error, time.monotonic() - self.started)
        if self.needs_move and not self.moved:
            return False
        verdict = {
            "running": "running",
            "backoff": "failed",
            "fatal": "failed",
            "needs_login": "failed",
            "removed": "removed",
        }
        self.result = verdict.get(state, "")
        return bool(self.result)

    def outcome(self) -> Outcome:
        return Outcome(self.result, self.state, self.last_error, self.answer, time.monotonic() - self.started)


# --- the `--wait` of the upstream commands -----------------------------------------------------------


def wait_options(func: Any) -> Any:
    func = timeout_option(DEFAULT_WAIT_S, "Seconds --wait waits at most.")(func)
    return click.option(
        "--wait", is_flag=True, help="Wait until the server runs (or report why it does not)."
    )(func)


def check_can_run(target: Target, name: str, action: str) -> None:
    """--wait would wait in vain for a server that stays stopped after `action`: say why at once."""
    server = target.call("GET", f"/api/v1/servers/{name}")["server"]
    if action != "enable" and not server.get("enabled", True):
        die(f"{name} is disabled and stays stopped: `mcpproxy upstream enable {name}`")
    if action != "unquarantine" and server.get("quarantined"):
        die(f"{name} is quarantined and stays stopped: `mcpproxy upstream approve {name}`")


def wait_for_server(
    target: Target,
    name: str,
    method: str,
    path: str,
    timeout_s: float,
    *,
    body: Any = None,
    needs_move: bool = False,
) -> Outcome:
    err = console(stderr=True)

    def progress(state: str, last_error: str | None, elapsed: float) -> None:
        failed = state in ("exited", "backoff", "fatal")  # (other states carry the previous error)
        line = f"  {name}: {state}" + (f" ({last_error})" if last_error and failed else "")
        err.print(f"{line}  [{elapsed:.1f}s]", markup=False, highlight=False)

    return run_async(
        partial(
            act_and_wait,
            target,
            name,
            method,
            path,
            body=body,
            timeout_s=timeout_s,
            needs_move=needs_move,
            progress=progress,
        )
    )


def finish_wait(name: str, outcome: Outcome, output: str) -> None:
    if output == "json":
        emit_json(outcome.summary(name))
    match outcome.result:
        case "running":
            if output != "json":
                click.echo(f"{name}: running ({outcome.elapsed_s:.1f}s)")
            return
        case "failed":
            die(f"{name}: {outcome.state}: {outcome.last_error or 'no error recorded'}", EXIT_FAILURE)
        case "removed":
            die(f"{name}: removed while waiting", EXIT_FAILURE)
        case _:
            detail = f"; last error: {outcome.last_error}" if outcome.last_error else ""
            die(f"{name}: still {outcome.state} after {outcome.elapsed_s:.0f}s{detail}", EXIT_FAILURE)
