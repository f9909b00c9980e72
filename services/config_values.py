"""How config values are read and how config problems are worded: durations ("30s"), listen
addresses (HOST:PORT), and errors that name the file and the path in it (services/config.py)."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from typing import Any, Final

import msgspec

from bus.errors import ConfigError

logger = logging.getLogger(__name__)

_DURATION_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: float | str) -> float:
    """Seconds from a number or a Go-style duration string ("30s", "2m", "500ms"); more than 0.

    Every duration here is a timeout or an interval: 0 or less would fail every start or call at
    once (or spin), and NaN or infinity never fires.
    """
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(value)
        if not match:
            raise ConfigError(f"invalid duration {value!r}: use seconds or a string like '30s', '2m'")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"invalid duration {value!r}: it must be a number of seconds greater than 0")
    return seconds


_HOST_NAME_RE: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
LISTEN_HINT: Final = "expected HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or localhost:8080"


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` -> (host, port); an IPv6 host goes in brackets; no host means 127.0.0.1.

    Port 0 asks the kernel for a free one. ConfigError saying what is wrong otherwise.
    """
    host, sep, port = listen.rpartition(":")
    if not sep:
        raise ConfigError(f"{listen!r}: {LISTEN_HINT}")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError(f"{listen!r}: the port must be a number from 0 to 65535 ({LISTEN_HINT})")
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            raise ConfigError(f"{listen!r}: {host[1:-1]!r} is not an IPv6 address") from None
    if ":" in host or "[" in host or "]" in host:
        raise ConfigError(f"{listen!r}: an IPv6 address goes in brackets, e.g. [::1]:8080")
    if not host:
        return "127.0.0.1", int(port)
    if host.replace(".", "").isdigit():
        try:
            return str(ipaddress.IPv4Address(host)), int(port)
        except ValueError:
            raise ConfigError(f"{listen!r}: {host!r} is not an IPv4 address") from None
    if not _HOST_NAME_RE.fullmatch(host):
        raise ConfigError(f"{listen!r}: {host!r} is not an IP address or a host name ({LISTEN_HINT})")
    return host, int(port)


TYPE_NAMES: Final = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "array": "array",
    "object": "object",
    "null": "null",
}
_MSGSPEC_ERROR_RE: Final = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def readable_type_error(message: str) -> str:
    """msgspec says "Expected `array`, got `str`"; users read "expected array, got string"."""
    match = re.match(r"Expected `([^`]+)`, got `([^`]+)`", message)
    if not match:
        return message[:1].lower() + message[1:]
    want = " or ".join(TYPE_NAMES.get(t.strip(), t.strip()) for t in match.group(1).split("|"))
    got = TYPE_NAMES.get(match.group(2), match.group(2))
    return f"expected {want}, got {got}"


def config_error(file: str, path: str, problem: str) -> ConfigError:
    where = f"{file}: {path}: " if path else f"{file}: "
    return ConfigError(where + problem)


def convert_value(data: Any, target: type[Any], file: str, prefix: str) -> Any:
    try:
        return msgspec.convert(data, target)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_ERROR_RE.match(str(exc))
        assert match is not None
        sub = (match.group("path") or "").lstrip(".")
        path = prefix + ("." + sub if sub and not sub.startswith("[") else sub)
        raise config_error(file, path.lstrip("."), readable_type_error(match.group("msg"))) from None


def known_fields(struct: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(struct.__struct_fields__)


def warn_unknown_keys(raw: Any, struct: type[msgspec.Struct], file: str, path: str) -> None:
    if isinstance(raw, dict):
        for key in sorted(set(raw) - known_fields(struct)):
            logger.warning("%s: %s: unknown key %r kept as is", file, path, key)
