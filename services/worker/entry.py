"""A worker process's entry: it becomes a child subreaper, connects to the supervisor, runs the actor
(services/worker/actor.py) until it stops, and lets its last words reach their peers."""

from __future__ import annotations

import os
import signal
from typing import Final

import trio

from bus.codec import TO_WORKER
from bus.messages import worker_identity
from bus.transport import connect_dealer, open_bus_security
from services import process
from services.bus_keys import curve_keys, lookup_from
from services.worker.actor import Worker

FINAL_LINGER_MS: Final = 1000


async def run_worker(server: str, generation: int, control_endpoint: str, lifeline_fd: int | None) -> int:
    """Entry point of a worker process; over a tcp:// bus, with the worker's CurveZMQ keys."""
    if not control_endpoint.startswith("tcp://"):
        return await _run(server, generation, control_endpoint, lifeline_fd)
    async with open_bus_security(curve_keys("worker", lookup_from(os.environ, None))):
        return await _run(server, generation, control_endpoint, lifeline_fd)


async def _run(server: str, generation: int, control_endpoint: str, lifeline_fd: int | None) -> int:
    process.become_subreaper()
    identity = worker_identity(server, generation)
    control = connect_dealer(control_endpoint, identity, TO_WORKER)
    worker = Worker(server, generation, control)
    # SIGTERM from the supervisor (or PDEATHSIG) means: stop politely.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def _on_signal() -> None:
                async for _ in signals:
                    worker.stop_requested.set()

            nursery.start_soon(_on_signal)
            code = await worker.run(lifeline_fd)
            nursery.cancel_scope.cancel()
    # The last words (WorkerFailed, a call result) must reach their peers before the process ends.
    control.close(linger_ms=FINAL_LINGER_MS)
    if worker.calls is not None:
        worker.calls.close(linger_ms=FINAL_LINGER_MS)
    return code
