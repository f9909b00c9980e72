"""`python -m services.worker --server NAME --generation N --control ENDPOINT`: one upstream's worker."""

from __future__ import annotations

import argparse
import os
import signal
import sys

import trio

from bus.transport import terminate_context
from services import process
from services.worker.entry import run_worker
from services.worker.log_format import configure_worker_logging


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.worker")
    parser.add_argument("--server", required=True)
    parser.add_argument("--generation", type=int, required=True)
    parser.add_argument("--control", required=True, help="the supervisor's control endpoint")
    parser.add_argument(
        "--lifeline-fd", type=int, default=None, help="a pipe that reaches EOF when the supervisor dies"
    )
    parser.add_argument("--log-level", default=os.environ.get("MCPPROXY_LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    configure_worker_logging(args.server, args.log_level)
    # If the supervisor dies without a word, we hear SIGTERM and stop the upstream politely.
    process.set_parent_death_signal(signal.SIGTERM)
    code = trio.run(run_worker, args.server, args.generation, args.control, args.lifeline_fd)
    terminate_context()  # let the last message (WorkerFailed, a result) leave within its linger
    sys.exit(code)


if __name__ == "__main__":
    main()
