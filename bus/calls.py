"""The gateway <-> worker conversation on the calls socket: tool calls, forwarded requests, their
results, progress, an upstream's questions to the caller and its notifications. The direction
unions are in bus/messages.py."""

from __future__ import annotations

from bus.values import PROTOCOL_VERSION, AskMethod, FailureKind, Message


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
    traceparent: str | None = None
    """W3C trace context of the gateway's span of this call (traces on: services/tracing.py); the
    worker's span is its child, and the upstream's request carries the worker's in `_meta`."""


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
