"""Every message that crosses the bus, as frozen msgspec structs.

Three conversations, each with one union per direction:

- worker <-> supervisor (control socket): lifecycle, tool lists, heartbeats.
- gateway <-> supervisor (control socket): a subscription to server state,
  and management commands.
- gateway <-> worker (calls socket): tool calls and their results.

Rules: new fields get defaults; a field never changes type; `Hello` messages
carry PROTOCOL_VERSION, and a peer of another version is refused. Actions,
states and kinds are enums or Literals, which msgspec checks on decode: an
unknown value is a decode error, never a string compared somewhere later.
"""

from __future__ import annotations

import msgspec

from bus.access import ClientAction, ClientGrant, ClientInfo, Profile, Tier
from bus.calls import (
    AskAnswered as AskAnswered,
    Attach as Attach,
    Attached as Attached,
    CallFailed as CallFailed,
    CallProgress as CallProgress,
    CallTool as CallTool,
    CancelCall as CancelCall,
    ForwardRequest as ForwardRequest,
    ForwardResult as ForwardResult,
    ToolResult as ToolResult,
    UpstreamAsked as UpstreamAsked,
    UpstreamNotified as UpstreamNotified,
)
from bus.values import (
    PROTOCOL_VERSION as PROTOCOL_VERSION,
    Approval as Approval,
    AskMethod as AskMethod,
    Catalog as Catalog,
    Condition as Condition,
    ConfigAction as ConfigAction,
    ConfigSource as ConfigSource,
    ContainerSpec as ContainerSpec,
    ControlAction as ControlAction,
    ExitInfo as ExitInfo,
    FailureKind as FailureKind,
    HeldPrompt as HeldPrompt,
    Message as Message,
    OAuthSpec as OAuthSpec,
    SecretAction as SecretAction,
    SecretInfo as SecretInfo,
    ServerState as ServerState,
    ServerStatus as ServerStatus,
    ToolInfo as ToolInfo,
    Transport as Transport,
    UpstreamSpec as UpstreamSpec,
)


def worker_identity(server: str, generation: int) -> bytes:
    """The ZeroMQ identity of a server's worker of one generation, on both sockets: `w/<server>/<gen>`."""
    return f"w/{server}/{generation}".encode()


# --- worker -> supervisor ----------------------------------------------------


class WorkerHello(Message, frozen=True, kw_only=True):
    """Worker -> supervisor, first message: who I am; answered by StartUpstream."""

    server: str
    generation: int
    pid: int
    protocol_version: int = PROTOCOL_VERSION


class UpstreamSpawned(Message, frozen=True, kw_only=True):
    """Worker -> supervisor: the upstream process exists (its group is ours to kill)."""

    server: str
    generation: int
    pid: int
    pgid: int
    start: int = 0
    """`pid`'s start time (clock ticks since boot), read by its parent before it could be reaped, so
    it is the upstream's and not a later process's that reused the pid; 0 when unknown."""


class WorkerReady(Message, frozen=True, kw_only=True):
    """Worker -> supervisor: the upstream is initialized and these are its tools."""

    server: str
    generation: int
    tools: list[ToolInfo]
    server_version: str | None = None
    signed_in: bool = False
    """The connection carries an OAuth access token."""
    catalog: Catalog = msgspec.field(default_factory=Catalog)
    """Its prompts, resources and resource templates (for the capabilities it advertised)."""
    summary: str = ""
    """One line on what the upstream is for, from its own instructions or description (may be empty)."""


class ToolsChanged(Message, frozen=True, kw_only=True):
    """Worker -> supervisor: the upstream announced a new tool list."""

    server: str
    generation: int
    tools: list[ToolInfo]


class CatalogChanged(Message, frozen=True, kw_only=True):
    """Worker -> supervisor: the upstream announced a new prompt or resource list (re-published as
    ServerCatalog)."""

    server: str
    generation: int
    catalog: Catalog


class WorkerFailed(Message, frozen=True, kw_only=True):
    """Worker -> supervisor: the upstream could not start or went away; the worker exits next."""

    server: str
    generation: int
    error: str
    login_required: bool = False
    """The upstream wants a person to sign in: wait for `login` instead of retrying."""


class LoginStarted(Message, frozen=True, kw_only=True):
    """Worker -> supervisor: the OAuth flow is waiting for a person at `url` (the authorization URL)."""

    server: str
    generation: int
    url: str


class UpstreamHealth(Message, frozen=True, kw_only=True):
    """Worker -> supervisor: the upstream stopped (or resumed) answering pings."""

    server: str
    generation: int
    healthy: bool
    error: str | None = None


class Heartbeat(Message, frozen=True, kw_only=True):
    """Worker -> supervisor, every HEARTBEAT_INTERVAL_S: the worker's loop is alive, and how busy it is
    (the idle stop and the `max_lifetime` recycle wait for a worker with nothing in flight)."""

    server: str
    generation: int
    busy: int = 0
    """Calls and forwarded requests in flight."""
    idle_s: float = 0.0
    """Seconds since the last of them ended (or since the worker started)."""
    served: int = 0
    """Calls and forwarded requests begun by this generation so far."""


# --- supervisor -> worker ----------------------------------------------------


class StartUpstream(Message, frozen=True, kw_only=True):
    """Supervisor -> worker: connect to this upstream; answered by WorkerReady or WorkerFailed."""

    spec: UpstreamSpec
    calls_endpoint: str


class Shutdown(Message, frozen=True, kw_only=True):
    """Supervisor -> worker: stop the upstream with the staged stop, then exit."""


# --- gateway -> supervisor ---------------------------------------------------


class Subscribe(Message, frozen=True, kw_only=True):
    """Gateway -> supervisor: send a Snapshot, then every ServerChanged and ServerTools."""

    protocol_version: int = PROTOCOL_VERSION


class ControlCommand(Message, frozen=True, kw_only=True):
    """Gateway -> supervisor: act on one server; answered by CommandResult.

    `action` is one of "restart", "approve_tools", "approve_prompts", "login", "logout", "start" (an
    on-demand server a call needs: answered at once, the server's status then shows the start).
    """

    request_id: int
    action: ControlAction
    server: str
    tools: list[str] | None = None
    """For "approve_tools": which tools (None: every pending or changed one)."""
    prompts: list[str] | None = None
    """For "approve_prompts": which prompts, by the upstream's names (None: every held one)."""


class SecretCommand(Message, frozen=True, kw_only=True):
    """Gateway -> supervisor: `action` "list", "set" or "delete" a secret; answered by SecretResult."""

    request_id: int
    action: SecretAction
    name: str = ""
    value: str = ""


class ConfigCommand(Message, frozen=True, kw_only=True):
    """Gateway -> supervisor: read or change the configuration; answered by ConfigResult.

    `action`: get, validate, add, patch, remove, enable, disable, quarantine,
    unquarantine, reject, config_to_secret. `body` is JSON. `source` says who
    asked ("rest", "mcp", ...): what an AI client ("mcp") may change is decided
    by supervisor/agent_changes.py. `keyed` says whether an MCP caller presented
    the API key (the management right).
    """

    request_id: int
    action: ConfigAction
    server: str = ""
    body: bytes = b"null"
    source: ConfigSource = "rest"
    keyed: bool = False


class ClientCommand(Message, frozen=True, kw_only=True):
    """Gateway -> supervisor: list, add, rotate or revoke a client credential; answered by ClientResult.

    The gateway makes the credential and sends only its SHA-256 (`token_sha256`, for add and rotate):
    the credential itself never crosses the bus and is never stored.
    """

    request_id: int
    action: ClientAction
    name: str = ""
    profile: str = ""
    token_sha256: str = ""
    expires_at: float | None = None


# --- supervisor -> gateway ---------------------------------------------------


class AccessPolicy(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: tool tier overrides, profiles, MCP auth settings and client grants.

    Sent after Snapshot, whenever the config is applied, and before the ClientResult of a change to
    the clients (so the change holds from the next request on).
    """

    tool_tiers: dict[str, Tier] = msgspec.field(default_factory=dict)
    profiles: list[Profile] = msgspec.field(default_factory=list)
    require_mcp_auth: bool | None = None
    """None: the default (required unless the proxy listens on loopback)."""
    anonymous_profile: str | None = None
    clients: list[ClientGrant] = msgspec.field(default_factory=list)


class ResultLimits(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: how long a tool result may be before it is cut (gateway/large_results.py).

    Sent after Snapshot and whenever the config is applied. Characters; 0 = no limit.
    """

    tool_response_limit: int = 20_000
    server_limits: dict[str, int] = msgspec.field(default_factory=dict)
    """The servers whose own `tool_response_limit` overrides the global one."""
    max_result_size_chars: int = 100_000
    """Advertised on every tool as `_meta["anthropic/maxResultSizeChars"]` (0: not advertised)."""


class ServerCallLimits(msgspec.Struct, frozen=True, kw_only=True):
    """One server's own concurrency settings; None: the global value (CallLimits)."""

    max_concurrent_calls: int | None = None
    max_queued_calls: int | None = None
    queue_timeout_s: float | None = None


class CallLimits(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: how many calls may run at once, per server and across all servers, how
    many more may wait in FIFO order and for how long (gateway/admission.py).

    Sent after Snapshot and whenever the config is applied. `max_concurrent_calls` None: no limit.
    """

    max_concurrent_calls: int | None = None
    """Calls in flight across every server at once."""
    max_queued_calls: int = 100
    queue_timeout_s: float = 30.0
    servers: dict[str, ServerCallLimits] = msgspec.field(default_factory=dict)
    """The servers with concurrency settings of their own."""


class ClientResult(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: the answer to a ClientCommand (the clients, never a credential or hash)."""

    request_id: int
    ok: bool
    status: int = 200
    error: str | None = None
    clients: list[ClientInfo] = msgspec.field(default_factory=list)


class ConfigResult(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: the answer to a ConfigCommand; `body` is redacted JSON."""

    request_id: int
    ok: bool
    status: int = 200
    error: str | None = None
    body: bytes = b"null"


class KnownSecrets(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: every secret value the proxy knows, scrubbed from the activity log and
    from tool results (unless the server has `allow_secret_echo`).

    Sent after Snapshot and whenever the config or the secrets change. Never shown, never stored.
    """

    values: list[str]


class Notice(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: an event for /events subscribers (`config.saved`, `secrets.changed`, ...)."""

    event: str
    data: bytes = b"{}"


class SecretResult(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: the answer to a SecretCommand (never a value)."""

    request_id: int
    ok: bool
    error: str | None = None
    status: int = 200
    backend: str = ""
    secrets: list[SecretInfo] = msgspec.field(default_factory=list)
    restarted: list[str] = msgspec.field(default_factory=list)


class Snapshot(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: the state of every server and the tools of the running ones."""

    servers: list[ServerStatus]
    tools: dict[str, list[ToolInfo]]
    secrets_backend: str = ""
    catalogs: dict[str, Catalog] = msgspec.field(default_factory=dict)
    """The prompts, resources and templates of the running servers."""


class ServerChanged(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: one server's status changed."""

    status: ServerStatus


class ServerRemoved(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: a server left the configuration."""

    name: str


class ServerTools(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: the tools a server's current worker generation serves."""

    server: str
    generation: int
    tools: list[ToolInfo]


class ServerCatalog(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: the prompts, resources and templates a server's current generation serves."""

    server: str
    generation: int
    catalog: Catalog


class CommandResult(Message, frozen=True, kw_only=True):
    """Supervisor -> gateway: the answer to a ControlCommand."""

    request_id: int
    ok: bool
    error: str | None = None
    status: ServerStatus | None = None
    login_url: str | None = None
    """For "login": where the person signs in (None when the server connected without one)."""


WorkerToSupervisor = (
    WorkerHello
    | UpstreamSpawned
    | WorkerReady
    | ToolsChanged
    | CatalogChanged
    | WorkerFailed
    | LoginStarted
    | Heartbeat
    | UpstreamHealth
)
GatewayToSupervisor = Subscribe | ControlCommand | SecretCommand | ConfigCommand | ClientCommand
ToSupervisor = WorkerToSupervisor | GatewayToSupervisor
SupervisorToWorker = StartUpstream | Shutdown
SupervisorToGateway = (
    Snapshot
    | ServerChanged
    | ServerRemoved
    | ServerTools
    | ServerCatalog
    | CommandResult
    | SecretResult
    | ConfigResult
    | Notice
    | KnownSecrets
    | AccessPolicy
    | ClientResult
    | ResultLimits
    | CallLimits
)
GatewayToWorker = Attached | CallTool | ForwardRequest | CancelCall | AskAnswered
WorkerToGateway = (
    Attach | ToolResult | ForwardResult | CallFailed | CallProgress | UpstreamNotified | UpstreamAsked
)
