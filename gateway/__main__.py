"""`python -m gateway --config PATH [--data-dir DIR] [--listen HOST:PORT]`: the HTTP gateway process."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Final

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from bus.errors import ConfigError
from gateway import _h11_coalesce
from gateway.app import GatewaySettings, build_app
from services import process
from services.config import default_config_path, load_config, resolve_data_dir
from services.runtime import endpoints_for

logger = logging.getLogger("gateway")

GRACEFUL_TIMEOUT_S: Final = 1.0
KEEP_ALIVE_S: Final = 75


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


async def run(settings: GatewaySettings) -> None:
    app, _upstreams = build_app(settings)
    _h11_coalesce.install()
    # What startup built (the SDK's models, the search index and embeddings: ~100k objects) lives as long
    # as the process; a full collection walking it stalls every request for ~40 ms. Freeze it out of reach.
    gc.collect()
    gc.freeze()
    config = HypercornConfig()
    config.bind = [f"{settings.listen_host}:{settings.listen_port}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    # hypercorn's read_timeout also cuts long-lived responses (SSE) after it; the front door
    # times out slow request bodies instead.
    config.read_timeout = None
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    shutdown = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def _on_signal() -> None:
                async for signum in signals:
                    logger.info("%s received: stopping the gateway", signal.Signals(signum).name)
                    shutdown.set()
                    return

            nursery.start_soon(_on_signal)
            urls = await nursery.start(
                lambda task_status: serve(
                    app, config, shutdown_trigger=shutdown.wait, task_status=task_status
                )
            )
            logger.info("gateway listening on %s", ", ".join(urls) if urls else config.bind[0])
            await shutdown.wait()
    logger.info("gateway stopped")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--listen", default=None)
    parser.add_argument("--log-level", default=os.environ.get("MCPPROXY_LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    process.set_parent_death_signal(signal.SIGTERM)
    config_path = args.config or default_config_path()
    try:
        config = load_config(config_path, create=args.config is None)
        host, port = split_listen(args.listen or config.listen)
    except ConfigError as exc:
        print(f"mcpproxy: {exc}", file=sys.stderr)
        sys.exit(2)
    data_dir = resolve_data_dir(config, config_path, args.data_dir)
    endpoints = endpoints_for(data_dir)
    settings = GatewaySettings(
        listen_host=host,
        listen_port=port,
        api_key=config.api_key,
        data_dir=data_dir,
        control_endpoint=endpoints.control,
        calls_endpoint=endpoints.calls,
        trusted_hosts=tuple(config.trusted_hosts),
    )
    trio.run(run, settings)


if __name__ == "__main__":
    main()
