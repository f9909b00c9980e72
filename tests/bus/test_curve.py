"""The bus over tcp:// on the loopback: CurveZMQ keys, the allow-list, and dropped connections."""

from __future__ import annotations

import logging
import socket

import pytest
import trio
import zmq

from bus.codec import TO_SUPERVISOR, TO_WORKER
from bus.errors import ConfigError, PeerGoneError
from bus.messages import Heartbeat, Shutdown, ToSupervisor
from bus.transport import (
    CurveKeys,
    RouterChannel,
    bind_router,
    connect_dealer,
    curve_key_problem,
    new_curve_keypair,
    open_bus_security,
)

REFUSAL_WAIT_S = 1.5


def free_tcp_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def keys_for_one_process(*, client_allowed: bool = True, pinned_server: str | None = None) -> CurveKeys:
    """Server and client keys in one process: the server allows the client unless told otherwise."""
    server_public, server_secret = new_curve_keypair()
    public, secret = new_curve_keypair()
    other_public, _ = new_curve_keypair()
    return CurveKeys(
        server_public=pinned_server or server_public,
        public=public,
        secret=secret,
        server_secret=server_secret,
        allowed=frozenset({public if client_allowed else other_public}),
    )


async def rebind(address: str) -> RouterChannel[ToSupervisor]:
    """Bind again where a closed router was: libzmq closes its listener a moment after close()."""
    while True:
        try:
            return bind_router(address, TO_SUPERVISOR)
        except zmq.ZMQError:
            await trio.sleep(0.01)


def test_generated_keys_are_z85_and_garbage_is_named() -> None:
    public, secret = new_curve_keypair()
    assert curve_key_problem(public) is None
    assert curve_key_problem(secret) is None
    assert curve_key_problem("short") is not None
    assert curve_key_problem("é" * 40) is not None


async def test_an_allowed_client_that_pins_the_server_key_talks_over_tcp() -> None:
    address = free_tcp_endpoint()
    async with open_bus_security(keys_for_one_process()):
        router = bind_router(address, TO_SUPERVISOR)
        dealer = connect_dealer(address, b"w/a/1", TO_WORKER)
        try:
            with trio.fail_after(5):
                await dealer.send(Heartbeat(server="a", generation=1))
                peer, message = await router.receive()
                assert (peer, message) == (b"w/a/1", Heartbeat(server="a", generation=1))
                await router.send(peer, Shutdown())
                assert await dealer.receive() == Shutdown()
        finally:
            dealer.close()
            router.close()


async def test_a_client_key_off_the_allow_list_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = free_tcp_endpoint()
    caplog.set_level(logging.WARNING, "bus.transport")
    async with open_bus_security(keys_for_one_process(client_allowed=False)):
        router = bind_router(address, TO_SUPERVISOR)
        dealer = connect_dealer(address, b"w/a/1", TO_WORKER)
        try:
            await dealer.send(Heartbeat(server="a", generation=1))
            with trio.move_on_after(REFUSAL_WAIT_S) as waited:
                await router.receive()
            assert waited.cancelled_caught, "a refused client's message reached the router"
            assert "client key" in caplog.text and "is not allowed" in caplog.text
        finally:
            dealer.close()
            router.close()


async def test_a_client_pinning_another_server_key_never_gets_through() -> None:
    address = free_tcp_endpoint()
    impostor_public, _ = new_curve_keypair()
    async with open_bus_security(keys_for_one_process(pinned_server=impostor_public)):
        router = bind_router(address, TO_SUPERVISOR)
        dealer = connect_dealer(address, b"w/a/1", TO_WORKER)
        try:
            await dealer.send(Heartbeat(server="a", generation=1))
            with trio.move_on_after(REFUSAL_WAIT_S) as waited:
                await router.receive()
            assert waited.cancelled_caught
        finally:
            dealer.close()
            router.close()


def test_tcp_without_keys_is_a_config_error_not_a_plaintext_bus() -> None:
    with pytest.raises(ConfigError, match="no CurveZMQ keys"):
        bind_router(free_tcp_endpoint(), TO_SUPERVISOR)
    with pytest.raises(ConfigError, match="no CurveZMQ keys"):
        connect_dealer(free_tcp_endpoint(), b"w/a/1", TO_WORKER)


async def test_a_dropped_connection_is_reported_and_its_peer_becomes_unroutable() -> None:
    address = free_tcp_endpoint()
    async with open_bus_security(keys_for_one_process()):
        router = bind_router(address, TO_SUPERVISOR)
        dealer = connect_dealer(address, b"w/a/1", TO_WORKER)
        try:
            with trio.fail_after(5):
                await dealer.send(Heartbeat(server="a", generation=1))
                await router.receive()
                dealer.close()
                await router.disconnected()
                while router.probe_nowait(b"w/a/1", Shutdown()):  # the route goes a moment later
                    await trio.sleep(0.01)
                with pytest.raises(PeerGoneError):
                    await router.send(b"w/a/1", Shutdown())
        finally:
            dealer.close()
            router.close()


async def test_a_watching_dealer_hears_each_new_connection_after_its_router_comes_back() -> None:
    address = free_tcp_endpoint()
    async with open_bus_security(keys_for_one_process()):
        router = bind_router(address, TO_SUPERVISOR)
        dealer = connect_dealer(address, b"gateway", TO_WORKER, watch_connects=True)
        try:
            with trio.fail_after(10):
                await dealer.connected()
                router.close()  # the supervisor's pod goes; a new run binds the same address
                router = await rebind(address)
                await dealer.connected()
                await dealer.send(Heartbeat(server="gateway", generation=2))
                assert (await router.receive())[1] == Heartbeat(server="gateway", generation=2)
        finally:
            dealer.close()
            router.close()
