"""The start settings of the config (`start`, `idle_timeout`, `max_lifetime`, global and per server):
their rules, and each server's `StartPolicy` as the supervisor applies it (supervisor/on_demand.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from bus.errors import ConfigError
from services.config_values import config_error, parse_duration

if TYPE_CHECKING:
    from services.config import ProxyConfig, ServerConfig

START_MODES: Final = ("always", "on_demand")
"""`always`: started with the proxy and kept running; `on_demand`: started by the first call that
needs it, stopped again after `idle_timeout` without calls."""
IDLE_TIMEOUT: Final = "15m"
"""How long an on-demand server may go without a call before it is stopped (0: never)."""


@dataclass(frozen=True)
class StartPolicy:
    """How one server is started and stopped; durations in seconds, None: never."""

    on_demand: bool = False
    idle_timeout_s: float | None = None
    """Only for on-demand servers: an `always` server is never stopped for being idle."""
    max_lifetime_s: float | None = None
    """Any server: after this long a generation is recycled once its calls in flight have finished."""


def optional_duration(value: float | str | None) -> float | None:
    """A duration where 0 means never (None too): "15m" -> 900.0, 0 -> None."""
    if value is None or value in (0, "0"):
        return None
    return parse_duration(value)


def validate_start(holder: Any, file: str, prefix: str) -> None:
    """The three settings on the config or on one server (`prefix`: its path and a dot, or "")."""
    if holder.start is not None and holder.start not in START_MODES:
        raise config_error(
            file, f"{prefix}start", f"unknown start {holder.start!r}: use {' or '.join(START_MODES)}"
        )
    for field in ("idle_timeout", "max_lifetime"):
        try:
            optional_duration(getattr(holder, field))
        except ConfigError as exc:
            raise config_error(file, f"{prefix}{field}", f"{exc} (0: never)") from None


def start_policy(config: ProxyConfig, server: ServerConfig) -> StartPolicy:
    """A server's own settings over the global ones."""
    on_demand = (server.start or config.start) == "on_demand"
    idle = server.idle_timeout if server.idle_timeout is not None else config.idle_timeout
    lifetime = server.max_lifetime if server.max_lifetime is not None else config.max_lifetime
    return StartPolicy(
        on_demand=on_demand,
        idle_timeout_s=optional_duration(idle) if on_demand else None,
        max_lifetime_s=optional_duration(lifetime),
    )
