"""How the CLI shows servers: the table of `upstream list` / `status` and the page of `upstream show`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cli.output import console, state_text, table


def flags_of(server: dict[str, Any]) -> str:
    flags = []
    if not server.get("enabled", True):
        flags.append("disabled")
    if server.get("quarantined"):
        flags.append("quarantined")
    if server.get("healthy") is False:
        flags.append("unhealthy")
    if server.get("on_demand"):
        flags.append("on-demand")
    if server.get("draining"):
        flags.append("draining")
    if server.get("condition") in ("crash-looping", "unreachable"):
        flags.append(server["condition"])
    if server.get("pending_change"):
        flags.append("change-pending")
    return ",".join(flags)


def server_rows(servers: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            s["name"],
            state_text(s.get("state", "?")),
            s.get("protocol", ""),
            s.get("tool_count", 0),
            flags_of(s),
            s.get("last_error") or "",
        ]
        for s in servers
    ]


def print_server(server: dict[str, Any]) -> None:
    rows: list[list[Any]] = []
    for key in (
        "name",
        "state",
        "protocol",
        "command",
        "args",
        "url",
        "working_dir",
        "enabled",
        "quarantined",
    ):
        if key in server and server[key] not in (None, [], ""):
            value = server[key]
            rows.append([key, " ".join(value) if key == "args" else value])
    for field in ("headers", "env"):
        for key, value in (server.get(field) or {}).items():
            rows.append([f"{field}.{key}", value])
    for key in (
        "tool_count",
        "restarts",
        "worker_pid",
        "upstream_pid",
        "server_version",
        "condition",
        "last_error",
    ):
        if server.get(key) not in (None, ""):
            rows.append([key, server[key]])
    console().print(table(("FIELD", "VALUE"), rows))
    print_pending_change(server)


def print_pending_change(server: dict[str, Any]) -> None:
    """An agent's proposed change, as a diff a person reviews before `upstream approve`."""
    pending = server.get("pending_change")
    if not isinstance(pending, dict):
        return
    name = server.get("name")
    out = console()
    out.print(
        f"\npending change {pending.get('id')} proposed by an AI client ({pending.get('source')}) "
        f"at {pending.get('proposed_at')}: {', '.join(pending.get('fields') or [])}",
        markup=False,
        highlight=False,
    )
    out.print(pending.get("diff") or "(no difference)", markup=False, highlight=False)
    out.print(
        f"approve it: mcpproxy upstream approve {name}    turn it down: mcpproxy upstream reject {name}",
        markup=False,
        highlight=False,
    )
