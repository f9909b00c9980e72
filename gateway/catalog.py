"""Prompts, resources, templates, completions and logging of every upstream, on an MCP endpoint.

`/mcp` and `/mcp/all` serve the same catalog, built from the registry (what each worker listed at
start and after every list change): only running, enabled, unquarantined servers are seen.

- Prompts are named `server__prompt` (`gateway/tool_names.py`'s rules for tools); `prompts/get`
  reaches the owner with the arguments untouched. A prompt held by prompt pinning (new or changed
  since a human approved it) is neither listed nor got nor completed until it is approved.
- Resources and templates are shown as `mcpproxy://<server>/<original>` (`gateway/resource_uris.py`);
  a read of such a URI goes to that server with the original. A read of any other URI (a resource
  link in a tool result, an MCP App's `ui://` resource) goes to the server that lists it, else to
  the servers whose templates match it, else to every server with resources, first answer wins.
- `completion/complete` follows its reference to the owner; `logging/setLevel` reaches every
  upstream that logs; each upstream `notifications/message` reaches the sessions of this endpoint
  with the logger `server` (or `server:logger`); `resources/subscribe` is relayed to the owner and
  its `notifications/resources/updated` to the subscribed sessions, with the URI they subscribed to.
- 2026-07-28 clients get list changes and resource updates only on `subscriptions/listen` streams
  (`gateway/listen.py`); the resource URIs a stream names are subscribed upstream like the above.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import mcp.types as types
import trio
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS

from bus.errors import PeerGoneError, ProxyError
from bus.messages import UpstreamNotified
from gateway import guard
from gateway.access import Handler, as_requested, current_identity
from gateway.call_context import call_record, context_from_mcp
from gateway.catalog_notices import CatalogNotices, entries_text
from gateway.list_changes import ListChanges
from gateway.listen import ListenStreams
from gateway.on_demand import StartRefusedError
from gateway.registry import Registry
from gateway.resource_uris import matches_template, page, qualify, unqualify
from gateway.secret_echo import EchoGuard
from gateway.tool_names import direct_name, unknown_message
from gateway.upstreams import CallTimeoutError, UpstreamReplyError, Upstreams
from services.activity import CallRecord

logger = logging.getLogger(__name__)

RESOURCE_NOT_FOUND: Final = -32002
"""The MCP error code for a resource no server has."""
NOTICE_BUFFER: Final = 1000
"""Upstream log messages and resource updates waiting to be relayed; more are dropped."""
PRUNE_EVERY: Final = 64
"""Sessions the endpoint no longer has are forgotten once this many new ones have been remembered."""

RECORDED: Final = frozenset({"prompts/get", "resources/read"})
"""Forwarded methods that land in the activity log, as the tool `"<method> <prompt or URI>"`."""


def _session_id(ctx: Any) -> str | None:
    request = getattr(ctx, "request", None)
    return request.headers.get("mcp-session-id") if request is not None else None


class CatalogFront(CatalogNotices):
    """The catalog handlers of one MCP endpoint, and its notifications to that endpoint's sessions."""

    def __init__(self, registry: Registry, upstreams: Upstreams, surface: str) -> None:
        self.registry = registry
        self.upstreams = upstreams
        self.surface = surface
        self.prompt_names: dict[str, tuple[str, str]] = {}
        self.sessions: dict[str, Any] = {}
        """One `ServerSession` per MCP session id: 2025-era sessions get notifications."""
        self.subscriptions: dict[tuple[str, str], dict[str, tuple[Any, str]]] = {}
        """(server, original URI) -> session id (or listen stream key) -> (session, or None for a listen
        stream, and the URI it subscribed to)."""
        self.listen = ListenStreams(self._hold, self._release)
        self.echo_guard = EchoGuard()
        """The secret values the proxy injected: scrubbed from prompts and resource contents (as from
        tool results) unless the server has `allow_secret_echo`. app.py shares the caller's."""
        self.alive: Callable[[str], bool] = lambda session_id: True
        """Whether the endpoint still has a session (app.py asks its fast lane's session watch)."""
        self._added = 0
        self.record: Callable[[CallRecord], None] | None = None
        """Takes an activity log entry for each prompt get and resource read."""
        self._notices_send, self._notices = trio.open_memory_channel[UpstreamNotified](NOTICE_BUFFER)
        self.prompt_changes = ListChanges(registry, lambda: entries_text(self._prompt_entries()))
        self.resource_changes = ListChanges(
            registry, lambda: entries_text(self._resource_entries()) + entries_text(self._template_entries())
        )

    async def announce_tools_changed(self) -> None:
        """`notifications/tools/list_changed` to this endpoint's 2025-era sessions and 2026-era listen
        streams; a session that cannot be reached is forgotten."""
        await self.listen.tools_changed()
        for session_id, session in list(self.sessions.items()):
            try:
                with trio.move_on_after(1.0):
                    await session.send_tool_list_changed()
            except Exception:  # a closed session: forget it
                self.forget(session_id)

    def handlers(self) -> dict[str, Any]:
        """The `Server(...)` keyword arguments of the catalog methods, each seeing what the request's
        profile may see (gateway/access.py)."""
        handlers: dict[str, Handler] = {
            "on_list_prompts": self.list_prompts,
            "on_get_prompt": self.get_prompt,
            "on_list_resources": self.list_resources,
            "on_list_resource_templates": self.list_templates,
            "on_read_resource": self.read_resource,
            "on_subscribe_resource": self.subscribe,
            "on_unsubscribe_resource": self.unsubscribe,
            "on_completion": self.complete,
            "on_subscriptions_listen": self.listen.serve,
        }
        return {name: as_requested(handler) for name, handler in handlers.items()}

    def install(self, server: Server[Any]) -> Server[Any]:
        # logging/setLevel is deprecated in 2026-07-28; added here, not in the constructor, which warns.
        server.add_request_handler(
            "logging/setLevel", types.SetLevelRequestParams, as_requested(self.set_level)
        )
        return server

    def remember(self, session_id: str, session: Any) -> None:
        if session_id in self.sessions:
            return
        self.sessions[session_id] = session
        self._added += 1
        if self._added >= PRUNE_EVERY:  # under session churn, ended sessions must not pile up
            self._added = 0
            for gone in [s for s in self.sessions if not self.alive(s)]:
                self._forget(gone)

    def forget(self, session_id: str) -> None:
        """A session that has ended (a send to it failed): drop it and its subscriptions."""
        self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)
        for subscribers in self.subscriptions.values():
            subscribers.pop(session_id, None)

    def _remember(self, ctx: Any) -> None:
        session_id = _session_id(ctx)
        if session_id:  # a stateless (2026-era) request has no stream to notify
            self.remember(session_id, ctx.session)

    # --- what is listed -------------------------------------------------------

    def _sees(self, server: str) -> bool:
        """The server's prompts and resources are visible, to this request's profile too."""
        return self.registry.visible(server) and self.registry.view(current_identity()).has_server(server)

    def _visible(self) -> list[str]:
        return [s for s in sorted(self.registry.servers) if self._sees(s)]

    def _prompt(self, name: str) -> tuple[str, str] | None:
        """(server, prompt) an MCP name stands for, if the server's current catalog offers it unheld: the
        name map is rebuilt only when prompts are listed, so a prompt held since is caught here."""
        target = self.prompt_names.get(name)
        if target is None or not self._sees(target[0]):
            return None
        catalog = self.registry.catalog_of(target[0])
        if target[1] in catalog.held_prompts or all(p["name"] != target[1] for p in catalog.prompts):
            return None
        return target

    def _prompt_entries(self) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        names: dict[str, tuple[str, str]] = {}
        entries = []
        for server in self._visible():
            catalog = self.registry.catalog_of(server)
            for prompt in catalog.prompts:
                if prompt["name"] in catalog.held_prompts:
                    continue
                name = direct_name(server, prompt["name"])
                names[name] = (server, prompt["name"])
                entries.append(((server, prompt["name"]), {**prompt, "name": name}))
        self.prompt_names = names
        return sorted(entries, key=lambda entry: entry[0])

    def _resource_entries(self) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        entries = [
            ((server, resource["uri"]), {**resource, "uri": qualify(server, resource["uri"])})
            for server in self._visible()
            for resource in self.registry.catalog_of(server).resources
        ]
        return sorted(entries, key=lambda entry: entry[0])

    def _template_entries(self) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        entries = [
            ((server, t["uriTemplate"]), {**t, "uriTemplate": qualify(server, t["uriTemplate"])})
            for server in self._visible()
            for t in self.registry.catalog_of(server).templates
        ]
        return sorted(entries, key=lambda entry: entry[0])

    @staticmethod
    def _page(
        entries: list[tuple[tuple[str, str], dict[str, Any]]], params: types.PaginatedRequestParams | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        chosen = page(entries, params.cursor if params is not None else None)
        if chosen is None:
            raise MCPError(INVALID_PARAMS, "invalid cursor: list again from the first page")
        return chosen

    async def list_prompts(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        self._remember(ctx)
        self.prompt_changes.served()
        items, cursor = self._page(self._prompt_entries(), params)
        return types.ListPromptsResult(
            prompts=[types.Prompt.model_validate(item) for item in items], next_cursor=cursor
        )

    async def list_resources(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        self._remember(ctx)
        self.resource_changes.served()
        items, cursor = self._page(self._resource_entries(), params)
        return types.ListResourcesResult(
            resources=[types.Resource.model_validate(item) for item in items], next_cursor=cursor
        )

    async def list_templates(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        self._remember(ctx)
        self.resource_changes.served()
        items, cursor = self._page(self._template_entries(), params)
        return types.ListResourceTemplatesResult(
            resource_templates=[types.ResourceTemplate.model_validate(item) for item in items],
            next_cursor=cursor,
        )

    # --- forwarded requests ---------------------------------------------------

    async def _forward(
        self,
        ctx: Any,
        server: str,
        method: str,
        name: str,
        body: dict[str, Any],
        *,
        prompt: str | None = None,
    ) -> bytes:
        """Forward to `server`; its error comes back as the same JSON-RPC error, named by server.
        `prompt`: the prompt got, checked against pinning again if the server starts on demand for it."""
        started = time.monotonic()
        arguments = json.dumps(body, ensure_ascii=False)
        try:
            raw = await self.upstreams.forward(server, method, arguments.encode(), prompt=prompt)
        except StartRefusedError as exc:  # its new generation changed the prompt: held, like at listing
            self._record(
                ctx, server, f"{method} {name}", started, arguments, error=str(exc), status="blocked"
            )
            raise MCPError(INVALID_PARAMS, str(exc)) from exc
        except UpstreamReplyError as exc:
            self._record(ctx, server, f"{method} {name}", started, arguments, error=str(exc))
            raise MCPError(exc.code or INTERNAL_ERROR, f"{server}: {exc}") from exc
        except ProxyError as exc:
            status = (
                "timeout"
                if isinstance(exc, CallTimeoutError)
                else "unavailable"
                if isinstance(exc, PeerGoneError)
                else "error"
            )
            self._record(ctx, server, f"{method} {name}", started, arguments, error=str(exc), status=status)
            raise MCPError(INTERNAL_ERROR, f"{server}: {exc}") from exc
        if method in RECORDED:
            self._record(
                ctx, server, f"{method} {name}", started, arguments, result=raw.decode(errors="replace")
            )
        return raw

    def _scrubbed(self, server: str, result: dict[str, Any]) -> dict[str, Any]:
        secrets = self.echo_guard.secrets
        status = self.registry.servers.get(server)
        if not secrets or (status is not None and status.allow_secret_echo):
            return result
        scrubbed: dict[str, Any] = secrets.scrub_json(result)
        return scrubbed

    def _record(
        self,
        ctx: Any,
        server: str,
        what: str,
        started: float,
        arguments: str,
        *,
        result: str = "",
        error: str | None = None,
        status: str | None = None,
    ) -> None:
        if self.record is None or what.partition(" ")[0] not in RECORDED:
            return
        context = context_from_mcp(ctx, self.surface)
        status = status or ("ok" if error is None else "error")
        self.record(call_record(context, server, what, status, started, arguments, result, error))

    async def get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        self._remember(ctx)
        target = self._prompt(params.name)
        if target is None:
            self._prompt_entries()
            target = self._prompt(params.name)
        if target is None:
            raise MCPError(
                INVALID_PARAMS,
                self._held_message(params.name) or unknown_message("prompt", params.name, self.prompt_names),
            )
        server, prompt = target
        body: dict[str, Any] = {"name": prompt}
        if params.arguments is not None:
            body["arguments"] = params.arguments
        raw = await self._forward(ctx, server, "prompts/get", prompt, body, prompt=prompt)
        return types.GetPromptResult.model_validate(self._scrubbed(server, json.loads(raw)))

    def _held_message(self, name: str) -> str | None:
        """Why the prompt an agent named is refused, if prompt pinning holds it."""
        for server in self._visible():
            for prompt, held in self.registry.catalog_of(server).held_prompts.items():
                if direct_name(server, prompt) == name:
                    return guard.held_prompt(server, prompt, held).message
        return None

    def owners(self, uri: str) -> list[str]:
        """The servers an unqualified URI is tried on, in order (see the module docstring)."""
        visible = self._visible()
        catalogs = {server: self.registry.catalog_of(server) for server in visible}
        listed = [s for s in visible if any(r.get("uri") == uri for r in catalogs[s].resources)]
        if listed:
            return listed
        templated = [
            s
            for s in visible
            if any(matches_template(t.get("uriTemplate", ""), uri) for t in catalogs[s].templates)
        ]
        if templated:
            return templated
        return [s for s in visible if "resources" in catalogs[s].capabilities]

    def _route(self, uri: str) -> tuple[list[str], str, bool]:
        """(servers to try, the URI they know, whether the client used our prefix)."""
        qualified = unqualify(uri)
        if qualified is None:
            return self.owners(uri), uri, False
        server, original = qualified
        return ([server] if self._sees(server) else []), original, True

    async def read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        self._remember(ctx)
        servers, original, qualified = self._route(params.uri)
        failure: MCPError | None = None
        for server in servers:
            try:
                raw = await self._forward(ctx, server, "resources/read", params.uri, {"uri": original})
            except MCPError as exc:
                failure = exc
                continue
            result = json.loads(raw)
            if qualified:  # the contents answer to the URI the client asked for
                for content in result.get("contents", []):
                    if isinstance(content.get("uri"), str):
                        content["uri"] = qualify(server, content["uri"])
            return types.ReadResourceResult.model_validate(self._scrubbed(server, result))
        if failure is not None:
            raise failure
        raise MCPError(RESOURCE_NOT_FOUND, f"no running server serves the resource {params.uri!r}")

    async def complete(self, ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
        self._remember(ctx)
        body = params.model_dump(mode="json", by_alias=True, exclude_unset=True)
        body.pop("_meta", None)
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            target = self._prompt(ref.name)
            if target is None:
                self._prompt_entries()
                target = self._prompt(ref.name)
            if target is None:
                message = self._held_message(ref.name) or unknown_message(
                    "prompt", ref.name, self.prompt_names
                )
                raise MCPError(INVALID_PARAMS, message)
            server, body["ref"]["name"] = target
        else:
            qualified = unqualify(ref.uri)
            if qualified is not None:
                server, body["ref"]["uri"] = qualified
            else:
                owners = [
                    s
                    for s in self._visible()
                    if any(t.get("uriTemplate") == ref.uri for t in self.registry.catalog_of(s).templates)
                ]
                if not owners:
                    raise MCPError(INVALID_PARAMS, f"no running server has the resource template {ref.uri!r}")
                server = owners[0]
            if not self._sees(server):
                raise MCPError(INVALID_PARAMS, f"no running server has the resource template {ref.uri!r}")
        if "completions" not in self.registry.catalog_of(server).capabilities:
            return types.CompleteResult(completion=types.Completion(values=[]))
        raw = await self._forward(ctx, server, "completion/complete", "", body)
        return types.CompleteResult.model_validate_json(raw)

    async def set_level(self, ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        """Every upstream that logs gets the level (a failing one is skipped: logging is best effort)."""
        self._remember(ctx)
        body = {"level": params.level}

        async def one(server: str) -> None:
            try:
                await self._forward(ctx, server, "logging/setLevel", "", body)
            except MCPError as exc:
                logger.info("logging/setLevel on %s failed: %s", server, exc)

        async with trio.open_nursery() as nursery:
            for server in self._visible():
                if "logging" in self.registry.catalog_of(server).capabilities:
                    nursery.start_soon(one, server)
        return types.EmptyResult()

    async def subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        session_id = _session_id(ctx)
        if not session_id:
            raise MCPError(INVALID_PARAMS, "resources/subscribe needs a session (initialize first)")
        self._remember(ctx)
        if not await self._hold(ctx, session_id, params.uri, ctx.session):
            raise MCPError(RESOURCE_NOT_FOUND, f"no running server serves the resource {params.uri!r}")
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        await self._release(ctx, _session_id(ctx) or "", params.uri)
        return types.EmptyResult()

    async def _hold(self, ctx: Any, key: str, uri: str, session: Any = None) -> bool:
        """Subscribe `key` (a session, or a listen stream when `session` is None) to `uri`; the owner
        is subscribed upstream by its first subscriber. False when no running server serves `uri`."""
        servers, original, _ = self._route(uri)
        if not servers:
            return False
        subscribers = self.subscriptions.setdefault((servers[0], original), {})
        if not subscribers:
            await self._forward(ctx, servers[0], "resources/subscribe", uri, {"uri": original})
        subscribers[key] = (session, uri)
        return True

    async def _release(self, ctx: Any, key: str, uri: str) -> None:
        """Undo `_hold`; the owner is unsubscribed upstream when its last subscriber leaves."""
        servers, original, _ = self._route(uri)
        for server in servers[:1]:
            subscribers = self.subscriptions.get((server, original), {})
            if subscribers.pop(key, None) is not None and not subscribers:
                del self.subscriptions[(server, original)]
                await self._forward(ctx, server, "resources/unsubscribe", uri, {"uri": original})
