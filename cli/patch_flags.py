"""The seed's patch flags: `--header "NAME: VALUE"`, `--header-remove NAME`, `--env "K=V"`, `--env-remove K`.

They repeat and mix, and all of them together make one JSON Merge Patch: one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    if "enabled" in patch:
        parts.append("enabled" if patch["enabled"] else "disabled")
    return "; ".join(parts)


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
