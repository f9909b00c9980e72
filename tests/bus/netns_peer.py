"""A bus peer for tests/bus/test_netns.py, run inside a network namespace.

`python -m tests.bus.netns_peer ENDPOINT`: connects a DEALER (`w/peer/1`) with the worker keys of
its environment, sends a Heartbeat every HEARTBEAT_S until the router answers `Attached`, prints what came
back and exits 0. It never answers a call: the test cuts the link while one is in flight.
"""

from __future__ import annotations

import os
import sys
from typing import Final

import trio

from bus.codec import GATEWAY_TO_WORKER
from bus.messages import Attached, Heartbeat
from bus.transport import connect_dealer, open_bus_security
from services.bus_keys import curve_keys, lookup_from

HEARTBEAT_S: Final = 0.2


async def main(endpoint: str) -> None:
    async with open_bus_security(curve_keys("worker", lookup_from(os.environ, None))):
        dealer = connect_dealer(endpoint, b"w/peer/1", GATEWAY_TO_WORKER)
        try:
            async with trio.open_nursery() as nursery:

                async def beat() -> None:
                    while True:
                        await dealer.send(Heartbeat(server="peer", generation=1))
                        await trio.sleep(HEARTBEAT_S)

                nursery.start_soon(beat)
                while not isinstance(message := await dealer.receive(), Attached):
                    print(type(message).__name__, flush=True)
                print("Attached", flush=True)
                nursery.cancel_scope.cancel()
        finally:
            dealer.close()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
