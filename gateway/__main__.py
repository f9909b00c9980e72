"""`python -m gateway --config PATH [--data-dir DIR] [--listen HOST:PORT]`: the HTTP gateway process."""

from __future__ import annotations

import gc

# The imports below build ~100k objects that live as long as the process and leave almost no garbage
# (~3k objects): collections during them cost ~7% of the gateway's start for nothing. `run` freezes
# what startup built and turns the collector back on.
gc.disable()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Final  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import trio  # noqa: E402
from hypercorn.config import Config as HypercornConfig  # noqa: E402
from hypercorn.trio import serve  # noqa: E402

from bus.errors import ConfigError, ProxyError  # noqa: E402
from bus.transport import CurveKeys, open_bus_security  # noqa: E402
from gateway import _hypercorn_internals  # noqa: E402
from gateway.app import GatewaySettings, build_app  # noqa: E402
from services import process  # noqa: E402
from services.bus_keys import curve_keys, lookup_from  # noqa: E402
from services.config import default_config_path, load_config, parse_listen, resolve_data_dir  # noqa: E402
from services.run_file import RunRecord, remove_run_record, write_run_record  # noqa: E402
from services.runtime import endpoints_for  # noqa: E402

logger = logging.getLogger("gateway")

GRACEFUL_TIMEOUT_S: Final = 1.0
QUIET_BELOW_DEBUG: Final = (
    "mcp.server.streamable_http_manager",
    "mcp.server.streamable_http",
    "hypercorn.error",
)
"""Loggers whose INFO lines are noise here: each MCP endpoint's session manager announces its start
and stop (two endpoints, so each line twice) and every session it opens and ends, and hypercorn says
it is running beside "gateway listening on". Their warnings and errors still show."""


def raise_descriptor_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: every client connection holds a descriptor, and the
    soft limit is often 1,024 (trio's epoll has no FD_SETSIZE limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # an unlimited hard limit is above the kernel's nr_open
        logger.warning("open-file limit stays at %d (hard %d): %s", soft, hard, exc)
        return
    logger.debug("open-file limit raised from %d to %d", soft, hard)


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def run(settings: GatewaySettings, keys: CurveKeys | None = None) -> None:
    if keys is None:
        await _serve(settings)
        return
    async with open_bus_security(keys):
        await _serve(settings)


async def _serve(settings: GatewaySettings) -> None:
    app, _upstreams, lane = build_app(settings)
    _hypercorn_internals.install(lane=lane)
    # What startup built (the SDK's models: ~100k objects) lives as long as the process; a full collection
    # walking it stalls every request for ~40 ms. Freeze it out of reach, without collecting first: that
    # collection would cost as much, to free the few objects the imports left behind.
    gc.freeze()
    gc.enable()
    config = HypercornConfig()
    config.bind = [f"{settings.listen_host}:{settings.listen_port}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT_S
    # hypercorn's read_timeout also cuts long-lived responses (SSE) after it. The front door bounds
    # each request body's total time instead; gateway/_hypercorn_internals.py bounds request heads and
    # idle connections, and closes a connection its client has closed.
    config.read_timeout = None
    config.keep_alive_timeout = _hypercorn_internals.KEEP_ALIVE_S
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
            listen_error: BaseException | None = None
            try:
                urls = await nursery.start(
                    lambda task_status: serve(
                        app, config, shutdown_trigger=shutdown.wait, task_status=task_status
                    )
                )
            except* OSError as group:  # hypercorn binding the address: in use, not ours, no such host
                listen_error = _first_leaf(group)
            if listen_error is None:
                logger.info("gateway listening on %s", ", ".join(urls) if urls else config.bind[0])
                write_run_record(settings.data_dir, _bound(settings, urls))
                try:
                    await shutdown.wait()
                finally:
                    remove_run_record(settings.data_dir, os.getpid())
            else:
                nursery.cancel_scope.cancel()
    if listen_error is not None:
        shown = f"[{settings.listen_host}]" if ":" in settings.listen_host else settings.listen_host
        reason = getattr(listen_error, "strerror", None) or listen_error
        raise ConfigError(f"cannot listen on {shown}:{settings.listen_port}: {reason}")
    logger.info("gateway stopped")


def _bound(settings: GatewaySettings, urls: list[str] | None) -> RunRecord:
    """What the run file records: the address hypercorn bound (port 0 resolved), else the one asked for."""
    port = settings.listen_port
    for url in urls or []:
        with contextlib.suppress(ValueError):
            port = urlsplit(url).port or port
            break
    return RunRecord(pid=os.getpid(), host=settings.listen_host, port=port, api_key=settings.api_key)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--listen", default=None)
    parser.add_argument("--log-level", default=os.environ.get("MCPPROXY_LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in QUIET_BELOW_DEBUG:
            logging.getLogger(name).setLevel(logging.WARNING)
    process.die_with_parent(signal.SIGTERM)
    raise_descriptor_limit()
    config_path = args.config or default_config_path()
    try:
        config = load_config(config_path, create=args.config is None)
        host, port = parse_listen(args.listen or config.listen)
    except ConfigError as exc:
        print(f"mcpproxy: {exc}", file=sys.stderr)
        sys.exit(2)
    data_dir = resolve_data_dir(config, config_path, args.data_dir)
    endpoints = endpoints_for(data_dir)
    keys: CurveKeys | None = None
    if endpoints.uses_tcp:
        # Only a tcp:// bus needs the secrets store here; the ipc:// start does not import it.
        from services.secrets import SecretStore

        try:
            endpoints.bind_calls()  # several gateways listed, none of them ours: say so now
            store = SecretStore(data_dir, config.secrets_backend)
            keys = curve_keys("gateway", lookup_from(os.environ, store.get_sync))
        except ProxyError as exc:
            print(f"mcpproxy: {exc}", file=sys.stderr)
            sys.exit(2)
    settings = GatewaySettings(
        listen_host=host,
        listen_port=port,
        api_key=config.api_key,
        data_dir=data_dir,
        control_endpoint=endpoints.control,
        calls_endpoint=endpoints.bind_calls(),
        trusted_hosts=tuple(config.trusted_hosts),
        tool_response_mode=config.tool_response_mode,
        direct_mode=config.direct_mode,
        metrics_access=config.metrics_access,
        otlp_endpoint=config.otlp_endpoint,
        registries=tuple(config.registries),
    )
    try:
        trio.run(run, settings, keys)
    except ConfigError as exc:
        print(f"mcpproxy: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
