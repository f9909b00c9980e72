"""Real ZeroMQ sockets under trio, over ipc:// in a private directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import trio

from bus.codec import TO_SUPERVISOR, TO_WORKER, encode
from bus.errors import PeerGoneError, ProtocolError
from bus.messages import Heartbeat, Shutdown, StartUpstream, UpstreamSpec, WorkerHello
from bus.transport import bind_router, connect_dealer, ipc_endpoint, private_runtime_dir


def endpoint(tmp_path: Path) -> str:
    # AF_UNIX paths are short; tmp_path can be long.
    runtime = private_runtime_dir(Path("/tmp") / f"mcpproxy-test-{abs(hash(tmp_path)) % 10**8}")
    return ipc_endpoint(runtime, "t")


async def test_a_dealer_and_a_router_exchange_typed_messages(tmp_path: Path) -> None:
    address = endpoint(tmp_path)
    router = bind_router(address, TO_SUPERVISOR)
    dealer = connect_dealer(address, b"w/a/1", TO_WORKER)
    try:
        with trio.fail_after(5):
            await dealer.send(WorkerHello(server="a", generation=1, pid=42))
            peer, message = await router.receive()
            assert peer == b"w/a/1"
            assert message == WorkerHello(server="a", generation=1, pid=42)
            spec = UpstreamSpec(name="a", protocol="stdio", command="x")
            await router.send(peer, StartUpstream(spec=spec, calls_endpoint="ipc://x"))
            reply = await dealer.receive()
            assert isinstance(reply, StartUpstream) and reply.spec == spec
    finally:
        dealer.close()
        router.close()


async def test_many_messages_sent_concurrently_all_arrive_in_order_per_sender(tmp_path: Path) -> None:
    address = endpoint(tmp_path)
    router = bind_router(address, TO_SUPERVISOR)
    dealers = [connect_dealer(address, f"w/s{i}/1".encode(), TO_WORKER) for i in range(4)]
    count = 2000
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for index, dealer in enumerate(dealers):

                    async def pump(d=dealer, i=index) -> None:  # type: ignore[no-untyped-def]
                        for g in range(count):
                            await d.send(Heartbeat(server=f"s{i}", generation=g))

                    nursery.start_soon(pump)
                seen: dict[bytes, list[int]] = {}
                for _ in range(count * len(dealers)):
                    peer, message = await router.receive()
                    assert isinstance(message, Heartbeat)
                    seen.setdefault(peer, []).append(message.generation)
            assert all(gens == list(range(count)) for gens in seen.values())
            assert len(seen) == len(dealers)
    finally:
        for dealer in dealers:
            dealer.close()
        router.close()


async def test_sending_to_an_unknown_peer_is_an_error_not_a_silent_drop(tmp_path: Path) -> None:
    router = bind_router(endpoint(tmp_path), TO_SUPERVISOR)
    try:
        with pytest.raises(PeerGoneError):
            await router.send(b"nobody", Shutdown())
    finally:
        router.close()


async def test_a_malformed_message_raises_protocol_error_and_the_channel_keeps_working(
    tmp_path: Path,
) -> None:
    address = endpoint(tmp_path)
    router = bind_router(address, TO_SUPERVISOR)
    dealer = connect_dealer(address, b"x", TO_WORKER)
    try:
        with trio.fail_after(5):
            await dealer._socket.send((b"\xc1not msgpack",))
            with pytest.raises(ProtocolError):
                await router.receive()
            await dealer._socket.send((encode(Shutdown()),))  # valid msgpack, wrong direction
            with pytest.raises(ProtocolError):
                await router.receive()
            await dealer.send(Heartbeat(server="a", generation=1))
            assert (await router.receive())[1] == Heartbeat(server="a", generation=1)
    finally:
        dealer.close()
        router.close()


async def test_a_cancelled_receive_loses_no_message(tmp_path: Path) -> None:
    address = endpoint(tmp_path)
    router = bind_router(address, TO_SUPERVISOR)
    dealer = connect_dealer(address, b"x", TO_WORKER)
    try:
        with trio.move_on_after(0.05):
            await router.receive()
        with trio.fail_after(5):
            await dealer.send(Heartbeat(server="a", generation=7))
            assert (await router.receive())[1] == Heartbeat(server="a", generation=7)
    finally:
        dealer.close()
        router.close()


def test_the_runtime_directory_is_private(tmp_path: Path) -> None:
    directory = private_runtime_dir(tmp_path / "rt")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
