"""How CLI commands reach a running proxy: its REST API, with the key from the config."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn

import click
import httpx2

from bus.errors import ConfigError
from services.config import API_KEY_ENV, ProxyConfig, default_config_path, load_config, resolve_data_dir

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
EXIT_NOT_FOUND: Final = 4
REQUEST_TIMEOUT_S: Final = 30.0


class ProxyUnreachableError(Exception):
    pass


@dataclass
class Target:
    """The proxy a command talks to, and the config it was read from."""

    config_path: Path
    config: ProxyConfig
    data_dir: Path
    url: str
    api_key: str

    def request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        try:
            with httpx2.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S) as client:
                return client.request(method, path, headers={"X-API-Key": self.api_key}, **kwargs)
        except httpx2.ConnectError:
            raise ProxyUnreachableError(self.url) from None

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The `data` of a successful answer; exit with the API's error otherwise."""
        try:
            response = self.request(method, path, **kwargs)
        except ProxyUnreachableError:
            die(f"no proxy is running at {self.url}: start it with `mcpproxy serve`", EXIT_UNREACHABLE)
        try:
            body = response.json()
        except ValueError:
            die(f"unexpected answer from {self.url}{path}: HTTP {response.status_code}", EXIT_FAILURE)
        if response.status_code >= 400 or not body.get("success"):
            code = EXIT_NOT_FOUND if response.status_code == 404 else EXIT_FAILURE
            die(str(body.get("error") or f"HTTP {response.status_code}"), code)
        return body["data"]


def die(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"mcpproxy: {message}", err=True)
    sys.exit(code)


def resolve_target(
    config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> Target:
    path = config_path or default_config_path()
    try:
        config = load_config(path, create=False)
    except ConfigError as exc:
        die(str(exc), EXIT_USAGE)
    host, _, port = config.listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return Target(
        config_path=path,
        config=config,
        data_dir=resolve_data_dir(config, path, str(data_dir) if data_dir else None),
        url=(url or f"http://{host}:{port}").rstrip("/"),
        api_key=api_key or os.environ.get(API_KEY_ENV) or config.api_key,
    )


def target_options(func: Any) -> Any:
    """--config, --data-dir, --url, --api-key on every command that talks to a proxy."""
    func = click.option(
        "--api-key", default=None, help="API key (default: $MCPPROXY_API_KEY, then the config)."
    )(func)
    func = click.option("--url", default=None, help="Proxy base URL (default: from `listen` in the config).")(
        func
    )
    func = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data dir.")(func)
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path), default=None, help="Config file."
    )(func)
