"""What bus messages (bus/messages.py) are built from: their base class, server states, the
vocabulary of actions and kinds, and the structs inside messages (tools, catalogs, specs, statuses)."""

from __future__ import annotations

import enum
from typing import Any, Final, Literal

import msgspec

PROTOCOL_VERSION: Final = 5
"""5: on-demand start (ControlCommand `start`, state `idle`); 4: access control (AccessPolicy,
ClientCommand / ClientResult); 3: calls carry what the caller can
answer (UpstreamAsked / AskAnswered); 2: typed actions, states
and kinds (1 carried them as free strings)."""


class ServerState(enum.StrEnum):
    """Where one server's worker is in its lifecycle (the transitions: supervisor/states.py)."""

    STOPPED = "stopped"
    """Not running and not meant to: disabled, quarantined, or stopped on purpose."""
    STARTING = "starting"
    """Waiting for a start slot, or a worker process exists and is initializing its upstream."""
    RUNNING = "running"
    """The upstream is initialized; its tools are served."""
    BACKOFF = "backoff"
    """The last start failed or the worker died; a retry is scheduled."""
    STOPPING = "stopping"
    """The staged stop is under way."""
    EXITED = "exited"
    """The worker ended unexpectedly; the restart policy decides what is next."""
    FATAL = "fatal"
    """A local server that never started failed too often; only a human restart brings it back."""
    NEEDS_LOGIN = "needs_login"
    """An OAuth upstream waits for a person to sign in (`login`); it is not retried until then."""
    IDLE = "idle"
    """An on-demand server with no worker: not started yet, or stopped after `idle_timeout`. Its tools
    are listed from the last time it ran; the first call starts it (supervisor/on_demand.py)."""


Transport = Literal["stdio", "streamable-http", "sse"]
Approval = Literal["approved", "pending", "changed"]
Condition = Literal["retrying", "crash-looping", "unreachable"]
"""Why a server in backoff waits: its first failures, a repeated crash, or a remote out of reach."""
ControlAction = Literal["restart", "approve_tools", "approve_prompts", "login", "logout", "start"]
SecretAction = Literal["list", "set", "delete"]
ConfigAction = Literal[
    "get",
    "validate",
    "add",
    "patch",
    "remove",
    "enable",
    "disable",
    "quarantine",
    "unquarantine",
    "reject",
    "config_to_secret",
    "set_profile",
    "remove_profile",
    "set_tool_tier",
    "clear_tool_tier",
    "set_access",
]
ConfigSource = Literal["rest", "mcp", "file"]
"""Who changed the config: a person (REST, which the CLI and the UI use), an AI client, a hand edit."""
FailureKind = Literal["upstream", "timeout", "gone"]
AskMethod = Literal["elicitation/create", "sampling/createMessage", "roots/list"]
"""What an upstream may ask the client while serving its request (a server-initiated request in
the 2025 era, an input request inside an `InputRequiredResult` in the 2026-07-28 era)."""


class ToolInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One upstream tool as the upstream described it (names are the upstream's own)."""

    name: str
    description: str = ""
    title: str | None = None
    input_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    approval: Approval = "approved"
    """Tool pinning: "approved", "pending" (new) or "changed" (differs from what was approved)."""
    previous: dict[str, Any] | None = None
    """For a changed tool, the approved definition, to show the difference."""
    meta: dict[str, Any] | None = None
    """The tool's `_meta` (an MCP App's `ui.resourceUri`, ...): passed on, not pinned."""
    execution: dict[str, Any] | None = None
    """The tool's `execution` (`taskSupport`: `forbidden`, `optional`, `required`): passed on, not pinned."""


class HeldPrompt(msgspec.Struct, frozen=True, kw_only=True):
    """Prompt pinning: a prompt not served until a human approves it."""

    approval: Approval
    """"pending" (new) or "changed" (differs from what was approved)."""
    previous: dict[str, Any] | None = None
    """For a changed prompt, the approved definition, to show the difference."""


class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    """What an upstream offers beside tools, each entry as the upstream wrote it (camelCase JSON).

    `capabilities` is the upstream's `ServerCapabilities` (which of prompts, resources, resource
    subscriptions, completions and logging it serves).
    """

    prompts: list[dict[str, Any]] = msgspec.field(default_factory=list)
    resources: list[dict[str, Any]] = msgspec.field(default_factory=list)
    templates: list[dict[str, Any]] = msgspec.field(default_factory=list)
    capabilities: dict[str, Any] = msgspec.field(default_factory=dict)
    held_prompts: dict[str, HeldPrompt] = msgspec.field(default_factory=dict)
    """Prompt pinning (set by the supervisor): the prompts in `prompts` that are held, by name. The
    others are approved. A worker always sends it empty."""


class ContainerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Docker isolation: the container a stdio upstream runs in, as the supervisor resolved it."""

    image: str
    name: str
    network_mode: str = "bridge"
    memory_bytes: int | None = None
    nano_cpus: int | None = None
    extra_args: list[str] = msgspec.field(default_factory=list)
    """`docker run`-style options, validated at config load (services/isolation.py)."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    start_timeout_s: float = 30.0


class OAuthSpec(msgspec.Struct, frozen=True, kw_only=True):
    """OAuth 2.1 for a remote upstream, as configured (`client_secret` may still be a reference)."""

    client_id: str | None = None
    client_secret: str | None = None
    scopes: list[str] = msgspec.field(default_factory=list)
    redirect_port: int | None = None
    extra_params: dict[str, str] = msgspec.field(default_factory=dict)


class ResourceLimits(msgspec.Struct, frozen=True, kw_only=True):
    """`limits` of a local stdio upstream as the supervisor resolved them (the server's over the global
    ones); the worker enforces them with a cgroup of its own, else rlimits (services/limits.py)."""

    cgroup: str
    """Relative to the proxy's own cgroup in each hierarchy: `mcpproxy-<instance>/<server>@<generation>`."""
    memory: str | None = None
    """As configured (`512m`), for the error that names it."""
    memory_bytes: int | None = None
    cpu: float | None = None
    """CPUs' worth of time per period (0.5: half of one core)."""
    pids: int | None = None
    open_files: int | None = None


class UpstreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a worker needs to reach its upstream, with references still unresolved."""

    name: str
    protocol: Transport
    command: str | None = None
    args: list[str] = msgspec.field(default_factory=list)
    env: dict[str, str] = msgspec.field(default_factory=dict)
    working_dir: str | None = None
    url: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    init_timeout_s: float = 30.0
    close_timeout_s: float = 10.0
    kill_timeout_s: float = 9.0
    log_path: str | None = None
    log_max_bytes: int = 5 * 1024 * 1024
    secrets_dir: str | None = None
    secrets_backend: str = "auto"
    ping_interval_s: float = 10.0
    fallback_sse: bool = False
    """`protocol: auto` with a url: try streamable HTTP first, then legacy SSE."""
    container: ContainerSpec | None = None
    """Docker isolation: run the stdio command in this container instead of as our child."""
    oauth: OAuthSpec | None = None
    """A remote upstream signs in with OAuth; None still answers a Bearer challenge with `needs_login`."""
    login: bool = False
    """A person asked to sign in: run the browser flow (report LoginStarted) instead of giving up."""
    roots: list[str] = msgspec.field(default_factory=list)
    """`file://` URIs: the answer to a `roots/list` no single calling client can answer."""
    protocol_version: Literal["auto", "2025-11-25", "2026-07-28"] = "auto"
    """The MCP era to speak to the upstream (`auto`: the handshake, else `server/discover`)."""
    limits: ResourceLimits | None = None
    """Resource caps of a local stdio upstream (Docker isolation keeps its own limits)."""
    otlp_endpoint: str | None = None
    """Where the worker exports its call spans (OTLP/HTTP); None: no traces."""


class ExitInfo(msgspec.Struct, frozen=True, kw_only=True):
    """How a worker process ended."""

    code: int | None = None
    signal: int | None = None
    at: float = 0.0


class ServerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The supervisor's view of one configured server (no secrets: config values stay out)."""

    name: str
    protocol: Transport
    enabled: bool
    quarantined: bool
    state: ServerState
    generation: int = 0
    worker_pid: int | None = None
    upstream_pid: int | None = None
    tool_count: int = 0
    restarts: int = 0
    last_error: str | None = None
    last_exit: ExitInfo | None = None
    next_retry_at: float | None = None
    call_timeout_s: float = 120.0
    server_version: str | None = None
    healthy: bool = True
    oauth: bool = False
    """The server signs in with OAuth (configured, or it answered with a Bearer challenge)."""
    signed_in: bool = False
    """Running with an OAuth access token."""
    config_json: bytes = b"{}"
    """The server object from the config file, redacted (unless reveal_secret_headers)."""
    allow_secret_echo: bool = False
    """Tool results may carry the secret values the proxy gave this server (else they are scrubbed)."""
    condition: Condition | None = None
    """While in backoff (or retrying): "retrying", "crash-looping" or "unreachable" (supervisor/policy.py)."""
    summary: str = ""
    """One line on what the server is for: the config's `description`, else the upstream's own words
    from its last start (gateway/instructions.py tells agents)."""
    on_demand: bool = False
    """`start: on_demand`: idle until a call needs it, listed meanwhile from its tool cache."""
    draining: bool = False
    """The current generation is being stopped politely (after `idle_timeout`, or recycled after
    `max_lifetime`): its calls in flight finish, new ones wait for the next generation."""
    init_timeout_s: float = 30.0
    """How long a start may take; a call that starts an on-demand server waits that long (and a margin)."""


class SecretInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A secret's name, whether the store has it, and the servers whose config references it."""

    name: str
    stored: bool
    servers: list[str] = msgspec.field(default_factory=list)


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every bus message; the tag is the class name."""
