"""The concurrency settings of the config (`max_concurrent_calls`, `max_queued_calls`,
`queue_timeout`, global and per server): their rules, and the `CallLimits` the gateway gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bus.errors import ConfigError
from bus.messages import CallLimits, ServerCallLimits
from services.config_values import config_error, parse_duration

if TYPE_CHECKING:
    from services.config import ProxyConfig


def validate_call_limits(holder: Any, file: str, prefix: str) -> None:
    """The three settings on the config or on one server (`prefix`: its path and a dot, or "")."""
    limit = holder.max_concurrent_calls
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise config_error(
            file, f"{prefix}max_concurrent_calls", "expected 1 or more (leave it out for no limit)"
        )
    queued = holder.max_queued_calls
    if queued is not None and queued < 0:
        raise config_error(file, f"{prefix}max_queued_calls", "expected 0 or more (0: shed when all busy)")
    if holder.queue_timeout is not None:
        try:
            parse_duration(holder.queue_timeout)
        except ConfigError as exc:
            raise config_error(file, f"{prefix}queue_timeout", str(exc)) from None


def call_limits(config: ProxyConfig) -> CallLimits:
    """What the supervisor sends the gateway (only servers with a setting of their own are named)."""
    servers = {
        server.name: ServerCallLimits(
            max_concurrent_calls=server.max_concurrent_calls,
            max_queued_calls=server.max_queued_calls,
            queue_timeout_s=None if server.queue_timeout is None else parse_duration(server.queue_timeout),
        )
        for server in config.mcpServers
        if server.max_concurrent_calls is not None
        or server.max_queued_calls is not None
        or server.queue_timeout is not None
    }
    return CallLimits(
        max_concurrent_calls=config.max_concurrent_calls,
        max_queued_calls=config.max_queued_calls,
        queue_timeout_s=parse_duration(config.queue_timeout),
        servers=servers,
    )
