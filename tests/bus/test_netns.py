"""The CurveZMQ tcp:// bus between network namespaces: a peer on the other end of a veth pair.

The router runs in this process, in our namespace, with the gateway's keys; the peer
(tests/bus/netns_peer.py) runs inside the namespace with the worker's keys, or with keys that
are not on the allow-list.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from bus.codec import TO_SUPERVISOR
from bus.errors import PeerGoneError
from bus.messages import Attached, CallTool, Heartbeat, Shutdown
from bus.transport import TCP_HEARTBEAT_IVL_S, TCP_HEARTBEAT_TIMEOUT_S, bind_router, open_bus_security
from services.bus_keys import curve_keys, env_var, generate
from tests.netns import Link, joined_namespace

pytestmark = pytest.mark.requires("netns")

REPO = Path(__file__).resolve().parents[2]
PORT = 7411
PEER_WAIT_S = 20.0
REFUSAL_WAIT_S = 3.0
HEARTBEAT_DEADLINE_S = TCP_HEARTBEAT_IVL_S + TCP_HEARTBEAT_TIMEOUT_S + 1.0
"""A cut link is noticed within one PING interval plus the PING's timeout; 1 s for a busy machine."""


@pytest.fixture
def link() -> Iterator[Link]:
    with joined_namespace() as joined:
        yield joined


def start_peer(link: Link, keys: dict[str, str]) -> subprocess.Popen[str]:
    env = {**os.environ, **{env_var(name): value for name, value in keys.items()}}
    return subprocess.Popen(
        link.argv(sys.executable, "-m", "tests.bus.netns_peer", f"tcp://{link.host_ip}:{PORT}"),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop_peer(peer: subprocess.Popen[str]) -> None:
    if peer.poll() is None:
        peer.kill()
    peer.wait(timeout=10)


async def test_an_allowed_peer_in_another_namespace_talks_to_the_router(link: Link) -> None:
    keys = generate()
    async with open_bus_security(curve_keys("gateway", keys.get)):
        router = bind_router(f"tcp://{link.host_ip}:{PORT}", TO_SUPERVISOR)
        peer = start_peer(link, keys)
        try:
            with trio.fail_after(PEER_WAIT_S):
                identity, message = await router.receive()
                assert (identity, message) == (b"w/peer/1", Heartbeat(server="peer", generation=1))
                await router.send(identity, Attached())
                assert await trio.to_thread.run_sync(peer.wait) == 0
            assert peer.stdout is not None and peer.stdout.read().split() == ["Attached"]
        finally:
            stop_peer(peer)
            router.close()


async def test_a_peer_whose_key_is_not_allowed_is_refused(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    keys = generate()
    impostor = {**keys, **{k: v for k, v in generate().items() if k.startswith("worker_")}}
    caplog.set_level(logging.WARNING, "bus.transport")
    async with open_bus_security(curve_keys("gateway", keys.get)):
        router = bind_router(f"tcp://{link.host_ip}:{PORT}", TO_SUPERVISOR)
        peer = start_peer(link, impostor)
        try:
            with trio.move_on_after(REFUSAL_WAIT_S) as waited:
                await router.receive()
            assert waited.cancelled_caught, "a peer with a key off the allow-list got a message through"
            assert f"refused a CURVE connection from {link.inner_ip}" in caplog.text
            with pytest.raises(PeerGoneError):
                await router.send(b"w/peer/1", Shutdown())
        finally:
            stop_peer(peer)
            router.close()


async def test_a_cut_link_drops_the_peer_within_the_heartbeat_deadline(link: Link) -> None:
    keys = generate()
    async with open_bus_security(curve_keys("gateway", keys.get)):
        router = bind_router(f"tcp://{link.host_ip}:{PORT}", TO_SUPERVISOR)
        peer = start_peer(link, keys)
        try:
            with trio.fail_after(PEER_WAIT_S):
                identity, _ = await router.receive()
                # A call the peer never answers is in flight when the link goes.
                await router.send(identity, CallTool(request_id=1, tool="sleep"))
            link.cut()
            cut_at = time.monotonic()
            with trio.fail_after(HEARTBEAT_DEADLINE_S):
                await router.disconnected()
                while router.probe_nowait(identity, Heartbeat(server="probe", generation=0)):
                    await trio.sleep(0.01)  # the route goes a moment after the drop is reported
            assert time.monotonic() - cut_at >= TCP_HEARTBEAT_TIMEOUT_S - 0.5, "dropped before the timeout"
            assert peer.poll() is None, "the peer itself lives on: only the link is gone"
        finally:
            stop_peer(peer)
            router.close()
