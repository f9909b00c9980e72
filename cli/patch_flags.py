"""The seed's patch flags: `--header "NAME: VALUE"`, `--header-remove NAME`, `--env "K=V"`, `--env-remove K`.

They repeat and mix, and all of them together make one JSON Merge Patch: one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import click


def parse_header(value: str) -> tuple[str, str]:
    """`"X-Trace: on"` -> ("X-Trace", "on")."""
    key, sep, rest = value.partition(":")
    key = key.strip()
    if not sep or not key or any(c.isspace() for c in key):
        raise click.BadParameter(f"{value!r}: expected 'Name: value', e.g. --header \"X-Trace: on\"")
    return key, rest.strip()


def parse_env(value: str) -> tuple[str, str]:
    """`"LOG_LEVEL=debug"` -> ("LOG_LEVEL", "debug")."""
    key, sep, rest = value.partition("=")
    if not sep or not key or any(c.isspace() for c in key):
        raise click.BadParameter(f"{value!r}: expected NAME=value, e.g. --env LOG_LEVEL=debug")
    return key, rest


def headers_callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    return [parse_header(v) for v in values]


def env_callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    return [parse_env(v) for v in values]


def merge_map(
    field: str, sets: Sequence[tuple[str, str]], removes: Sequence[str]
) -> dict[str, str | None] | None:
    """The merge-patch object for one map: values upsert, null deletes."""
    if not sets and not removes:
        return None
    both = {k for k, _ in sets} & set(removes)
    if both:
        raise click.UsageError(f"{field}: {', '.join(sorted(both))} both set and removed")
    changes: dict[str, str | None] = dict(sets)
    changes.update(dict.fromkeys(removes))
    return changes


TIMEOUT_FIELDS: Final = ("init_timeout", "call_tool_timeout")


def duration_value(value: str) -> int | float | str:
    """A timeout flag's value as the config takes it: seconds as a number, or a string like "2m"."""
    for number in (int, float):
        try:
            return number(value)
        except ValueError:
            continue
    return value


def transport_after(server: Mapping[str, Any], patch: Mapping[str, Any]) -> Literal["stdio", "remote"]:
    """What kind of server `server` is once `patch` applies: a command (stdio) or a URL (remote)."""
    protocol = patch.get("protocol", server.get("protocol")) or "auto"
    if protocol == "stdio":
        return "stdio"
    if protocol != "auto":
        return "remote"
    return "stdio" if patch.get("command", server.get("command")) else "remote"


def check_fits(name: str, kind: Literal["stdio", "remote"], *, headers: bool, env: bool) -> None:
    """Refuse headers for a stdio server and env for a remote one: neither would ever be used."""
    if kind == "stdio" and headers:
        raise click.UsageError(
            f"{name} is a stdio server (a command): it sends no HTTP headers, so --header would never be "
            "used; pass what it reads from its environment with --env NAME=VALUE"
        )
    if kind == "remote" and env:
        raise click.UsageError(
            f"{name} is a remote server (a URL): it has no environment, so --env would never be used; "
            "pass what it needs with --header 'NAME: VALUE'"
        )


def build_patch(
    *,
    headers: Sequence[tuple[str, str]] = (),
    header_removes: Sequence[str] = (),
    env: Sequence[tuple[str, str]] = (),
    env_removes: Sequence[str] = (),
    args: Sequence[str] | None = None,
    url: str | None = None,
    command: str | None = None,
    protocol: str | None = None,
    working_dir: str | None = None,
    enabled: bool | None = None,
    init_timeout: str | None = None,
    call_tool_timeout: str | None = None,
) -> dict[str, Any]:
    """One JSON Merge Patch (RFC 7396) for everything asked: one request, one restart."""
    patch: dict[str, Any] = {}
    if (header_map := merge_map("headers", headers, header_removes)) is not None:
        patch["headers"] = header_map
    if (env_map := merge_map("env", env, env_removes)) is not None:
        patch["env"] = env_map
    if args is not None:
        patch["args"] = list(args)
    for key, value in (
        ("url", url),
        ("command", command),
        ("protocol", protocol),
        ("working_dir", working_dir),
        ("enabled", enabled),
    ):
        if value is not None:
            patch[key] = value
    for key, given in (("init_timeout", init_timeout), ("call_tool_timeout", call_tool_timeout)):
        if given is not None:
            patch[key] = duration_value(given)
    return patch


def describe_patch(patch: dict[str, Any]) -> str:
    """What a patch does, without any value that could be a secret."""
    parts = []
    for field, noun in (("headers", "header"), ("env", "env")):
        changes = patch.get(field) or {}
        if set_keys := [k for k, v in changes.items() if v is not None]:
            parts.append(f"set {noun} {', '.join(set_keys)}")
        if removed := [k for k, v in changes.items() if v is None]:
            parts.append(f"removed {noun} {', '.join(removed)}")
    if "args" in patch:
        parts.append(f"args replaced ({len(patch['args'])})")
    parts += [f"{key} changed" for key in ("url", "command", "protocol", "working_dir") if key in patch]
    parts += [f"{key} set to {patch[key]}" for key in TIMEOUT_FIELDS if key in patch]
    if "enabled" in patch:
        parts.append("enabled" if patch["enabled"] else "disabled")
    return "; ".join(parts)


def timeout_options(func: Any) -> Any:
    """--init-timeout and --call-tool-timeout: seconds, or a duration such as 30s or 2m."""
    func = click.option(
        "--call-tool-timeout",
        default=None,
        metavar="DURATION",
        help="Longest a tool call may take (seconds, or e.g. 2m; default 2m).",
    )(func)
    return click.option(
        "--init-timeout",
        default=None,
        metavar="DURATION",
        help="Longest the server may take to initialize (seconds, or e.g. 30s; default 30s).",
    )(func)


def header_options(func: Any) -> Any:
    func = click.option(
        "--env-remove", "env_removes", multiple=True, metavar="NAME", help="Delete a variable (repeatable)."
    )(func)
    func = click.option(
        "--env",
        "env",
        multiple=True,
        metavar="NAME=VALUE",
        callback=env_callback,
        help="Set a variable for a stdio server (repeatable).",
    )(func)
    func = click.option(
        "--header-remove",
        "header_removes",
        multiple=True,
        metavar="NAME",
        help="Delete a header (repeatable).",
    )(func)
    return click.option(
        "--header",
        "headers",
        multiple=True,
        metavar="'NAME: VALUE'",
        callback=headers_callback,
        help="Set an HTTP header (repeatable).",
    )(func)
