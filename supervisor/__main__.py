"""`python -m supervisor --config PATH [--data-dir DIR]`: the control plane process."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import trio

from bus.errors import ConfigError, ProxyError
from bus.transport import CurveKeys, open_bus_security
from services import process
from services.bus_keys import curve_keys, lookup_from, worker_environment
from services.config import default_config_path, load_config, resolve_data_dir
from services.runtime import endpoints_for
from services.secrets import SecretStore
from supervisor.control import ControlPlane
from supervisor.ledger import AlreadyRunningError

logger = logging.getLogger("supervisor")


async def run(plane: ControlPlane, keys: CurveKeys | None = None) -> None:
    if keys is None:
        await _serve(plane)
        return
    async with open_bus_security(keys):
        await _serve(plane)


async def _serve(plane: ControlPlane) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(plane.serve)
            count = len(plane.runners)
            logger.info("supervisor ready: %d server%s configured", count, "" if count == 1 else "s")
            async for signum in signals:
                logger.info("%s received: stopping every server", signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel()
    logger.info("supervisor stopped")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m supervisor")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--log-level", default=os.environ.get("MCPPROXY_LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    # The parent (`mcpproxy serve`) dying means: stop everything politely.
    process.die_with_parent(signal.SIGTERM)
    config_path = args.config or default_config_path()
    try:
        config = load_config(config_path, create=args.config is None)
    except ConfigError as exc:
        print(f"mcpproxy: {exc}", file=sys.stderr)
        sys.exit(2)
    data_dir = resolve_data_dir(config, config_path, args.data_dir)
    keys: CurveKeys | None = None
    if endpoints_for(data_dir).uses_tcp:
        try:
            lookup = lookup_from(os.environ, SecretStore(data_dir, config.secrets_backend).get_sync)
            keys = curve_keys("supervisor", lookup)
            # The workers it spawns (and its zygote) inherit their keys from here.
            os.environ.update(worker_environment(lookup))
        except ProxyError as exc:
            print(f"mcpproxy: {exc}", file=sys.stderr)
            sys.exit(2)
    try:
        trio.run(run, ControlPlane(config, data_dir, args.log_level, config_path), keys)
    except* AlreadyRunningError as group:
        print(f"mcpproxy: {group.exceptions[0]}", file=sys.stderr)
        sys.exit(2)
    process.exit_now(0)  # every worker is reaped and the ledger written: `mcpproxy serve` waits for this


if __name__ == "__main__":
    main()
