"""One call path for every surface: check, call, record.

`/mcp` (call_tool_*), `/mcp/all` and REST all come through `Caller.call`:
the caller's profile is checked (gateway/access.py: a tool outside it is
unknown), then quarantine and pinning (`guard`), and a tool must be called with
the `call_tool_*` variant of its tier or a higher one (services/access.py: a
tool without annotations is destructive); the upstream result is returned unchanged but for the
secret values the proxy injected (`secret_echo`, unless the server allows
them) and, for agents, text beyond the server's limit (`large_results`); a server's concurrency
limit may queue or shed the call first (`admission`); and every outcome — ok, error, blocked,
timeout, rejected — lands in the activity log.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import mcp.types as types
import pydantic

from bus.errors import PeerGoneError, ProxyError
from bus.messages import AskMethod, ToolInfo
from gateway import guard
from gateway.access import NOBODY, Identity
from gateway.admission import Admission, Ticket, retry_after, shed_result
from gateway.asks import Asking, AskRefusedError, ToolAnswer
from gateway.call_context import CallContext, Log, call_record
from gateway.in_flight import CallOptions, Progress
from gateway.large_results import LargeResults
from gateway.on_demand import StartRefusedError
from gateway.registry import Registry
from gateway.secret_echo import EchoGuard
from gateway.upstreams import CallTimeoutError, Upstreams
from services.access import RANK, VARIANT_TIER
from services.activity import ActivityLog

CallErrorKind = guard.RefusalKind | Literal["timeout", "upstream_error"]
"""What went wrong with a call the proxy answered itself, as clients read it from the result's `_meta`.

A tool that ran and failed (the upstream's own `isError`) carries no kind: only the proxy's errors do."""
ERROR_META_KEY: Final = "mcpproxy/error"
BLOCKED_KINDS: Final[frozenset[CallErrorKind]] = frozenset(
    {"quarantined", "held", "destructive_variant", "write_variant"}
)


def error_result(
    message: str, kind: CallErrorKind | None = None, server: str | None = None
) -> types.CallToolResult:
    """An `isError` result; with a `kind`, its `_meta["mcpproxy/error"]` says `{kind, server}`."""
    meta = {ERROR_META_KEY: {"kind": kind, "server": server}} if kind is not None else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True, _meta=meta
    )


def _tagged_log(log: Log | None, server: str) -> Callable[[bytes], Awaitable[None]] | None:
    """An upstream's log message to the caller, its logger tagged with the server (`server:logger`)."""
    if log is None:
        return None
    relay = log

    async def on_log(params: bytes) -> None:
        message = json.loads(params)
        source = message.get("logger")
        with contextlib.suppress(Exception):  # the client's request may be over: then it is dropped
            await relay(
                message.get("level", "info"), message.get("data"), f"{server}:{source}" if source else server
            )

    return on_log


_TOOL_ANSWER: Final = pydantic.TypeAdapter[ToolAnswer](ToolAnswer)


def _outcome(method: AskMethod, answer: dict[str, Any]) -> dict[str, Any]:
    """What the activity log keeps of a client's answer: its outcome, not its content."""
    if method == "elicitation/create":
        return {"action": answer.get("action")}
    if method == "sampling/createMessage":
        return {"model": answer.get("model"), "stopReason": answer.get("stopReason")}
    return {"roots": len(answer.get("roots") or [])}


def _first_problem(error: pydantic.ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "result"
    return f"{where}: {first['msg']}"


def activity_status(kind: CallErrorKind) -> str:
    if kind in BLOCKED_KINDS:
        return "blocked"
    if kind == "timeout":
        return "timeout"
    if kind == "unavailable":
        return "unavailable"
    return "error"


class CallSpans(Protocol):
    """A trace span around each call (gateway/tracing.py)."""

    def span(self, server: str, tool: str, context: CallContext) -> AbstractContextManager[None]: ...

    def outcome(self, status: str) -> None:
        """The activity status of the call in the current span."""


_NO_SPAN: Final = contextlib.nullcontext()


@dataclass(frozen=True, slots=True)
class _Asked:
    """A call as asked, before it is let in: what the checks and the activity record need."""

    server: str
    tool: str
    shown_name: str
    known: Iterable[str] | Callable[[], Iterable[str]]
    variant: str | None
    context: CallContext
    started: float
    arguments: str
    """The arguments as JSON text, as they are sent and recorded."""


def _asked(
    server: str,
    tool: str,
    shown_name: str,
    known: Iterable[str] | Callable[[], Iterable[str]],
    variant: str | None,
    context: CallContext,
    arguments: dict[str, Any],
) -> _Asked:
    arguments_text = json.dumps(arguments, ensure_ascii=False)
    return _Asked(server, tool, shown_name, known, variant, context, time.monotonic(), arguments_text)


class Caller:
    def __init__(self, registry: Registry, upstreams: Upstreams, activity: ActivityLog | None) -> None:
        self.registry = registry
        self.upstreams = upstreams
        self.activity = activity
        self.on_recorded: Any = None
        self.echo_guard = EchoGuard()
        self.large: LargeResults | None = None
        """Cuts long results for agents (gateway/app.py sets it)."""
        self.admission = Admission()
        """How many calls run at once (gateway/admission.py); the supervisor's CallLimits set it."""
        self.spans: CallSpans | None = None
        """A span around each call when traces are on (gateway/tracing.py); None: no cost but a check."""

    async def call(
        self,
        server: str,
        tool_name: str,
        arguments: dict[str, Any],
        context: CallContext,
        *,
        shown_name: str,
        known: Iterable[str] | Callable[[], Iterable[str]],
        variant: str | None = None,
    ) -> ToolAnswer:
        """`known`: the names to suggest from when the tool is unknown (a callable is only called then)."""
        asked = _asked(server, tool_name, shown_name, known, variant, context, arguments)
        with self._span(asked):
            let_in = await self._let_in(asked)
            return let_in if isinstance(let_in, types.CallToolResult) else await self._call(asked, *let_in)

    async def _call(self, asked: _Asked, tool: ToolInfo, ticket: Ticket | None) -> ToolAnswer:
        server, shown_name, context = asked.server, asked.shown_name, asked.context
        started, arguments_text = asked.started, asked.arguments
        configured = self.registry.servers.get(server)
        echo_allowed = configured is not None and configured.allow_secret_echo
        options = CallOptions(
            progress=context.progress if echo_allowed else self._scrubbed_progress(context.progress),
            asking=self._recorded_asking(context, server, tool.name, echo_allowed),
            on_log=_tagged_log(context.log, server),
            input_required=context.input_required,
            input_responses=context.input_responses,
            request_state=context.request_state,
        )
        try:
            raw = await self.upstreams.call(server, tool.name, arguments_text.encode(), options)
        except StartRefusedError as exc:  # started on demand, its new tool set held by pinning
            kind = exc.refusal.kind
            self._record(
                server, tool.name, context, activity_status(kind), started, arguments_text, error=str(exc)
            )
            return error_result(str(exc), kind, server)
        except CallTimeoutError as exc:
            self._record(server, tool.name, context, "timeout", started, arguments_text, error=str(exc))
            return error_result(f"{shown_name}: {exc}", "timeout", server)
        except PeerGoneError as exc:
            self._record(server, tool.name, context, "unavailable", started, arguments_text, error=str(exc))
            return error_result(f"{shown_name}: {exc}", "unavailable", server)
        except ProxyError as exc:
            self._record(server, tool.name, context, "error", started, arguments_text, error=str(exc))
            return error_result(f"{shown_name}: {exc}", "upstream_error", server)
        finally:
            if ticket is not None:
                self.admission.leave(ticket)
        try:  # the one validation of a result (the worker's raw lane relays bytes as they came)
            if context.input_required:
                answer = _TOOL_ANSWER.validate_json(raw)
                if isinstance(answer, types.InputRequiredResult):  # a 2026-era upstream asks the client
                    self._record(server, tool.name, context, "input_required", started, arguments_text)
                    return answer if echo_allowed else self.echo_guard.scrub(answer)
                result = answer
            else:
                result = types.CallToolResult.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            message = (
                f"{shown_name}: the upstream answered with an invalid tool result: {_first_problem(exc)}"
            )
            self._record(server, tool.name, context, "error", started, arguments_text, error=message)
            return error_result(message, "upstream_error", server)
        status = "error" if result.is_error else "ok"
        self._record(
            server, tool.name, context, status, started, arguments_text, result=raw.decode(errors="replace")
        )
        return await self.shorten(
            result if echo_allowed else self.echo_guard.scrub(result), server, tool, context
        )

    async def shorten(
        self, result: types.CallToolResult, server: str, tool: ToolInfo | None, context: CallContext
    ) -> types.CallToolResult:
        """A result as the caller gets it: text beyond the server's limit cut and cached
        (gateway/large_results.py), on every path of every MCP endpoint, fast lane included."""
        if self.large is None:
            return result
        return await self.large.shorten(result, server, tool, context.surface, context.identity)

    def _admit(
        self,
        server: str,
        tool_name: str,
        shown_name: str,
        known: Iterable[str] | Callable[[], Iterable[str]],
        variant: str | None,
        identity: Identity = NOBODY,
    ) -> ToolInfo | guard.Refusal:
        """The tool, if the caller's profile, quarantine, pinning and its tier let it be called."""
        view = self.registry.view(identity)
        profile = identity.profile_name
        if profile is not None:
            # Nothing beyond the profile is named, not even as a suggestion.
            outside = guard.Refusal("unknown_tool", f"unknown tool {shown_name!r} in profile {profile!r}")
            if not view.has_server(server):
                return outside
            checked = guard.check(self.registry, server, tool_name, shown_name, list)
            if isinstance(checked, ToolInfo) and not view.has_tool(server, checked):
                return outside
            if isinstance(checked, guard.Refusal) and checked.kind in ("unknown_server", "unknown_tool"):
                return outside
        else:
            names = known if callable(known) else lambda: known
            checked = guard.check(self.registry, server, tool_name, shown_name, names)
        if not isinstance(checked, ToolInfo) or variant is None:
            return checked
        tier = view.tier(server, checked)
        if RANK[VARIANT_TIER.get(variant, "destructive")] < RANK[tier.tier]:
            how = {
                "mcp_default": "has no annotations, so it is destructive (the MCP default)",
                "config": f"is {tier.tier} (tool_tiers in the config)",
                "annotations": f"is annotated {tier.tier}",
            }[tier.source]
            return guard.Refusal(
                "destructive_variant" if tier.tier == "destructive" else "write_variant",
                f"{shown_name} {how}: call it with call_tool_{tier.tier}",
            )
        return checked

    async def start_task(
        self,
        server: str,
        tool_name: str,
        arguments: dict[str, Any],
        context: CallContext,
        task: bytes,
        *,
        shown_name: str,
        known: Iterable[str] | Callable[[], Iterable[str]],
        variant: str | None = None,
    ) -> types.CreateTaskResult | types.CallToolResult:
        """A task-augmented call (`task`: the caller's `task` params, JSON): checked and recorded like
        any call; the upstream's `CreateTaskResult` (its own task id), or an `isError` result."""
        asked = _asked(server, tool_name, shown_name, known, variant, context, arguments)
        with self._span(asked):
            let_in = await self._let_in(asked)
            if isinstance(let_in, types.CallToolResult):
                return let_in
            return await self._start_task(asked, *let_in, task)

    async def _start_task(
        self, asked: _Asked, checked: ToolInfo, ticket: Ticket | None, task: bytes
    ) -> types.CreateTaskResult | types.CallToolResult:
        server, shown_name, context = asked.server, asked.shown_name, asked.context
        started, arguments_text = asked.started, asked.arguments
        options = CallOptions(task=task)
        try:
            raw = await self.upstreams.call(server, checked.name, arguments_text.encode(), options)
            created = types.CreateTaskResult.model_validate_json(raw)
        except (ProxyError, pydantic.ValidationError) as exc:
            kind: CallErrorKind = (
                "timeout"
                if isinstance(exc, CallTimeoutError)
                else "unavailable"
                if isinstance(exc, PeerGoneError)
                else "upstream_error"
            )
            status = activity_status(kind)
            self._record(server, checked.name, context, status, started, arguments_text, error=str(exc))
            return error_result(f"{shown_name}: {exc}", kind, server)
        finally:
            if ticket is not None:
                self.admission.leave(ticket)
        self._record(
            server, checked.name, context, "task_created", started, arguments_text, result=raw.decode()
        )
        return created

    def _span(self, asked: _Asked) -> AbstractContextManager[None]:
        return _NO_SPAN if self.spans is None else self.spans.span(asked.server, asked.tool, asked.context)

    async def _let_in(self, asked: _Asked) -> tuple[ToolInfo, Ticket | None] | types.CallToolResult:
        """The tool and the caller's turn at its server's concurrency gates (gateway/admission.py), or
        the error result of a refused call (recorded: blocked, or `rejected` for a shed one, which is
        retryable)."""
        server, context, started, arguments_text = asked.server, asked.context, asked.started, asked.arguments
        checked = self._admit(
            server, asked.tool, asked.shown_name, asked.known, asked.variant, context.identity
        )
        if isinstance(checked, guard.Refusal):
            status = activity_status(checked.kind)
            self._record(server, asked.tool, context, status, started, arguments_text, error=checked.message)
            return error_result(checked.message, checked.kind, server)
        ticket = self.admission.ticket(server)
        if ticket is None:
            return checked, None
        shed = await self.admission.enter(ticket)
        if shed is None:
            return checked, ticket
        refused = shed_result(asked.shown_name, server, *shed)
        self._record(
            server, checked.name, context, "rejected", started, arguments_text, error=retry_after(refused)
        )
        return refused

    def task_result(
        self, server: str, tool: str, context: CallContext, started: float, raw: bytes
    ) -> types.CallToolResult:
        """A task's `tasks/result` (the result of its call): checked, recorded and scrubbed like a call's."""
        what = f"tasks/result {tool}"
        try:
            result = types.CallToolResult.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            message = f"{tool}: the upstream answered with an invalid tool result: {_first_problem(exc)}"
            self._record(server, what, context, "error", started, "", error=message)
            return error_result(message, "upstream_error", server)
        status = "error" if result.is_error else "ok"
        self._record(server, what, context, status, started, "", result=raw.decode(errors="replace"))
        configured = self.registry.servers.get(server)
        echo_allowed = configured is not None and configured.allow_secret_echo
        return result if echo_allowed else self.echo_guard.scrub(result)

    def record_failure(
        self, server: str, what: str, context: CallContext, status: str, started: float, error: str
    ) -> None:
        """A task request that failed before any result (the task's worker died, ...), in the log."""
        self._record(server, what, context, status, started, "", error=error)

    def task_asking(self, context: CallContext, server: str, tool: str) -> Asking | None:
        """`context.asking` for a task's `tasks/result` (its upstream may ask while the caller waits):
        each question recorded beside the task and scrubbed of injected secrets, as a call's are."""
        configured = self.registry.servers.get(server)
        echo_allowed = configured is not None and configured.allow_secret_echo
        return self._recorded_asking(context, server, tool, echo_allowed)

    def _recorded_asking(
        self, context: CallContext, server: str, tool: str, echo_allowed: bool
    ) -> Asking | None:
        """The client's `asking`, with each question recorded beside the call (the question, and of
        the answer only its outcome: never what the user typed) and scrubbed of injected secrets."""
        asking = context.asking
        if asking is None:
            return None
        relay = asking.ask

        async def ask(method: AskMethod, params: dict[str, Any]) -> dict[str, Any]:
            started = time.monotonic()
            secrets = self.echo_guard.secrets
            if not echo_allowed and secrets:
                params = secrets.scrub_json(params)
            question = json.dumps(params, ensure_ascii=False)
            what = f"{method} {tool}"
            try:
                answer = await relay(method, params)
            except AskRefusedError as exc:
                self._record(server, what, context, "declined", started, question, error=exc.message)
                raise
            self._record(
                server, what, context, "ok", started, question, result=json.dumps(_outcome(method, answer))
            )
            return answer

        return Asking(asking.methods, ask)

    def _scrubbed_progress(self, progress: Progress | None) -> Progress | None:
        """Progress messages are the upstream's words too: no injected secret passes in them either."""
        if progress is None:
            return None
        relay = progress

        async def scrubbed(done: float, total: float | None, message: str | None) -> None:
            secrets = self.echo_guard.secrets
            await relay(done, total, secrets.scrub_values(message) if message and secrets else message)

        return scrubbed

    def _record(
        self,
        server: str,
        tool: str,
        context: CallContext,
        status: str,
        started: float,
        arguments: str,
        *,
        result: str = "",
        error: str | None = None,
    ) -> None:
        if self.spans is not None:  # a call's last record is its outcome (a question is recorded before)
            self.spans.outcome(status)
        if self.activity is None:
            return
        record = call_record(context, server, tool, status, started, arguments, result, error)
        self.activity.record_nowait(record)
        if self.on_recorded is not None:
            self.on_recorded(record)
