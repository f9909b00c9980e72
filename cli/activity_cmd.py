"""`mcpproxy activity list | show | watch`: what agents did through the proxy."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx2

from cli.client import EXIT_UNREACHABLE, die, resolve_target, target_options, unpack, unreachable_message
from services.activity import STATUSES


@click.group("activity")
def activity_group() -> None:
    """The activity log: every tool call, with status and duration.

    Example: mcpproxy activity list --server github --status error
    """


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


@activity_group.command("list")
@click.option("--server", default=None)
@click.option("--tool", default=None)
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--session", default=None, help="MCP session id.")
@click.option("--request-id", default=None)
@click.option("--client", default=None, help="A client credential's name (`mcpproxy clients list`).")
@click.option("--profile", default=None, help="The profile the caller was served.")
@click.option("--since", type=float, default=None, help="Epoch seconds.")
@click.option("--until", type=float, default=None, help="Epoch seconds.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@target_options
def list_activity(
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
    **filters: Any,
) -> None:
    """List recorded calls, newest first.

    Example: mcpproxy activity list --server github --status error -o json
    """
    target = resolve_target(config_path, data_dir, url, api_key)
    params = {k: v for k, v in filters.items() if v is not None}
    if "request_id" in params:
        params["request_id"] = str(params["request_id"])
    data = target.call("GET", "/api/v1/activity", params=params)
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{'ID':>6}  {'TIME':<19}  {'SERVER:TOOL':<36} {'STATUS':<8} {'MS':>8}  {'SURFACE':<8} CLIENT")
    for record in data["records"]:
        name = f"{record['server']}:{record['tool']}"
        client = record.get("client") or "-"
        if record.get("profile"):
            client += f" ({record['profile']})"
        click.echo(
            f"{record['id']:>6}  {_when(record['time']):<19}  {name:<36} {record['status']:<8} "
            f"{record['duration_ms']:>8.1f}  {record['surface']:<8} {client}"
        )
    click.echo(f"({len(data['records'])} of {data['total']})")


@activity_group.command("show")
@click.argument("record_id", type=int)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@target_options
def show_activity(
    record_id: int,
    output: str,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Show one recorded call with its arguments and result.

    Example: mcpproxy activity show 42
    """
    target = resolve_target(config_path, data_dir, url, api_key)
    record = target.call("GET", f"/api/v1/activity/{record_id}")["record"]
    if output == "json":
        click.echo(json.dumps(record, indent=2))
        return
    for key, value in record.items():
        shown = _when(value) if key == "time" else value
        click.echo(f"{key:>15}: {shown}")


@activity_group.command("watch")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json: one JSON object per call and line, for scripts.",
)
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many calls.")
@target_options
def watch_activity(
    output: str,
    count: int | None,
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
) -> None:
    """Print each call as it completes (from /events), until Ctrl-C (or --count calls).

    Example: mcpproxy activity watch -o json | jq -r .tool
    """
    target = resolve_target(config_path, data_dir, url, api_key)
    event = ""
    seen = 0
    try:
        with (
            httpx2.Client(base_url=target.url, timeout=httpx2.Timeout(10.0, read=None)) as client,
            client.stream("GET", "/events", headers=target.headers) as response,
        ):
            if response.status_code != 200:
                response.read()
                die(unpack(response, target.url, "/events").error)
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "activity.tool_call.completed":
                    call = json.loads(line[6:])
                    if output == "json":
                        click.echo(json.dumps(call, separators=(",", ":")))
                    else:
                        click.echo(
                            f"{_when(call['time'])}  {call['server']}:{call['tool']}  {call['status']}  "
                            f"{call['duration_ms']:.1f} ms  ({call['surface']})",
                        )
                    sys.stdout.flush()
                    seen += 1
                    if count is not None and seen >= count:
                        return
    except (httpx2.ConnectError, httpx2.ConnectTimeout):
        die(unreachable_message(target.url, target.url_origin), EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        pass
