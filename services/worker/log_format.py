"""A worker's own log lines: never a secret value, a URL's credentials or its query values.

The worker's HTTP client (httpx2) logs every request URL at INFO, with the
references already resolved (`?api_key=<value>`, `user:password@`). The
house rule is INFO = state transitions and one line per upstream call, and a
request line is traffic, so the HTTP client's loggers are raised to WARNING
(unless the worker runs at DEBUG). That alone is not enough: the SDK logs
exceptions whose text and tracebacks may name a full URL. So the one handler
of a worker formats every record, traceback included, and then scrubs the
whole text: the secret values the worker knows (`hide_in_log`, once they are
resolved) and every URL's credentials and query values.
"""

from __future__ import annotations

import logging
from typing import Final

from services.redaction import SecretValues

HTTP_LOGGERS: Final = ("httpx2", "httpcore2", "mcp.client.streamable_http", "mcp.client.sse")
"""Traffic: each request, each session id received, each reconnect of the SDK's GET stream."""


class ScrubbingFormatter(logging.Formatter):
    """Formats as usual, then scrubs the finished text (message, arguments and traceback alike)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self.secrets = SecretValues()

    def format(self, record: logging.LogRecord) -> str:
        return self.secrets.scrub(super().format(record))


_formatters: list[ScrubbingFormatter] = []


def configure_worker_logging(server: str, level: str) -> None:
    """The worker's logging: one stderr handler, scrubbed; the HTTP client quiet unless at DEBUG."""
    formatter = ScrubbingFormatter(f"worker[{server}] %(levelname)s %(name)s: %(message)s")
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    _formatters[:] = [formatter]
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in HTTP_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def hide_in_log(secrets: SecretValues) -> None:
    """From now on, the worker's log lines never carry these values."""
    for formatter in _formatters:
        formatter.secrets = secrets
