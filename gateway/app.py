"""Assembles the gateway: Starlette routes, the two MCP endpoints, the front door."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bus.errors import ProxyError
from bus.messages import ResultLimits, UpstreamNotified
from gateway import mcp_direct, mcp_proxy, openapi
from gateway.asks import InputRounds
from gateway.calling import Caller
from gateway.catalog import CatalogFront
from gateway.clients import ClientsApi
from gateway.events import EventHub, activity_event
from gateway.explain import ExplainApi
from gateway.ext_tasks import ExtTasks
from gateway.fastpath import FastPath
from gateway.frontdoor import FrontDoor, allowed_host_names, is_loopback_host
from gateway.large_results import LargeResults
from gateway.mcp_direct import DirectTools
from gateway.mcp_lane import McpLane
from gateway.mcp_management import ManagementTools
from gateway.mcp_proxy import ProxyTools
from gateway.mcp_registry_api import RegistryApi
from gateway.metrics import CallStats, Metrics
from gateway.registry import Registry
from gateway.rest import RestApi, fail
from gateway.tasks import TASK_STATUS, Tasks
from gateway.tool_search import SearchService
from gateway.ui_routes import ui_routes
from gateway.upstreams import Upstreams
from services.activity import ActivityLog, CallRecord
from services.result_cache import CACHE_DIR_NAME, ResultCache

DIRECT_ALIAS: Final = "/mcp/all/mcp"
"""Direct mode (`/mcp/all`) at a path that ends in /mcp."""
PROXY_ALIAS: Final = "/mcp/mcp"
"""The menu (`/mcp`) again: what a profile's `/mcp/p/<name>/mcp` is served as (gateway/access.py)."""


@dataclass
class GatewaySettings:
    listen_host: str
    listen_port: int
    api_key: str
    data_dir: Path
    control_endpoint: str
    calls_endpoint: str
    trusted_hosts: tuple[str, ...] = ()
    tool_response_mode: str = "compact"
    """What `retrieve_tools` hits carry unless a call says (`detail`): `compact` or `full`."""
    direct_mode: str = "full"
    """How `/mcp/all` lists tools: `full` (their schemas) or `deferred` (a one-line signature)."""
    metrics_access: str = "api_key"
    """Who may scrape `/metrics` (gateway/metrics.py): `api_key`, or `loopback`."""
    otlp_endpoint: str | None = None
    """Where call traces go (gateway/tracing.py); None: no tracing."""
    registries: tuple[str, ...] = ()
    """The MCP registries `/api/v1/registry/search` asks, in order."""


def _security(settings: GatewaySettings) -> TransportSecuritySettings:
    """The SDK's own Host/Origin check, from the front door's allow-list (which already ran)."""
    names = sorted(allowed_host_names(settings.listen_host, settings.trusted_hosts))
    hosts = [f"[{name}]" if ":" in name else name for name in names]
    allowed_hosts = [h for host in hosts for h in (host, f"{host}:*")]
    origins = [f"http://{h}" for h in allowed_hosts] + [f"https://{h}" for h in allowed_hosts]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=origins
    )


def build_app(settings: GatewaySettings) -> tuple[Any, Upstreams, McpLane]:
    """The ASGI app (its front door), the upstreams it calls, and the lane that answers fast-lane calls
    inside the HTTP/1.1 protocol (gateway/mcp_lane.py)."""
    registry = Registry()
    upstreams = Upstreams(registry, settings.control_endpoint, settings.calls_endpoint)
    search = SearchService(registry)
    activity = ActivityLog(settings.data_dir / "activity.db")
    caller = Caller(registry, upstreams, activity)
    traces = None
    if settings.otlp_endpoint is not None:  # the OpenTelemetry SDK loads only when traces are on
        from gateway.tracing import call_spans

        caller.spans = spans = call_spans(settings.otlp_endpoint)
        traces = spans.traces
    caller.large = large = LargeResults(ResultCache(settings.data_dir / CACHE_DIR_NAME))
    rest = RestApi(registry, upstreams, settings.data_dir, f"{settings.listen_host}:{settings.listen_port}")
    rest.activity, rest.caller = activity, caller
    management = ManagementTools(registry, upstreams, rest.server_views, settings.data_dir)
    proxy_catalog = CatalogFront(registry, upstreams, mcp_proxy.SURFACE)
    direct_catalog = CatalogFront(registry, upstreams, mcp_direct.SURFACE)
    rounds = InputRounds()
    ext_tasks = ExtTasks(registry)
    tasks = Tasks(registry, upstreams, caller)
    proxy = ProxyTools(caller, proxy_catalog, rounds, tasks, search=search, management=management)
    direct = DirectTools(caller, direct_catalog, rounds, tasks)
    proxy.default_detail = "full" if settings.tool_response_mode == "full" else "compact"
    direct.deferred = settings.direct_mode == "deferred"

    def on_upstream_notice(notice: UpstreamNotified) -> None:
        if notice.method == TASK_STATUS:  # for the session that created the task, not every session
            tasks.status_nowait(notice)
            return
        proxy_catalog.relay_nowait(notice)
        direct_catalog.relay_nowait(notice)

    upstreams.on_upstream_notice = on_upstream_notice
    events = EventHub(registry, rest.server_views)
    upstreams.on_notice = events.publish

    def on_known_secrets(values: list[str]) -> None:
        activity.secrets = set(values)
        caller.echo_guard.learn(values)
        large.cache.learn(values)

    upstreams.on_known_secrets = on_known_secrets

    def on_result_limits(limits: ResultLimits) -> None:
        large.limits = limits

    upstreams.on_result_limits = on_result_limits
    upstreams.on_call_limits = caller.admission.adopt
    upstreams.on_access = events.access_changed

    stats = CallStats()
    metrics = Metrics(registry, caller.admission, stats, search.indexed)

    def on_recorded(record: CallRecord) -> None:
        stats.observe(record)
        if events.subscribers:  # every call lands here: build the event only for someone listening
            events.publish("activity.tool_call.completed", activity_event(record))

    caller.on_recorded = on_recorded

    def record_catalog_request(record: CallRecord) -> None:
        activity.record_nowait(record)
        on_recorded(record)

    proxy_catalog.record = direct_catalog.record = record_catalog_request
    proxy_catalog.echo_guard = direct_catalog.echo_guard = caller.echo_guard
    upstreams.on_tools = events.tools_changed
    security = _security(settings)
    # One endpoint object per path, so `/mcp` and `/mcp/` both reach it without a redirect.
    proxy_endpoint = FastPath(proxy.call, mcp_proxy.SURFACE, security, proxy.schemas.get)
    direct_endpoint = FastPath(direct.call, mcp_direct.SURFACE, security, direct.input_schema)
    direct_endpoint.watch.on_session = direct.remember
    proxy_endpoint.watch.on_session = proxy_catalog.remember
    proxy_catalog.alive = lambda session_id: session_id in proxy_endpoint.watch.sessions
    direct_catalog.alive = lambda session_id: session_id in direct_endpoint.watch.sessions

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Managers run once per instance: build fresh ones on every start.
        proxy_manager = proxy_endpoint.open_manager(
            ext_tasks.install(proxy.server(), mcp_proxy.SURFACE, proxy.call, mcp_proxy.target_of)
        )
        direct_manager = direct_endpoint.open_manager(
            ext_tasks.install(direct.server(), mcp_direct.SURFACE, direct.call, direct.target)
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(activity.run)
            if traces is not None:  # its last spans are exported as the gateway stops
                await nursery.start(traces.run)
            await nursery.start(upstreams.serve)
            await nursery.start(rounds.run)
            await nursery.start(ext_tasks.run)
            nursery.start_soon(direct.run_notifier)
            nursery.start_soon(proxy.run_notifier)
            nursery.start_soon(proxy_catalog.run)
            nursery.start_soon(direct_catalog.run)
            nursery.start_soon(tasks.run)
            nursery.start_soon(events.run_coalescer)
            async with proxy_manager.run(), direct_manager.run():
                yield
            nursery.cancel_scope.cancel()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        # Ready means every surface answers from the supervisor's state: before its snapshot,
        # /api/v1 and /mcp/all would show no servers and no tools.
        if not registry.synced:
            return JSONResponse({"status": "starting", "synced": False}, status_code=503)
        return JSONResponse({"status": "ready", "synced": True})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi.document())

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/")

    mcp_paths = {
        "/mcp": proxy_endpoint,
        "/mcp/": proxy_endpoint,
        "/mcp/all": direct_endpoint,
        "/mcp/all/": direct_endpoint,
        # Both modes again at a path ending in /mcp, for a profile's endpoints too: some clients (MCP
        # Inspector's CLI) pick their transport, or rewrite the path, by that ending. Under /mcp, so
        # the front door's rules hold.
        DIRECT_ALIAS: direct_endpoint,
        f"{DIRECT_ALIAS}/": direct_endpoint,
        PROXY_ALIAS: proxy_endpoint,
        f"{PROXY_ALIAS}/": proxy_endpoint,
    }
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/", root),
        *ui_routes(),
        *rest.routes(),
        *ClientsApi(registry, upstreams).routes(),
        *RegistryApi(upstreams, settings.registries).routes(),
        *ExplainApi(registry, is_loopback_host(settings.listen_host)).routes(),
        Route("/events", events.stream, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi_json, methods=["GET"]),
        *(Route(path, endpoint, methods=["GET", "POST", "DELETE"]) for path, endpoint in mcp_paths.items()),
    ]

    async def proxy_error(request: Request, exc: Exception) -> Response:
        # The one REST boundary for our own errors: the envelope, never a traceback.
        return fail(request, 502, str(exc))

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={ProxyError: proxy_error})
    door = FrontDoor(
        app, settings.api_key, settings.listen_host, settings.trusted_hosts, access=lambda: registry.access
    )
    door.metrics_on_loopback = settings.metrics_access == "loopback"
    lane = McpLane(door, mcp_paths)
    metrics.lane_counts = lane.counts
    return door, upstreams, lane
