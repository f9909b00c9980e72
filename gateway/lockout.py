"""Lockout of a client that keeps sending wrong API keys: pure bookkeeping on the caller's clock.

A client is counted by its address, an IPv6 one by its /64 (one host commonly
holds a whole /64, so counting single addresses would not limit it). After
MAX_FAILURES wrong keys within WINDOW_S (a missing key is no guess and is not
counted), the client is locked out until the oldest of those failures is
WINDOW_S old: each of its requests that needs the key is answered 429 without
the key being looked at, so at most MAX_FAILURES guesses per WINDOW_S get an
answer.

A right key from a locked-out address is refused too. Letting it through would
tell the guesser which guess was right, at full speed, behind a wall of 429s:
the lockout would limit nothing. The cost is that clients sharing the address
(behind one NAT, or every local process on loopback) wait out the window with
the guesser; clients at other addresses are never affected.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from typing import Final

MAX_FAILURES: Final = 10
WINDOW_S: Final = 60.0
MAX_CLIENTS: Final = 10_000
"""Clients tracked at once: memory stays bounded under failures from many addresses."""
IPV6_PREFIX_BITS: Final = 64


def client_of(host: str) -> str:
    """The key a client's failures are counted under: its address, or an IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP address (a unix socket's peer): counted as given
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX_BITS), strict=False))
    return str(address)


class KeyLockout:
    """Wrong-key failures per client within a sliding window; `now` is any monotonic clock in seconds."""

    def __init__(
        self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, max_clients: int = MAX_CLIENTS
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        # Insertion order is the order of each client's latest failure, oldest first.
        self._failures: dict[str, deque[float]] = {}

    def locked_for(self, client: str, now: float) -> float:
        """Seconds until `client` may present a key again; 0.0 when it may now."""
        failures = self._failures.get(client)
        if failures is None or len(failures) < self.max_failures:
            return 0.0
        return max(0.0, failures[0] + self.window_s - now)

    def failed(self, client: str, now: float) -> float:
        """Count a wrong key from `client`; return how long it is locked out from now on (0.0: not)."""
        failures = self._failures.pop(client, None) or deque(maxlen=self.max_failures)
        failures.append(now)
        self._failures[client] = failures
        while len(self._failures) > self.max_clients:  # the least recently failing client goes first
            del self._failures[next(iter(self._failures))]
        return self.locked_for(client, now)
