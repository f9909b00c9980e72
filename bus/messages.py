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

import enum
from typing import Any, Final, Literal

import msgspec

from bus.access import ClientAction, ClientGrant, ClientInfo, Profile, Tier

PROTOCOL_VERSION: Final = 4
"""4: access control (AccessPolicy, ClientCommand / ClientResult); 3: calls carry what the caller can
answer (UpstreamAsked / AskAnswered); 2: typed actions, states
and kinds (1 carried them as free strings)."""


def worker_identity(server: str, generation: int) -> bytes:
    """The ZeroMQ identity of a server's worker of one generation, on both sockets: `w/<server>/<gen>`."""
    return f"w/{server}/{generation}".encode()


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


Transport = Literal["stdio", "streamable-http", "sse"]
Approval = Literal["approved", "pending", "changed"]
Condition = Literal["retrying", "crash-looping", "unreachable"]
"""Why a server in backoff waits: its first failures, a repeated crash, or a remote out of reach."""
ControlAction = Literal["restart", "approve_tools", "approve_prompts", "login", "logout"]
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
]
ConfigSource = Literal["rest", "mcp", "file"]
"""Who changed the config: a person (REST, which the CLI and the UI use), an AI client, a hand edit."""
FailureKind = Literal["upstream", "timeout", "gone"]
AskMethod = Literal["elicitation/create", "sampling/createMessage", "roots/list"]
"""What an upstream may ask the client while serving its request (a server-initiated request in
the 2025 era, an input request inside an `InputRequiredResult` in the 2026-07-28 era)."""


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every bus message; the tag is the class name."""


# --- shared value types ------------------------------------------------------


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
    """Worker -> supervisor, every HEARTBEAT_INTERVAL_S: the worker's loop is alive."""

    server: str
    generation: int


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

    `action` is one of "restart", "approve_tools", "approve_prompts", "login", "logout".
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


class SecretInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A secret's name, whether the store has it, and the servers whose config references it."""

    name: str
    stored: bool
    servers: list[str] = msgspec.field(default_factory=list)


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


# --- gateway <-> worker ------------------------------------------------------


class Attach(Message, frozen=True, kw_only=True):
    """Worker -> gateway on the calls socket: route calls for `server` to me; answered by Attached."""

    server: str
    generation: int
    protocol_version: int = PROTOCOL_VERSION


class Attached(Message, frozen=True, kw_only=True):
    """Gateway -> worker: the calls route is known; calls may now arrive."""


class CallTool(Message, frozen=True, kw_only=True):
    """Gateway -> worker: run `tool` upstream; answered by ToolResult or CallFailed."""

    request_id: int
    tool: str
    arguments: bytes = b"{}"
    """The call's arguments as JSON bytes (relayed, never re-encoded)."""
    timeout_s: float = 120.0
    want_progress: bool = False
    """The client asked for progress: relay the upstream's notifications as CallProgress."""
    want_logs: bool = False
    """The client takes this call's log messages (a 2026-era client that opted in): the raw lane,
    whose answer can overtake a log line, is not taken."""
    asks: tuple[AskMethod, ...] = ()
    """What the calling client can answer; an upstream's question of another kind is refused at once."""
    input_required: bool = False
    """The caller speaks 2026-07-28: an upstream's `InputRequiredResult` is returned as it is (else the
    worker asks its questions through UpstreamAsked and retries the call itself)."""
    input_responses: bytes | None = None
    """A 2026-era retry: the client's `inputResponses` (JSON object bytes), for the upstream as given."""
    request_state: str | None = None
    """A 2026-era retry: the upstream's `requestState`, echoed by the client."""
    task: bytes | None = None
    """A task-augmented call: the caller's `task` params (JSON object bytes). The upstream creates a
    task, and ToolResult carries its `CreateTaskResult` (the task id as the upstream named it)."""


class CancelCall(Message, frozen=True, kw_only=True):
    """Gateway -> worker: the client gave up on `request_id`; no answer."""

    request_id: int


class ToolResult(Message, frozen=True, kw_only=True):
    """Worker -> gateway: the upstream's CallToolResult as JSON bytes, unchanged."""

    request_id: int
    result: bytes


class CallProgress(Message, frozen=True, kw_only=True):
    """Worker -> gateway: the upstream reported progress on `request_id`; no answer."""

    request_id: int
    progress: float
    total: float | None = None
    message: str | None = None


class CallFailed(Message, frozen=True, kw_only=True):
    """Worker -> gateway: the call could not complete (`kind`: "upstream", "timeout", "gone")."""

    request_id: int
    kind: FailureKind
    error: str
    code: int | None = None
    """The upstream's JSON-RPC error code, when it answered with an error."""


class ForwardRequest(Message, frozen=True, kw_only=True):
    """Gateway -> worker: send `method` (prompts/get, resources/read, completion/complete,
    resources/subscribe, resources/unsubscribe, logging/setLevel) upstream with `params` as given;
    answered by ForwardResult or CallFailed, cancelled by CancelCall."""

    request_id: int
    method: str
    params: bytes = b"{}"
    """JSON object bytes, relayed as the gateway encoded them."""
    timeout_s: float = 120.0
    asks: tuple[AskMethod, ...] = ()
    """What the calling client can answer (as on CallTool)."""


class ForwardResult(Message, frozen=True, kw_only=True):
    """Worker -> gateway: the upstream's result to a ForwardRequest as JSON bytes."""

    request_id: int
    result: bytes


class UpstreamAsked(Message, frozen=True, kw_only=True):
    """Worker -> gateway: while serving `request_id`, the upstream asks the caller `method` with
    `params` (JSON object bytes); answered by AskAnswered with the same `ask_id`."""

    request_id: int
    ask_id: int
    method: AskMethod
    params: bytes = b"{}"


class AskAnswered(Message, frozen=True, kw_only=True):
    """Gateway -> worker: the caller's answer to `ask_id`: a result (JSON object bytes), or an error
    with a JSON-RPC `code` (the caller declined to answer, cannot, or is gone)."""

    ask_id: int
    result: bytes | None = None
    error: str | None = None
    code: int | None = None


class UpstreamNotified(Message, frozen=True, kw_only=True):
    """Worker -> gateway: the upstream sent `notifications/message` or `notifications/resources/updated`;
    no answer (relayed to clients, tagged with the server)."""

    server: str
    method: str
    params: bytes = b"{}"
    request_id: int | None = None
    """A log message sent while exactly one call was in flight: that call's (a 2026-era caller
    gets it on the call's own response stream)."""


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
)
GatewayToWorker = Attached | CallTool | ForwardRequest | CancelCall | AskAnswered
WorkerToGateway = (
    Attach | ToolResult | ForwardResult | CallFailed | CallProgress | UpstreamNotified | UpstreamAsked
)
