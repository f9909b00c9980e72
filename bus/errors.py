"""The one exception tree of the product.

It lives in `bus` because `bus` is the lowest layer: every package can import it.
Every user-facing message says what was wrong, where, and what to do.
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every error the proxy raises on purpose."""


class ConfigError(ProxyError):
    """The configuration file or a server definition is invalid."""


class BusError(ProxyError):
    """Something went wrong on the ZeroMQ bus."""


class ProtocolError(BusError):
    """A peer sent bytes that are not a message of the expected union."""


class PeerGoneError(BusError):
    """The peer of a request disappeared before answering."""


class WorkerError(ProxyError):
    """A worker process misbehaved or could not be managed."""


class SpawnError(WorkerError):
    """A process could not be started."""


class InvalidTransitionError(WorkerError):
    """A lifecycle transition outside the allowed table was attempted."""

    def __init__(self, name: str, old: object, new: object) -> None:
        super().__init__(f"server {name!r}: transition {old} -> {new} is not allowed")
        self.name = name
        self.old = old
        self.new = new


class UpstreamError(ProxyError):
    """The upstream MCP server failed, answered with an error, or timed out."""


class LoginRequiredError(UpstreamError):
    """An OAuth upstream needs a person to sign in (`mcpproxy auth login NAME`) before it can connect."""


class UnknownToolError(ProxyError):
    """A tool or server name that the proxy does not know."""


class IncompatibleLibraryError(ProxyError):
    """An installed library lacks an internal the proxy relies on: not the version it was written for."""

    def __init__(self, library: str, installed: str, written_for: str, problems: list[str]) -> None:
        super().__init__(
            f"{library} {installed} is not the version mcpproxy was written for ({library} {written_for}): "
            f"{'; '.join(problems)}. Install {library} {written_for} (the version pyproject.toml pins; "
            "scripts/bootstrap installs it from uv.lock)"
        )
        self.library = library
        self.installed = installed
        self.written_for = written_for
        self.problems = problems

    @classmethod
    def require(cls, library: str, written_for: str, problems: list[str]) -> None:
        """Raise for `problems`, if there are any (the installed version is looked up only then)."""
        if problems:
            from importlib.metadata import version  # ~10 ms to import: only on the way to an error

            raise cls(library, version(library), written_for, problems)
