"""A worker serving several gateway replicas: each request answered to its own gateway, under its id."""

from __future__ import annotations

from pathlib import Path

import trio

from bus.codec import WORKER_TO_GATEWAY
from bus.messages import (
    Attach,
    CallTool,
    CancelCall,
    ToolResult,
    UpstreamNotified,
)
from bus.transport import bind_router, ipc_endpoint, private_runtime_dir
from services.worker.gateways import GatewayLinks, calls_endpoints


def test_a_comma_list_names_each_gateway() -> None:
    assert calls_endpoints("tcp://a:1, tcp://b:2") == ["tcp://a:1", "tcp://b:2"]
    assert calls_endpoints("ipc:///x/calls.sock") == ["ipc:///x/calls.sock"]


async def test_calls_from_two_gateways_with_the_same_id_are_answered_to_each(tmp_path: Path) -> None:
    runtime = private_runtime_dir(Path("/tmp") / f"mcpproxy-test-{abs(hash(tmp_path)) % 10**8}")
    addresses = [ipc_endpoint(runtime, f"gw{i}") for i in range(2)]
    gateways = [bind_router(address, WORKER_TO_GATEWAY) for address in addresses]
    links = GatewayLinks(addresses, b"w/echo/1")
    try:
        with trio.fail_after(10):
            await links.send(Attach(server="echo", generation=1))  # to every gateway
            for gateway in gateways:
                peer, message = await gateway.receive()
                assert (peer, message) == (b"w/echo/1", Attach(server="echo", generation=1))
            for gateway in gateways:
                await gateway.send(b"w/echo/1", CallTool(request_id=1, tool="echo"))
            calls = [await links.receive(), await links.receive()]
            ours = {c.request_id for c in calls if isinstance(c, CallTool)}
            assert len(ours) == 2, "two gateways' call 1 must be two calls here"
            await gateways[1].send(b"w/echo/1", CancelCall(request_id=1))
            cancel = await links.receive()
            assert isinstance(cancel, CancelCall) and cancel.request_id in ours
            for request_id in sorted(ours):
                await links.send(ToolResult(request_id=request_id, result=b"{}"))
            for gateway in gateways:
                _, answer = await gateway.receive()
                assert answer == ToolResult(request_id=1, result=b"{}")
            await links.send(ToolResult(request_id=min(ours), result=b"{}"))  # answered already: dropped
            await links.send(UpstreamNotified(server="echo", method="notifications/message", params=b"{}"))
            for gateway in gateways:
                _, notice = await gateway.receive()
                assert isinstance(notice, UpstreamNotified)
    finally:
        links.close()
        for gateway in gateways:
            gateway.close()
