"""How CLI commands reach a running proxy: its REST API, with the key from the config."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click
import httpx2
import trio

from bus.errors import ConfigError
from services.config import (
    API_KEY_ENV,
    ProxyConfig,
    default_config_path,
    load_config,
    parse_listen,
    resolve_data_dir,
)
from services.run_file import read_run_record

URL_ENV: Final = "MCPPROXY_URL"
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
EXIT_NOT_FOUND: Final = 4
REQUEST_TIMEOUT_S: Final = 30.0
COMPLETION_TIMEOUT_S: Final = 2.0

EXIT_CODES_HELP: Final = (
    "Exit codes: 0 ok, 1 failure, 2 usage error, 3 proxy unreachable, 4 not found (server, tool)."
)

T = TypeVar("T")


class ProxyUnreachableError(Exception):
    pass


class CommandError(Exception):
    """A command cannot go on: `message` for the user, `code` for the shell."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def die(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"mcpproxy: {message}", err=True)
    sys.exit(code)


def warn(message: str) -> None:
    click.echo(f"mcpproxy: warning: {message}", err=True)


def unreachable_message(url: str, origin: str = "") -> str:
    where = f" ({origin})" if origin else ""
    return (
        f"no proxy is running at {url}{where}: start it with `mcpproxy serve`, or point --url "
        f"(or ${URL_ENV}) at the one that runs"
    )


@dataclass
class Answer:
    """One REST answer, envelope unpacked."""

    status: int
    ok: bool
    data: Any
    error: str

    @property
    def exit_code(self) -> int:
        return EXIT_NOT_FOUND if self.status == 404 else EXIT_FAILURE


@dataclass
class Target:
    """The proxy a command talks to, and the config it was read from."""

    config_path: Path
    config: ProxyConfig
    data_dir: Path
    url: str
    api_key: str
    config_problem: str | None = None
    """Why the config file could not be used (missing or invalid), when a command tolerates that."""
    url_origin: str = ""
    """Where `url` came from, for the message when nothing answers there."""

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        timeout = kwargs.pop("timeout", REQUEST_TIMEOUT_S)
        try:
            with httpx2.Client(base_url=self.url, timeout=timeout) as client:
                return client.request(method, path, headers=self.headers, **kwargs)
        except (httpx2.ConnectError, httpx2.ConnectTimeout):
            raise ProxyUnreachableError(self.url) from None
        except httpx2.InvalidURL as exc:
            die(f"{self.url}: not a usable URL ({exc}); check --url", EXIT_USAGE)
        except httpx2.TransportError as exc:
            die(f"{method} {self.url}{path} failed: {exc or type(exc).__name__}", EXIT_FAILURE)

    def answer(self, method: str, path: str, **kwargs: Any) -> Answer:
        """The unpacked answer, success or not; exits when the proxy is unreachable or not a proxy."""
        try:
            response = self.request(method, path, **kwargs)
        except ProxyUnreachableError:
            die(unreachable_message(self.url, self.url_origin), EXIT_UNREACHABLE)
        return unpack(response, self.url, path)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The `data` of a successful answer; exit with the API's error otherwise."""
        answer = self.answer(method, path, **kwargs)
        if not answer.ok:
            die(answer.error, answer.exit_code)
        return answer.data

    def async_client(self, **kwargs: Any) -> httpx2.AsyncClient:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
        return httpx2.AsyncClient(base_url=self.url, headers=self.headers, **kwargs)


def unpack(response: httpx2.Response, url: str, path: str) -> Answer:
    try:
        body = response.json()
    except ValueError:
        die(f"unexpected answer from {url}{path}: HTTP {response.status_code} (is this an mcpproxy?)")
    if not isinstance(body, dict):
        die(f"unexpected answer from {url}{path}: HTTP {response.status_code} (is this an mcpproxy?)")
    if response.status_code == 401:
        die(
            f"the proxy at {url} refused the API key: pass --api-key, set {API_KEY_ENV}, "
            "or use the config file the proxy runs with (--config)"
        )
    ok = response.status_code < 400 and bool(body.get("success"))
    return Answer(
        status=response.status_code,
        ok=ok,
        data=body.get("data"),
        error=str(body.get("error") or f"HTTP {response.status_code}"),
    )


def _best_effort_fields(path: Path) -> dict[str, Any]:
    """`listen` and `api_key` from a file that does not validate, if it is JSON at all."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k in ("listen", "api_key") if isinstance(data.get(k), str)}


def _usable_listen(listen: str) -> bool:
    try:
        parse_listen(listen)
    except ConfigError:
        return False
    return True


def resolve_target(
    config_path: Path | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
    *,
    require_config: bool = True,
) -> Target:
    """Where the proxy is and its key. With require_config=False a missing or invalid file is
    recorded in `config_problem` and the defaults (plus whatever the file still says) are used."""
    path = config_path or default_config_path()
    problem = None
    try:
        config = load_config(path, create=False)
    except ConfigError as exc:
        if require_config:
            die(str(exc), EXIT_USAGE)
        problem = str(exc)
        config = ProxyConfig(**_best_effort_fields(path))
        if given_url(url) is None and not _usable_listen(config.listen):
            die(f"{problem}; pass --url to reach a running proxy anyway", EXIT_USAGE)
        if path.exists():
            warn(f"{problem} (using listen and api_key as far as they can be read)")
    resolved_dir = resolve_data_dir(config, path, str(data_dir) if data_dir else None)
    chosen, origin = choose_url(url, resolved_dir, config, path)
    return Target(
        config_path=path,
        config=config,
        data_dir=resolved_dir,
        url=chosen,
        api_key=api_key or os.environ.get(API_KEY_ENV) or config.api_key or _run_key(resolved_dir),
        config_problem=problem,
        url_origin=origin,
    )


def _run_key(data_dir: Path) -> str:
    """The key of the proxy serving `data_dir`, for a run whose key is in no file the user has
    (generated for the run, or from $MCPPROXY_API_KEY in serve's environment)."""
    record = read_run_record(data_dir)
    return record.api_key if record is not None else ""


def choose_url(url: str | None, data_dir: Path, config: ProxyConfig, config_path: Path) -> tuple[str, str]:
    """The proxy's base URL and where it came from.

    In order: --url after the command, --url before it, $MCPPROXY_URL, the run file of the
    proxy serving this data dir (the address it bound, whatever --listen it was given), and
    last `listen` in the config.
    """
    if given := given_url(url):
        return given
    record = read_run_record(data_dir)
    if record is not None:
        return record.url, f"the proxy serving the data dir {data_dir}"
    host, _, port = config.listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}", f"`listen` in {config_path}"


def given_url(url: str | None) -> tuple[str, str] | None:
    """A URL the user named: --url after the command, --url before it, $MCPPROXY_URL; and which."""
    context = click.get_current_context(silent=True)
    root_url = context.find_root().params.get("url") if context is not None else None
    for given, origin in ((url, "--url"), (root_url, "--url"), (os.environ.get(URL_ENV), f"${URL_ENV}")):
        if given:
            return str(given).rstrip("/"), origin
    return None


def target_options(func: Any) -> Any:
    """--config, --data-dir, --url, --api-key on every command that talks to a proxy."""
    func = click.option(
        "--api-key",
        default=None,
        help="API key (default: $MCPPROXY_API_KEY, then the config, then the running proxy's own).",
    )(func)
    func = click.option(
        "--url",
        default=None,
        help=f"Proxy base URL (default: ${URL_ENV}, else the proxy serving the data dir, else `listen`).",
    )(func)
    func = click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Data dir.")(func)
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path), default=None, help="Config file."
    )(func)


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """trio.run, turning a CommandError (even one wrapped by a task group) into its exit."""
    try:
        return trio.run(fn, *args)
    except CommandError as exc:
        die(exc.message, exc.code)
    except BaseExceptionGroup as group:
        leaf = _first_leaf(group)
        if isinstance(leaf, CommandError):
            die(leaf.message, leaf.code)
        if isinstance(leaf, SystemExit | KeyboardInterrupt):
            raise leaf from None
        if isinstance(leaf, httpx2.ConnectError):
            die(f"lost the connection to the proxy: {leaf}", EXIT_UNREACHABLE)
        raise


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first: BaseException = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def complete_server_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of NAME: the servers of the running proxy (nothing if none answers)."""
    params = ctx.params
    try:
        target = _quiet_target(params)
        with httpx2.Client(base_url=target.url, timeout=COMPLETION_TIMEOUT_S) as client:
            response = client.get("/api/v1/servers", headers=target.headers)
        names = [s["name"] for s in response.json()["data"]["servers"]]
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return [n for n in names if n.startswith(incomplete)]


def _quiet_target(params: dict[str, Any]) -> Target:
    path = params.get("config_path") or default_config_path()
    try:
        config = load_config(path, create=False)
    except ConfigError:
        config = ProxyConfig(**_best_effort_fields(path))
    data_dir = resolve_data_dir(config, path, str(params["data_dir"]) if params.get("data_dir") else None)
    url, _ = choose_url(params.get("url"), data_dir, config, path)
    return Target(
        config_path=path,
        config=config,
        data_dir=data_dir,
        url=url,
        api_key=params.get("api_key") or os.environ.get(API_KEY_ENV) or config.api_key or _run_key(data_dir),
    )


def management_target(
    config_path: Path | None, data_dir: Path | None, url: str | None, api_key: str | None
) -> Target:
    """The proxy a management command talks to; a missing config file only means defaults."""
    return resolve_target(config_path, data_dir, url, api_key, require_config=False)


def name_argument(func: Any) -> Any:
    """The NAME argument of server commands, with shell completion of server names."""
    return click.argument("name", shell_complete=complete_server_names)(func)
