"""`mcpproxy auth login | status | logout`: OAuth sign-in for remote upstream servers."""

from __future__ import annotations

import os
import sys
import webbrowser
from functools import partial
from pathlib import Path
from typing import Any, Final

import click

from cli.client import (
    EXIT_FAILURE,
    die,
    management_target as _target,
    name_argument,
    run_async,
    target_options,
)
from cli.output import console, emit_json, output_option, print_table, state_text
from cli.waiting import act_and_wait, timeout_option

LOGIN_WAIT_S: Final = 300.0


@click.group("auth")
def auth_group() -> None:
    """Sign in to OAuth-protected servers; tokens stay in the secrets store.

    \b
    Examples:
      mcpproxy auth login github
      mcpproxy auth login github --no-browser   # prints the URL to open elsewhere
      mcpproxy auth status
      mcpproxy auth logout github
    """


def headless() -> bool:
    """No browser to open: asked for, over SSH, or no display on Linux."""
    if os.environ.get("MCPPROXY_HEADLESS") or os.environ.get("SSH_CONNECTION"):
        return True
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


@auth_group.command("login")
@name_argument
@click.option("--no-browser", is_flag=True, help="Do not open a browser; only print the URL.")
@timeout_option(LOGIN_WAIT_S, "Seconds to wait for you to finish signing in.")
@output_option
@target_options
def login(
    name: str,
    no_browser: bool,
    timeout_s: float,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Sign in to NAME: print the authorization URL, open it, wait until the server connects.

    The browser is opened unless --no-browser, $MCPPROXY_HEADLESS, an SSH
    session or (on Linux) no display. The URL is always printed, so you can
    open it on another machine; the proxy receives the answer on its loopback
    callback (http://127.0.0.1:<port>/oauth/callback), so that browser must
    run where the proxy does, or forward that port.

    Example: mcpproxy auth login github
    """
    target = _target(config_path, data_dir, url, api_key)
    err = console(stderr=True)

    def on_answer(data: Any) -> None:
        authorization_url = data.get("authorization_url") if isinstance(data, dict) else None
        if not authorization_url:
            return
        err.print(f"Open this URL to sign in to {name}:", highlight=False)
        click.echo(authorization_url)  # stdout, whole, for copying or piping
        if not no_browser and not headless():
            webbrowser.open(authorization_url)
        err.print("Waiting for the sign-in to finish...", highlight=False)

    outcome = run_async(
        partial(
            act_and_wait,
            target,
            name,
            "POST",
            f"/api/v1/servers/{name}/login",
            timeout_s=timeout_s,
            on_answer=on_answer,
        )
    )
    if output == "json":
        emit_json(
            {**outcome.summary(name), "authorization_url": (outcome.answer or {}).get("authorization_url")}
        )
    if outcome.result == "running":
        if output != "json":
            click.echo(f"{name}: signed in and connected ({outcome.elapsed_s:.1f}s)")
        return
    if outcome.result == "timeout":
        die(f"{name}: not signed in after {timeout_s:g}s (state: {outcome.state})")
    die(f"{name}: {outcome.last_error or outcome.state}", EXIT_FAILURE)


@auth_group.command("status")
@click.argument("name", required=False)
@output_option
@target_options
def status(
    name: str | None,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Which servers sign in with OAuth, whether they are signed in, and what to do next.

    Example: mcpproxy auth status -o json
    """
    servers = _target(config_path, data_dir, url, api_key).call("GET", "/api/v1/servers")["servers"]
    if name is not None:
        servers = [s for s in servers if s["name"] == name]
        if not servers:
            die(f"unknown server {name!r}", 4)
    else:
        servers = [s for s in servers if s.get("oauth")]
    if output == "json":
        emit_json(
            [
                {
                    "name": s["name"],
                    "state": s["state"],
                    "oauth": bool(s.get("oauth")),
                    "signed_in": bool(s.get("signed_in")),
                    "action": s.get("action"),
                    "last_error": s.get("last_error"),
                }
                for s in servers
            ]
        )
        return
    rows = [
        [
            s["name"],
            state_text(s["state"]),
            "yes" if s.get("signed_in") else "no",
            f"mcpproxy auth login {s['name']}" if s.get("action") == "login" else "",
        ]
        for s in servers
    ]
    print_table(("NAME", "STATE", "SIGNED IN", "NEXT"), rows, empty="no server signs in with OAuth")


@auth_group.command("logout")
@name_argument
@target_options
def logout(
    name: str, config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> None:
    """Forget NAME's tokens; it disconnects and waits for `auth login`.

    Example: mcpproxy auth logout github
    """
    _target(config_path, data_dir, url, api_key).call("POST", f"/api/v1/servers/{name}/logout")
    click.echo(f"{name}: signed out (tokens deleted); sign in again with `mcpproxy auth login {name}`")
