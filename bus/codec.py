"""Encoding and decoding of bus messages: msgpack, one decoder per direction, built once."""

from __future__ import annotations

from typing import Any, Final, Generic, TypeVar

import msgspec

from bus.errors import ProtocolError
from bus.messages import (
    GatewayToWorker,
    Message,
    SupervisorToGateway,
    SupervisorToWorker,
    ToSupervisor,
    WorkerToGateway,
)

T = TypeVar("T")

_encoder: Final = msgspec.msgpack.Encoder()


def encode(message: Message) -> bytes:
    """Serialize one message."""
    return _encoder.encode(message)


class Decoder(Generic[T]):
    """Decodes the messages of one union; anything else is a ProtocolError."""

    def __init__(self, union: Any) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(union)

    def decode(self, data: bytes) -> T:
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProtocolError(f"undecodable bus message: {exc}") from exc


TO_SUPERVISOR: Final = Decoder[ToSupervisor](ToSupervisor)
TO_WORKER: Final = Decoder[SupervisorToWorker](SupervisorToWorker)
TO_GATEWAY: Final = Decoder[SupervisorToGateway](SupervisorToGateway)
GATEWAY_TO_WORKER: Final = Decoder[GatewayToWorker](GatewayToWorker)
WORKER_TO_GATEWAY: Final = Decoder[WorkerToGateway](WorkerToGateway)
