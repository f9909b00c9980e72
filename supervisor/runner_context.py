"""What a server's runner is given by the control plane (RunnerContext), what it tells each worker
generation to run (`upstream_spec`), how it queues for a start slot (`slot_or_event`), how a
generation is stopped and swept (`stop_generation`), and what is published of it (`status_of`)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from bus.messages import OAuthSpec, ServerStatus, Shutdown, UpstreamSpec
from services import process
from services.config import ServerConfig, root_uri
from services.limits_config import StdioFields, own_stdio_fields
from services.pinning import PinStore
from services.start_config import StartPolicy
from services.tool_cache import ToolCache
from services.upstream_log import log_path
from supervisor import policy
from supervisor.containers import ContainerJanitor
from supervisor.inbox import Event
from supervisor.ledger import Ledger
from supervisor.spawn import Spawner, WorkerProcess
from supervisor.states import WorkerState

if TYPE_CHECKING:
    from supervisor.runner import ServerRunner

logger = logging.getLogger(__name__)
DRAINABLE: Final = frozenset(
    {WorkerState.RUNNING, WorkerState.STOPPING, WorkerState.STOPPED, WorkerState.STARTING}
)
"""Where a server is while a generation stopped politely is replaced (supervisor/on_demand.py)."""
STOP_MARGIN_S: Final = 2.0
"""Beyond the worker's own close and kill timeouts, before the supervisor SIGKILLs it."""


@dataclass
class RunnerContext:
    """What a runner needs from the control plane."""

    control_endpoint: str
    calls_endpoint: str
    data_dir: Path
    close_timeout_s: float
    kill_timeout_s: float
    log_level: str
    restart_policy: policy.RestartPolicy
    send_worker: Callable[[bytes, object], Awaitable[bool]]
    publish: Callable[[ServerRunner], Awaitable[None]]
    publish_tools: Callable[[ServerRunner], Awaitable[None]]
    """Publishes the runner's tools and its catalog (prompts, resources, templates)."""
    nursery: trio.Nursery
    ledger: Ledger
    spawner: Spawner
    config_view: Callable[[str], bytes]
    pins: PinStore
    prompt_pins: PinStore
    secrets_backend: str = "auto"
    containers: ContainerJanitor | None = None
    """Docker isolation: resolves each server's container and removes what a dead worker left."""
    scrub: Callable[[str], str] = str
    """Every error text the runner publishes passes through this: no secret value, no URL credentials."""
    stdio_fields: Callable[[ServerConfig, int], StdioFields] = own_stdio_fields
    """A generation's `env` (over the global one) and `limits` (services/limits_config.py)."""
    otlp_endpoint: str | None = None
    start_slots: trio.CapacityLimiter | None = None
    """Bounds how many servers are between spawn and initialized at once (`max_concurrent_starts`), so a
    fleet starting on a few cores does not time out its own `initialize` calls."""
    start_policy: Callable[[ServerConfig], StartPolicy] = lambda _: StartPolicy()
    """`start`, `idle_timeout`, `max_lifetime` of a server, with the global ones (supervisor/on_demand.py)."""
    tool_cache: ToolCache | None = None
    """What each server offered when it last ran: an idle on-demand server is listed from it."""


def upstream_spec(
    c: ServerConfig, ctx: RunnerContext, generation: int, init_timeout_s: float, login: bool
) -> UpstreamSpec:
    """What generation `generation` of server `c` is told to run (`StartUpstream.spec`)."""
    return UpstreamSpec(
        name=c.name,
        protocol=c.transport,
        command=c.command,
        args=list(c.args),
        **ctx.stdio_fields(c, generation),
        working_dir=c.working_dir,
        url=c.url,
        headers=dict(c.headers),
        init_timeout_s=init_timeout_s,
        close_timeout_s=ctx.close_timeout_s,
        kill_timeout_s=ctx.kill_timeout_s,
        log_path=str(log_path(ctx.data_dir, c.name)),
        secrets_dir=str(ctx.data_dir),
        secrets_backend=ctx.secrets_backend,
        fallback_sse=c.protocol == "auto" and c.transport != "stdio",
        ping_interval_s=c.health_check_interval_s(),
        container=ctx.containers.spec_for(c, generation) if ctx.containers else None,
        oauth=(
            OAuthSpec(
                client_id=c.oauth.client_id,
                client_secret=c.oauth.client_secret,
                scopes=list(c.oauth.scopes),
                redirect_port=c.oauth.redirect_port,
                extra_params=dict(c.oauth.extra_params),
            )
            if c.oauth is not None
            else None
        ),
        login=login,
        roots=[root_uri(root) for root in c.roots],
        protocol_version=c.protocol_version,  # type: ignore[arg-type]  # (validate_server checked it)
        otlp_endpoint=ctx.otlp_endpoint,
    )


async def slot_or_event(
    slots: trio.CapacityLimiter, inbox: trio.MemoryReceiveChannel[Event], owner: object
) -> tuple[bool, list[Event]]:
    """Whichever comes first: a start slot (taken on behalf of `owner`), or an inbox event (both, if
    they come together)."""
    acquired = False
    events: list[Event] = []
    async with trio.open_nursery() as nursery:

        async def take_slot() -> None:
            nonlocal acquired
            await slots.acquire_on_behalf_of(owner)
            acquired = True
            nursery.cancel_scope.cancel()

        async def take_event() -> None:
            events.append(await inbox.receive())
            nursery.cancel_scope.cancel()

        nursery.start_soon(take_slot)
        nursery.start_soon(take_event)
    return acquired, events


async def stop_generation(
    name: str,
    identity: bytes,
    worker: WorkerProcess | None,
    upstream_pgid: int | None,
    ctx: RunnerContext,
    *,
    frozen: bool = False,
) -> None:
    """Staged stop of a server's worker (and so of its upstream); then sweep what is left of it: its
    upstream's process group, its ledger entries and cgroups, a Docker container it left.

    A `frozen` worker cannot run a staged stop: it is SIGKILLed at once, and its upstream (which
    gets SIGKILL when its worker dies) is swept by group below.
    """
    if worker is not None and worker.child.running and frozen:
        worker.child.signal_group(signal.SIGKILL)
        with trio.move_on_after(process.REAP_GRACE_S):
            await worker.child.wait()
    if worker is not None and worker.child.running:
        if not await ctx.send_worker(identity, Shutdown()):
            # Not on the bus (yet, or any more): SIGTERM means the same to a worker.
            worker.child.signal_group(signal.SIGTERM)
        budget = ctx.close_timeout_s + ctx.kill_timeout_s + STOP_MARGIN_S
        with trio.move_on_after(budget):
            await worker.child.wait()
        if worker.child.running:
            logger.warning("server %s: worker did not stop in %.0fs; SIGKILL", name, budget)
            worker.child.signal_group(signal.SIGKILL)
            with trio.move_on_after(process.REAP_GRACE_S):
                await worker.child.wait()
    if worker is not None:
        worker.close_lifeline()
    if upstream_pgid is not None:
        # Whatever the worker could not stop (it may have been SIGKILLed) ends here.
        survivors = await process.terminate_tree([], [upstream_pgid], ctx.kill_timeout_s)
        if survivors:
            logger.error("server %s: processes survived SIGKILL: %s", name, sorted(p for p, _ in survivors))
    ctx.ledger.forget(name)
    await ctx.ledger.release_cgroups(name)
    if ctx.containers is not None:  # Docker isolation: a SIGKILLed worker removed nothing
        await ctx.containers.after_worker(name)


def status_of(runner: ServerRunner) -> ServerStatus:
    """What the gateway, REST and the CLI are told of a server."""
    return ServerStatus(
        name=runner.name,
        protocol=runner.config.transport,
        enabled=runner.config.enabled,
        quarantined=runner.config.quarantined,
        state=runner.life.state,
        generation=runner.generation,
        worker_pid=runner.worker.child.pid if runner.worker and runner.worker.child.running else None,
        upstream_pid=runner.upstream_pid,
        tool_count=len(runner.tools) if runner.life.state in (WorkerState.RUNNING, WorkerState.IDLE) else 0,
        restarts=runner.restarts,
        last_error=runner.ctx.scrub(runner.last_error) if runner.last_error else None,
        condition=runner.condition
        if runner.life.state in (WorkerState.BACKOFF, WorkerState.STARTING)
        else None,
        last_exit=runner.last_exit,
        next_retry_at=runner.next_retry_at,
        call_timeout_s=runner.config.call_tool_timeout_s(),
        server_version=runner.server_version,
        summary=runner.config.description or runner.summary,
        healthy=runner.healthy,
        oauth=(
            runner.config.oauth is not None
            or runner.signed_in
            or runner.life.state is WorkerState.NEEDS_LOGIN
        ),
        signed_in=runner.signed_in and runner.life.state is WorkerState.RUNNING,
        config_json=runner.ctx.config_view(runner.name),
        allow_secret_echo=runner.config.allow_secret_echo,
        on_demand=runner.keeper.policy().on_demand,
        draining=runner.keeper.draining and runner.life.state in DRAINABLE,
        init_timeout_s=runner._init_timeout_s(),
    )
