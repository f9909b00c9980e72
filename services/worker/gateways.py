"""A worker's calls links to several gateway replicas, seen by the actor as one channel.

With one gateway (every workstation) the actor holds one DEALER. With several replicas
(docs/scale-out.md) the supervisor hands it a comma-separated list of calls endpoints: the
worker connects one DEALER to each and serves them all. Request ids are the gateways' own, so
two gateways can both send call 1: each request gets an id of this worker's on the way in, and
its answers, progress and questions go back to the gateway it came from, under that gateway's
id. A message that belongs to no call (Attach, an upstream log line or resource update outside a
call) goes to every gateway.
"""

from __future__ import annotations

import itertools
from collections import deque

import msgspec
import trio

from bus.codec import GATEWAY_TO_WORKER
from bus.errors import BusError
from bus.messages import (
    AskAnswered,
    Attached,
    CallFailed,
    CallTool,
    CancelCall,
    ForwardRequest,
    ForwardResult,
    GatewayToWorker,
    ToolResult,
    WorkerToGateway,
)
from bus.transport import DealerChannel, connect_dealer

FINAL = (ToolResult, ForwardResult, CallFailed)
"""Answers after which a request's id is forgotten."""


def calls_endpoints(endpoint: str) -> list[str]:
    """The gateways' calls endpoints in a StartUpstream's `calls_endpoint` (one, or a comma list)."""
    return [part.strip() for part in endpoint.split(",") if part.strip()]


class GatewayLinks:
    """DEALERs to several gateways behind the DealerChannel interface the actor uses.

    One task receives (as with a DealerChannel); any task may send.
    """

    def __init__(self, endpoints: list[str], identity: bytes) -> None:
        self._links: list[DealerChannel[GatewayToWorker]] = []
        try:
            for endpoint in endpoints:
                self._links.append(connect_dealer(endpoint, identity, GATEWAY_TO_WORKER))
        except BaseException:
            self.close()
            raise
        self._ids = itertools.count(1)
        self._origin: dict[int, tuple[int, int]] = {}
        """Our request id -> (the gateway's link, the gateway's request id)."""
        self._local: dict[tuple[int, int], int] = {}
        self._ready: deque[tuple[int, GatewayToWorker | BusError]] = deque()

    async def send(self, message: WorkerToGateway) -> None:
        request_id = getattr(message, "request_id", None)
        if request_id is None:
            for link in self._links:
                await link.send(message)
            return
        origin = self._origin.get(request_id)
        if origin is None:
            return  # its request was already answered: nothing waits for this
        index, theirs = origin
        if isinstance(message, FINAL):
            del self._origin[request_id]
            self._local.pop(origin, None)
        await self._links[index].send(msgspec.structs.replace(message, request_id=theirs))

    async def send_soon(self, message: WorkerToGateway) -> None:
        """`send` (DealerChannel.send_soon's counterpart: a scale-out bus spares no pass through the
        scheduler)."""
        await self.send(message)

    async def receive(self) -> GatewayToWorker:
        """The next message from any gateway, its request id made ours. A malformed one raises
        ProtocolError (the links stay usable), as DealerChannel.receive does."""
        while not self._ready:
            # One receiver per link; the first to get a message ends the round. A receive that has
            # consumed a message returns it even when cancelled (bus/transport.py), so none is lost.
            async with trio.open_nursery() as nursery:
                for index, link in enumerate(self._links):
                    nursery.start_soon(self._receive_one, index, link, nursery.cancel_scope)
        index, item = self._ready.popleft()
        if isinstance(item, BusError):
            raise item
        return self._inbound(index, item)

    async def _receive_one(
        self, index: int, link: DealerChannel[GatewayToWorker], round_scope: trio.CancelScope
    ) -> None:
        try:
            self._ready.append((index, await link.receive()))
        except BusError as exc:
            self._ready.append((index, exc))
        round_scope.cancel()

    def _inbound(self, index: int, message: GatewayToWorker) -> GatewayToWorker:
        match message:
            case CallTool() | ForwardRequest():
                ours = next(self._ids)
                self._origin[ours] = (index, message.request_id)
                self._local[index, message.request_id] = ours
                return msgspec.structs.replace(message, request_id=ours)
            case CancelCall(request_id=theirs):
                # An unknown call (already answered) maps to id 0, which is never in flight.
                return CancelCall(request_id=self._local.get((index, theirs), 0))
            case Attached() | AskAnswered():
                return message  # ask ids are the worker's own

    def close(self, linger_ms: int = 0) -> None:
        for link in self._links:
            link.close(linger_ms)


def connect_calls(endpoint: str, identity: bytes) -> DealerChannel[GatewayToWorker] | GatewayLinks:
    """The worker's calls channel: a DEALER to the one gateway, or links to each replica listed."""
    endpoints = calls_endpoints(endpoint)
    if len(endpoints) > 1:
        return GatewayLinks(endpoints, identity)
    return connect_dealer(endpoint, identity, GATEWAY_TO_WORKER)
