"""The configuration file `mcp_config.json`: schema, validation, defaults, first-run creation.

The schema follows mcpproxy-go's so its users feel at home: top-level
`listen`, `api_key`, `data_dir`, `mcpServers` (a list of server objects; a
Claude-style `{"name": {...}}` map is accepted on read). Validation errors
name the file, the JSON path and the problem, e.g.
`mcp_config.json: mcpServers[2].args: expected array, got string`.
Unknown keys are logged as warnings and kept.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any, Final

import msgspec

from bus.access import Profile, Tier
from bus.errors import ConfigError
from bus.messages import Transport
from services.access_config import validate_access
from services.concurrency_config import validate_call_limits
from services.config_values import (
    LISTEN_HINT as LISTEN_HINT,
    TYPE_NAMES,
    config_error,
    convert_value,
    known_fields,
    parse_duration as parse_duration,
    parse_listen as parse_listen,
    warn_unknown_keys,
)
from services.isolation_config import (
    DOCKER_TIMEOUT_S as DOCKER_TIMEOUT_S,
    DockerIsolationConfig as DockerIsolationConfig,
    IsolationConfig as IsolationConfig,
    validate_docker_isolation,
    validate_isolation,
)
from services.limits_config import LimitsConfig, validate_limits
from services.private_files import write_atomically as write_atomically
from services.start_config import IDLE_TIMEOUT, validate_start
from services.telemetry_config import validate_telemetry

logger = logging.getLogger(__name__)

DEFAULT_LISTEN: Final = "127.0.0.1:8080"
DEFAULT_HOME: Final = Path("~/.mcpproxy")
CONFIG_FILE_NAME: Final = "mcp_config.json"
PROTOCOLS: Final = ("stdio", "http", "sse", "streamable-http", "auto")
SERVER_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
API_KEY_ENV: Final = "MCPPROXY_API_KEY"
CONFIG_ENV: Final = "MCPPROXY_CONFIG"
DEFAULT_REGISTRY: Final = "https://registry.modelcontextprotocol.io"
"""The official MCP registry (services/mcp_registry.py)."""

INIT_TIMEOUT_S: Final = 30.0
CALL_TOOL_TIMEOUT_S: Final = 120.0
CLOSE_TIMEOUT_S: Final = 10.0
KILL_TIMEOUT_S: Final = 9.0
HEALTH_CHECK_INTERVAL_S: Final = 10.0
SECRETS_BACKENDS: Final = ("auto", "keyring", "file")
TOOL_RESPONSE_MODES: Final = ("compact", "full")
"""`tool_response_mode`: what a `retrieve_tools` hit carries when the call does not say (`detail`)."""
DIRECT_MODES: Final = ("full", "deferred")
"""`direct_mode`: `/mcp/all` lists tools with their schemas, or with a one-line signature instead."""
LOGIN_TIMEOUT_S: Final = 300.0
"""How long a person-led OAuth sign-in waits for the person to finish in the browser."""
TOOL_RESPONSE_LIMIT: Final = 20_000
"""Characters of a text result sent to an agent; the rest waits in the result cache (0: no limit)."""
MAX_QUEUED_CALLS: Final = 100
"""Calls that may wait for a slot when `max_concurrent_calls` is reached; more are shed at once."""
QUEUE_TIMEOUT_S: Final = 30.0
"""How long a call may wait for a slot before it is shed (it does not count against call_tool_timeout)."""
MAX_RESULT_SIZE_CHARS: Final = 100_000
"""Advertised on every tool as `_meta["anthropic/maxResultSizeChars"]`: Claude Code cuts results at ~25k
tokens unless a tool says more; above the default limit, so what the proxy sends arrives whole."""


class OAuthConfig(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """`mcpServers[i].oauth`: sign in to a remote server with OAuth 2.1 (see services/worker/oauth.py).

    Without `client_id` the proxy registers itself (RFC 7591). `client_secret`
    may be a `${keyring:NAME}` reference. `redirect_port` pins the loopback
    callback port; otherwise one is chosen at the first sign-in and kept.
    """

    client_id: str | None = None
    client_secret: str | None = None
    scopes: list[str] = msgspec.field(default_factory=list)
    redirect_port: int | None = None
    extra_params: dict[str, str] = msgspec.field(default_factory=dict)


OAUTH_RESERVED_PARAMS: Final = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"}
)
"""Authorization-request parameters the flow owns; `extra_params` may not override them."""


STARTS_PER_CORE: Final = 2
"""Starting an upstream is mostly CPU (its imports): two per core keep every core busy without making
each start wait behind fifty others and time out its `initialize`."""
MIN_START_SLOTS: Final = 2


class PendingChange(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """`mcpServers[i].pending_change`: launch fields an agent proposed, waiting for a human.

    Written by the supervisor (supervisor/agent_changes.py); `proposed` holds
    the launch fields as they would be, and is applied only by an approval.
    """

    id: str
    source: str = "mcp"
    proposed_at: str = ""
    proposed: dict[str, Any] = msgspec.field(default_factory=dict)
    restore_quarantined: bool = False


class ServerConfig(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """One upstream server as written in the file."""

    name: str
    protocol: str = "auto"
    command: str | None = None
    args: list[str] = msgspec.field(default_factory=list)
    env: dict[str, str] = msgspec.field(default_factory=dict)
    working_dir: str | None = None
    url: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    enabled: bool = True
    quarantined: bool = False
    allow_secret_echo: bool = False
    """Tool results may show the secret values the proxy gives this server (else they read `••••`)."""
    init_timeout: float | str | None = None
    call_tool_timeout: float | str | None = None
    health_check_interval: float | str | None = None
    isolation: IsolationConfig | None = None
    oauth: OAuthConfig | None = None
    pending_change: PendingChange | None = None
    protocol_version: str = "auto"
    """The MCP era spoken to this upstream: `2025-11-25` (initialize, a session), `2026-07-28`
    (`server/discover`, stateless), or `auto`: the handshake, and `server/discover` if it is refused."""
    roots: list[str] = msgspec.field(default_factory=list)
    """What the proxy answers this server's `roots/list` with when no single calling client can
    (e.g. at start-up): absolute paths or `file://` URIs. Default none: never another client's roots."""
    description: str = ""
    """One line on what the server is for, told to agents (else the upstream's own instructions)."""
    tool_response_limit: int | None = None
    """Characters of a text result before it is cut (gateway/large_results.py); None: the global one."""
    max_concurrent_calls: int | None = None
    """Calls to this server in flight at once (gateway/admission.py); None: no limit of its own."""
    max_queued_calls: int | None = None
    """Calls waiting in FIFO order for one of those slots; None: the global `max_queued_calls`."""
    queue_timeout: float | str | None = None
    """How long a call may wait in the queue; None: the global `queue_timeout`."""
    start: str | None = None
    """`always` or `on_demand` (services/start_config.py); None: the global `start`."""
    idle_timeout: float | str | None = None
    """An on-demand server without calls this long is stopped (0: never); None: the global one."""
    max_lifetime: float | str | None = None
    """A generation this old is recycled once its calls finish (0: never); None: the global one."""
    limits: LimitsConfig | None = None
    """Resource caps of a local stdio upstream, each over the global one (services/limits_config.py)."""

    @property
    def transport(self) -> Transport:
        """The concrete transport: `auto` resolves to stdio for a command, HTTP for a URL."""
        match self.protocol:
            case "auto":
                return "stdio" if self.command else "streamable-http"
            case "http" | "streamable-http":
                return "streamable-http"
            case "sse":
                return "sse"
            case _:  # "stdio"; validate_server refuses anything else before a transport is asked for
                return "stdio"

    def init_timeout_s(self) -> float:
        return INIT_TIMEOUT_S if self.init_timeout is None else parse_duration(self.init_timeout)

    def health_check_interval_s(self) -> float:
        if self.health_check_interval is None:
            return HEALTH_CHECK_INTERVAL_S
        return parse_duration(self.health_check_interval)

    def call_tool_timeout_s(self) -> float:
        return (
            CALL_TOOL_TIMEOUT_S if self.call_tool_timeout is None else parse_duration(self.call_tool_timeout)
        )


class RestartConfig(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """`restart`: how a failed server is retried (seconds)."""

    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    max_failures: int = 5
    failure_window: float = 300.0
    stable_after: float = 60.0


class ProxyConfig(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """The whole file."""

    listen: str = DEFAULT_LISTEN
    api_key: str = ""
    data_dir: str | None = None
    mcpServers: list[ServerConfig] = msgspec.field(default_factory=list)
    reveal_secret_headers: bool = False
    trusted_hosts: list[str] = msgspec.field(default_factory=list)
    close_timeout: float | str = CLOSE_TIMEOUT_S
    kill_timeout: float | str = KILL_TIMEOUT_S
    restart: RestartConfig = msgspec.field(default_factory=RestartConfig)
    secrets_backend: str = "auto"
    quarantine_enabled: bool = True
    docker_isolation: DockerIsolationConfig = msgspec.field(default_factory=DockerIsolationConfig)
    max_concurrent_starts: int | None = None
    """How many servers may be between spawn and initialized at once; default STARTS_PER_CORE per core."""
    tool_tiers: dict[str, Tier] = msgspec.field(default_factory=dict)
    """Tier overrides by `server:tool` glob (services/access.py)."""
    registries: list[str] = msgspec.field(default_factory=lambda: [DEFAULT_REGISTRY])
    """MCP registries `registry search` asks, in order (read by the gateway when it starts)."""
    profiles: list[Profile] = msgspec.field(default_factory=list)
    require_mcp_auth: bool | None = None
    """None: required unless the proxy listens on loopback."""
    anonymous_profile: str | None = None
    """The profile of a caller without a credential on /mcp (None: every server, no management)."""
    tool_response_mode: str = "compact"
    direct_mode: str = "full"
    tool_response_limit: int = TOOL_RESPONSE_LIMIT
    max_result_size_chars: int = MAX_RESULT_SIZE_CHARS
    max_concurrent_calls: int | None = None
    """Calls in flight across every server at once (gateway/admission.py); None: no limit."""
    max_queued_calls: int = MAX_QUEUED_CALLS
    queue_timeout: float | str = QUEUE_TIMEOUT_S
    start: str = "always"
    """Every server's default: `always` or `on_demand` (services/start_config.py)."""
    idle_timeout: float | str = IDLE_TIMEOUT
    max_lifetime: float | str | None = None
    metrics_access: str = "api_key"
    """Who may scrape `/metrics`: `api_key`, or `loopback` (no key from this machine)."""
    otlp_endpoint: str | None = None
    """An OTLP/HTTP receiver (`http://host:4318`): traces of every call go there; None: no tracing."""
    env: dict[str, str] = msgspec.field(default_factory=dict)
    """Given to every stdio upstream under its own `env` (secret references allowed)."""
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    """Resource caps of every local stdio upstream, under its own `limits`."""

    def server(self, name: str) -> ServerConfig | None:
        return next((s for s in self.mcpServers if s.name == name), None)

    def close_timeout_s(self) -> float:
        return parse_duration(self.close_timeout)

    def start_slots(self) -> int:
        if self.max_concurrent_starts is not None:
            return self.max_concurrent_starts
        return max(MIN_START_SLOTS, STARTS_PER_CORE * (os.cpu_count() or 1))

    def kill_timeout_s(self) -> float:
        return parse_duration(self.kill_timeout)


def _servers_as_list(raw: Any, file: str) -> list[Any]:
    if isinstance(raw, dict):
        # Claude Desktop style: {"name": {...}}; the key is the name.
        return [{"name": name, **body} if isinstance(body, dict) else body for name, body in raw.items()]
    if isinstance(raw, list):
        return raw
    got = TYPE_NAMES.get(type(raw).__name__, "object" if raw is None else type(raw).__name__)
    raise config_error(file, "mcpServers", f"expected array, got {got}")


def validate_server(server: ServerConfig, file: str, path: str) -> None:
    """Rules msgspec types cannot say: names, protocols, which fields each transport needs."""
    if not SERVER_NAME_RE.fullmatch(server.name):
        raise config_error(
            file,
            f"{path}.name",
            f"invalid server name {server.name!r}: use 1-64 of A-Z a-z 0-9 _ . - (no ':')",
        )
    if server.protocol not in PROTOCOLS:
        raise config_error(
            file,
            f"{path}.protocol",
            f"unknown protocol {server.protocol!r}: use one of {', '.join(PROTOCOLS)}",
        )
    if server.protocol == "auto" and not server.command and not server.url:
        raise config_error(file, path, "a server needs a command (stdio) or a url (HTTP)")
    if server.transport == "stdio" and not server.command:
        raise config_error(file, f"{path}.command", "a stdio server needs a command")
    if server.transport != "stdio" and not server.url:
        raise config_error(file, f"{path}.url", f"an {server.protocol} server needs a url")
    for index, arg in enumerate(server.args):
        if "${keyring:" in arg or "${env:" in arg:
            logger.warning(
                "%s: %s.args[%d] holds a secret reference: its value will be visible in the upstream's "
                "process list; prefer passing secrets through `env`",
                file,
                path,
                index,
            )
    for field in ("init_timeout", "call_tool_timeout", "health_check_interval"):
        value = getattr(server, field)
        if value is not None:
            try:
                parse_duration(value)
            except ConfigError as exc:
                raise config_error(file, f"{path}.{field}", str(exc)) from None
    if server.protocol_version not in MCP_ERAS:
        raise config_error(
            file,
            f"{path}.protocol_version",
            f"unknown protocol_version {server.protocol_version!r}: use one of {', '.join(MCP_ERAS)}",
        )
    for index, root in enumerate(server.roots):
        if not (root.startswith("/") or root.startswith("file://")):
            raise config_error(
                file, f"{path}.roots[{index}]", f"{root!r}: use an absolute path or a file:// URI"
            )
    if server.tool_response_limit is not None and server.tool_response_limit < 0:
        raise config_error(
            file, f"{path}.tool_response_limit", "expected characters, 0 or more (0: no limit)"
        )
    validate_call_limits(server, file, f"{path}.")
    validate_start(server, file, f"{path}.")
    if server.pending_change is not None and not server.quarantined:
        raise config_error(
            file,
            f"{path}.pending_change",
            "a server with a pending change stays quarantined until a human approves or rejects it "
            f"(`mcpproxy upstream approve {server.name}` / `mcpproxy upstream reject {server.name}`)",
        )
    if server.isolation is not None:
        validate_isolation(server.isolation, server.transport, file, f"{path}.isolation")
    if server.oauth is not None:
        validate_oauth(server.oauth, server.transport, file, f"{path}.oauth")
    if server.limits is not None:
        validate_limits(server.limits, file, f"{path}.limits")


MCP_ERAS: Final = ("auto", "2025-11-25", "2026-07-28")


def root_uri(root: str) -> str:
    """A configured root as the `file://` URI clients send (a path is turned into one)."""
    return root if root.startswith("file://") else Path(root).as_uri()


def validate_restart(restart: RestartConfig, file: str) -> None:
    """`restart`: every delay and window a positive number of seconds, at least one failure."""
    for field in ("initial_backoff", "max_backoff", "failure_window", "stable_after"):
        value = getattr(restart, field)
        if not (math.isfinite(value) and value > 0):
            raise config_error(file, f"restart.{field}", f"{value!r}: expected seconds greater than 0")
    if restart.max_failures < 1:
        raise config_error(file, "restart.max_failures", "expected 1 or more")


def validate_oauth(oauth: OAuthConfig, transport: str, file: str, path: str) -> None:
    if transport == "stdio":
        raise config_error(file, path, "oauth applies to servers with a url, not stdio servers")
    if oauth.redirect_port is not None and not 1024 <= oauth.redirect_port <= 65535:
        raise config_error(file, f"{path}.redirect_port", "expected a port between 1024 and 65535")
    if oauth.client_secret and not oauth.client_id:
        raise config_error(file, f"{path}.client_secret", "a client_secret needs a client_id")
    for key in oauth.extra_params:
        if key in OAUTH_RESERVED_PARAMS:
            raise config_error(
                file,
                f"{path}.extra_params.{key}",
                f"{key!r} is set by the sign-in flow and cannot be overridden",
            )


def parse_config(text: str, file: str = CONFIG_FILE_NAME) -> ProxyConfig:
    """Parse and validate the text of a config file; raise ConfigError naming the path and problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise config_error(
            file, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise config_error(file, "", "expected a JSON object at the top level")
    for key in sorted(set(data) - known_fields(ProxyConfig)):
        logger.warning("%s: unknown key %r kept as is", file, key)
    servers_raw = _servers_as_list(data.get("mcpServers", []), file)
    servers: list[ServerConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(servers_raw):
        path = f"mcpServers[{index}]"
        if not isinstance(raw, dict):
            raise config_error(file, path, "expected object")
        for key in sorted(set(raw) - known_fields(ServerConfig)):
            logger.warning("%s: %s: unknown key %r kept as is", file, path, key)
        warn_unknown_keys(raw.get("isolation"), IsolationConfig, file, f"{path}.isolation")
        warn_unknown_keys(raw.get("oauth"), OAuthConfig, file, f"{path}.oauth")
        server = convert_value(raw, ServerConfig, file, path)
        validate_server(server, file, path)
        if server.name in seen:
            raise config_error(file, f"{path}.name", f"duplicate server name {server.name!r}")
        seen.add(server.name)
        servers.append(server)
    top = {k: v for k, v in data.items() if k != "mcpServers"}
    config: ProxyConfig = convert_value(top, ProxyConfig, file, "")
    config.mcpServers = servers
    if config.secrets_backend not in SECRETS_BACKENDS:
        raise config_error(
            file,
            "secrets_backend",
            f"unknown backend {config.secrets_backend!r}: use {', '.join(SECRETS_BACKENDS)}",
        )
    try:
        parse_listen(config.listen)
    except ConfigError as exc:
        raise config_error(file, "listen", str(exc)) from None
    for field in ("close_timeout", "kill_timeout"):
        try:
            parse_duration(getattr(config, field))
        except ConfigError as exc:
            raise config_error(file, field, str(exc)) from None
    validate_restart(config.restart, file)
    for field, allowed in (("tool_response_mode", TOOL_RESPONSE_MODES), ("direct_mode", DIRECT_MODES)):
        if getattr(config, field) not in allowed:
            raise config_error(
                file, field, f"unknown mode {getattr(config, field)!r}: use {' or '.join(allowed)}"
            )
    for field in ("tool_response_limit", "max_result_size_chars"):
        if getattr(config, field) < 0:
            raise config_error(file, field, "expected characters, 0 or more (0: off)")
    validate_call_limits(config, file, "")
    validate_start(config, file, "")
    validate_telemetry(config, file)
    if config.max_concurrent_starts is not None and config.max_concurrent_starts < 1:
        raise config_error(file, "max_concurrent_starts", "expected 1 or more")
    warn_unknown_keys(data.get("docker_isolation"), DockerIsolationConfig, file, "docker_isolation")
    validate_docker_isolation(config.docker_isolation, file)
    validate_limits(config.limits, file, "limits")
    validate_access(config.tool_tiers, config.profiles, config.anonymous_profile, file)
    return config


def default_config_path() -> Path:
    """`$MCPPROXY_CONFIG`, else `~/.mcpproxy/mcp_config.json`."""
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env).expanduser() if from_env else DEFAULT_HOME.expanduser() / CONFIG_FILE_NAME


def create_default(path: Path) -> None:
    """First run: a config with safe defaults (loopback listen, a random API key, no servers)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {"listen": DEFAULT_LISTEN, "api_key": secrets.token_urlsafe(32), "mcpServers": []}
    draft = path.with_name(f".{path.name}.{os.getpid()}.new")
    write_atomically(draft, json.dumps(body, indent=2) + "\n")
    try:
        # link() fails if the file exists: when two processes race, the first one's key wins.
        os.link(draft, path)
        logger.info("created %s with a new API key and no servers", path)
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)


def load_config(path: Path, *, create: bool = False) -> ProxyConfig:
    """Read and validate the file at `path` (creating a default one first if asked)."""
    if not path.exists():
        if not create:
            raise ConfigError(f"{path}: no such config file")
        create_default(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    config = parse_config(text, file=path.name)
    env_key = os.environ.get(API_KEY_ENV)
    if env_key:
        config.api_key = env_key
    return config


def resolve_data_dir(config: ProxyConfig, config_path: Path, override: str | None) -> Path:
    """--data-dir wins, then `data_dir` in the file, then the directory holding the file."""
    chosen = override or config.data_dir
    return Path(chosen).expanduser() if chosen else config_path.parent
