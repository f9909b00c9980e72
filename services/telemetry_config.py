"""The observability settings of the config: who may scrape `/metrics` (`metrics_access`) and where
traces go (`otlp_endpoint`)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from services.config_values import config_error

METRICS_ACCESS: Final = ("api_key", "loopback")
"""`api_key`: every scrape presents the API key (the default); `loopback`: a scraper connecting from
this machine needs none, anyone else still does."""


def validate_telemetry(config: Any, file: str) -> None:
    if config.metrics_access not in METRICS_ACCESS:
        raise config_error(
            file,
            "metrics_access",
            f"unknown value {config.metrics_access!r}: use {' or '.join(METRICS_ACCESS)}",
        )
    endpoint = config.otlp_endpoint
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise config_error(
                file,
                "otlp_endpoint",
                f"{endpoint!r}: expected the URL of an OTLP/HTTP receiver, e.g. http://127.0.0.1:4318",
            )
