"""Test harness: a network namespace joined to ours by a veth pair, on addresses of its own.

The pair is 10.213.<n>.1/30 here and 10.213.<n>.2/30 inside the namespace, <n> chosen so no
interface of this machine already uses it: the tests' traffic never leaves these two ends.
Needs root and iproute2's `ip` (test group `netns`). Teardown kills every process still in the
namespace, deletes the pair and the namespace, whatever happened before.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Final

import pytest

PREFIX: Final = "10.213"
IP_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True)
class Link:
    """A namespace and the veth pair that joins it to ours."""

    namespace: str
    host_if: str
    host_ip: str
    inner_ip: str

    def argv(self, *command: str) -> list[str]:
        """`command` run inside the namespace."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def cut(self) -> None:
        """Take our end down: the peer's packets are dropped without a word (no FIN, no RST)."""
        ip("link", "set", self.host_if, "down")


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def netns_problem() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` (apt-get install iproute2)"
    return None


def _free_subnet() -> int:
    used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for _ in range(64):
        n = secrets.randbelow(250) + 1
        if f" {PREFIX}.{n}." not in used:
            return n
    raise RuntimeError(f"no free {PREFIX}.x.0/30 subnet")


def _kill_inside(namespace: str) -> None:
    listed = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    for pid in listed.stdout.split():
        with suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@contextmanager
def joined_namespace() -> Iterator[Link]:
    """A fresh namespace joined by a veth pair; skips (with the reason) where that cannot be made."""
    if problem := netns_problem():
        pytest.skip(problem)
    tag = secrets.token_hex(3)
    n = _free_subnet()
    link = Link(f"mcpx-{tag}", f"mxh{tag}", f"{PREFIX}.{n}.1", f"{PREFIX}.{n}.2")
    inner_if = f"mxn{tag}"
    try:
        ip("netns", "add", link.namespace)
        ip("link", "add", link.host_if, "type", "veth", "peer", "name", inner_if)
        ip("link", "set", inner_if, "netns", link.namespace)
        ip("addr", "add", f"{link.host_ip}/30", "dev", link.host_if)
        ip("link", "set", link.host_if, "up")
        ns = ("-n", link.namespace)
        ip(*ns, "addr", "add", f"{link.inner_ip}/30", "dev", inner_if)
        ip(*ns, "link", "set", inner_if, "up")
        ip(*ns, "link", "set", "lo", "up")
        yield link
    finally:
        _kill_inside(link.namespace)
        with suppress(RuntimeError):
            ip("link", "del", link.host_if)  # takes its peer along
        with suppress(RuntimeError):
            ip("netns", "del", link.namespace)
