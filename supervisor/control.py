"""The control plane: owns the configuration, the runners and the control socket.

Socket: the supervisor binds one ROUTER (`control`). Workers connect with
routing id `w/<server>/<generation>`; the gateway connects with `gateway`.
Gateways `Subscribe` and then receive a `Snapshot` followed by every change.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import Any, Final

import msgspec
import trio

from bus.codec import TO_SUPERVISOR
from bus.errors import BusError, ConfigError, PeerGoneError, ProxyError
from bus.messages import (
    PROTOCOL_VERSION,
    Catalog,
    CatalogChanged,
    ClientCommand,
    CommandResult,
    ConfigCommand,
    ConfigResult,
    ControlCommand,
    Heartbeat,
    KnownSecrets,
    LoginStarted,
    Message,
    Notice,
    SecretCommand,
    SecretResult,
    ServerCatalog,
    ServerChanged,
    ServerRemoved,
    ServerTools,
    Snapshot,
    Subscribe,
    ToolsChanged,
    ToSupervisor,
    UpstreamHealth,
    UpstreamSpawned,
    WorkerFailed,
    WorkerHello,
    WorkerReady,
)
from bus.transport import RouterChannel, bind_router
from services import process
from services.clients import ClientStore
from services.concurrency_config import call_limits
from services.config import ProxyConfig, ServerConfig
from services.config_doc import ConfigDocument, redact_server
from services.limits_config import stdio_defaults_changed, stdio_fields
from services.pinning import PinStore, approve_prompts
from services.private_files import make_private_dir
from services.runtime import endpoints_for
from services.secrets import SecretStore
from services.start_config import start_policy
from services.tool_cache import ToolCache
from supervisor import secrets_admin
from supervisor.config_admin import ConfigAdmin, watch_file
from supervisor.containers import ContainerJanitor
from supervisor.gateway_settings import access_policy, result_limits
from supervisor.inbox import Command
from supervisor.known_values import KnownValues, read_stored
from supervisor.ledger import (
    REFRESH_INTERVAL_S,
    WORKER_STOP_MARGIN_S,
    Ledger,
    lock_data_dir,
    refresh_descendants,
    wait_gone,
)
from supervisor.policy import RestartPolicy
from supervisor.runner import ServerRunner
from supervisor.runner_context import RunnerContext
from supervisor.sign_in import forget_oauth, sign_in, sign_out
from supervisor.spawn import Spawner
from supervisor.states import WorkerState

logger = logging.getLogger(__name__)

COMMANDS: Final = frozenset({"restart", "approve_tools", "approve_prompts", "login", "logout", "start"})
REPIN_TIMEOUT_S: Final = 5.0
"""A runner in a staged stop reads its inbox only after it; the gateway waits 10 s for the answer."""


class ControlPlane:
    def __init__(
        self, config: ProxyConfig, data_dir: Path, log_level: str = "INFO", config_path: Path | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.data_dir = data_dir
        self.log_level = log_level
        endpoints = endpoints_for(data_dir)
        self.control_endpoint = endpoints.control
        self.control_bind = endpoints.bind_control()
        self.calls_endpoint = endpoints.calls
        self.runners: dict[str, ServerRunner] = {}
        self.subscribers: set[bytes] = set()
        self.router: RouterChannel[ToSupervisor] | None = None
        self.secrets = SecretStore(data_dir, config.secrets_backend)
        self.admin: ConfigAdmin | None = None
        self.pins = PinStore(data_dir / "tool_approvals.json")
        self.prompt_pins = PinStore(data_dir / "prompt_approvals.json")
        self.tool_cache = ToolCache(data_dir)
        self.containers = ContainerJanitor(data_dir, config.docker_isolation)
        self.known = KnownValues()
        """Scrubs every published error text and masks config views by value (supervisor/known_values.py)."""
        self.known.learn(config)
        self.clients = ClientStore(data_dir)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, start every server, and route messages until cancelled."""
        make_private_dir(self.data_dir / "logs")
        run_dir = self.data_dir / "run"
        self._lock_fd = lock_data_dir(run_dir)
        process.become_subreaper()
        ledger = Ledger(run_dir)
        await ledger.let_workers_finish(
            self.config.close_timeout_s() + self.config.kill_timeout_s() + WORKER_STOP_MARGIN_S
        )
        leftovers = ledger.sweep_leftovers()
        if leftovers:
            await wait_gone(leftovers)
        self.router = bind_router(self.control_bind, TO_SUPERVISOR)
        spawner = Spawner(self.control_endpoint, self.log_level)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                # Docker isolation: containers of an earlier run (it spares ours, so no need to wait).
                nursery.start_soon(self.containers.sweep_leftovers, self.config.mcpServers)
                if self.config_path is not None:
                    doc = ConfigDocument.from_text(self.config_path.read_text())
                    self.admin = ConfigAdmin(
                        self.config_path,
                        doc,
                        self.secrets,
                        self.apply_config,
                        self._notice,
                        clients_of=self.clients.bound_to,
                    )
                    nursery.start_soon(watch_file, self.admin)
                ctx = RunnerContext(
                    control_endpoint=self.control_endpoint,
                    calls_endpoint=self.calls_endpoint,
                    data_dir=self.data_dir,
                    close_timeout_s=self.config.close_timeout_s(),
                    kill_timeout_s=self.config.kill_timeout_s(),
                    log_level=self.log_level,
                    restart_policy=RestartPolicy(
                        initial_backoff_s=self.config.restart.initial_backoff,
                        max_backoff_s=self.config.restart.max_backoff,
                        max_failures=self.config.restart.max_failures,
                        failure_window_s=self.config.restart.failure_window,
                        stable_after_s=self.config.restart.stable_after,
                    ),
                    send_worker=self._send,
                    publish=self._publish,
                    publish_tools=self._publish_tools,
                    nursery=nursery,
                    ledger=ledger,
                    spawner=spawner,
                    secrets_backend=self.config.secrets_backend,
                    config_view=self._config_view,
                    pins=self.pins,
                    prompt_pins=self.prompt_pins,
                    containers=self.containers,
                    stdio_fields=lambda server, gen: stdio_fields(self.config, server, self.data_dir, gen),
                    scrub=self.known.scrub,
                    start_slots=trio.CapacityLimiter(self.config.start_slots()),
                    start_policy=lambda server: start_policy(self.config, server),
                    tool_cache=self.tool_cache,
                    otlp_endpoint=self.config.otlp_endpoint,
                )
                self._ctx = ctx
                for server in self.config.mcpServers:
                    self._start_runner(server)
                nursery.start_soon(self._route)
                nursery.start_soon(self._refresh_ledger, ledger)
                task_status.started()
        finally:
            self.router.close()
            with trio.CancelScope(shield=True):
                await spawner.aclose()
                await self.containers.sweep_all()  # Docker isolation: nothing of ours outlives us

    async def _route(self) -> None:
        assert self.router is not None
        while True:
            try:
                peer, message = await self.router.receive()
            except BusError as exc:
                logger.warning("dropped a bad control message: %s", exc)
                continue
            match message:
                case (
                    WorkerHello()
                    | UpstreamSpawned()
                    | WorkerReady()
                    | ToolsChanged()
                    | CatalogChanged()
                    | WorkerFailed()
                    | LoginStarted()
                    | Heartbeat()
                    | UpstreamHealth()
                ):
                    runner = self.runners.get(message.server)
                    if runner is not None:
                        runner.deliver_nowait(message)
                case Subscribe(protocol_version=version) if version != PROTOCOL_VERSION:
                    logger.error(
                        "a gateway speaking bus protocol %d subscribed; this supervisor speaks %d: parts of "
                        "two mcpproxy versions are mixed, reinstall it and restart",
                        version,
                        PROTOCOL_VERSION,
                    )
                case Subscribe():
                    self.subscribers.add(peer)
                    await self._send(peer, self._snapshot())
                    await self._send(peer, access_policy(self.config, self.clients.grants.values()))
                    await self._send(peer, result_limits(self.config))
                    await self._send(peer, call_limits(self.config))
                    self._nursery.start_soon(self._share_known_secrets)
                    # The gateway is about to serve: warm the zygote up now (if no worker did),
                    # so that a server added later starts at once.
                    self._ctx.spawner.start_zygote()
                case ControlCommand():
                    await self._command(peer, message)
                case ConfigCommand():
                    self._nursery.start_soon(self._config_command, peer, message)
                case ClientCommand():
                    result = self.clients.handle(message, self.config.profiles)
                    if result.ok and message.action != "list":
                        await self._share_access_policy()  # before the answer: the next request sees it
                    await self._send(peer, result)
                case SecretCommand():
                    # Store calls block in a thread; a slow keyring must not stall routing.
                    self._nursery.start_soon(self._secret_command, peer, message)

    def _start_runner(self, server: ServerConfig) -> None:
        runner = ServerRunner(server, self._ctx)
        self.runners[server.name] = runner
        self._nursery.start_soon(self._run_runner, runner)
        # A server that is not meant to run makes no transition: announce it ourselves.
        self._nursery.start_soon(self._publish, runner)

    async def _run_runner(self, runner: ServerRunner) -> None:
        await runner.run()
        # run() returns only when the server was removed from the config.
        if self.runners.get(runner.name) is runner:
            del self.runners[runner.name]
            self.pins.forget(runner.name)
            self.prompt_pins.forget(runner.name)
            self.tool_cache.forget(runner.name)
            try:  # a removed server's sign-in goes with it
                await forget_oauth(self.secrets, runner.name, keep_client=False)
            except ProxyError as exc:
                logger.warning("server %s: could not forget its OAuth tokens: %s", runner.name, exc)
            for peer in list(self.subscribers):
                await self._send(peer, ServerRemoved(name=runner.name))

    async def apply_config(self, config: ProxyConfig, source: str) -> None:
        """Adopt a new config: start added servers, stop removed ones, restart only the changed ones."""
        old = {s.name: s for s in self.config.mcpServers}
        old_config = self.config
        # Docker isolation: servers whose container a changed `docker_isolation` changes restart too.
        docker_changed = self.containers.adopt(
            config.docker_isolation, self.config.mcpServers, config.mcpServers
        ) + stdio_defaults_changed(self.config, config)  # or their upstream, a new global env or limits
        self.config = config
        for server in config.mcpServers:
            previous = old.pop(server.name, None)
            runner = self.runners.get(server.name)
            if previous is None or runner is None or runner.removed:
                self._start_runner(server)
            elif previous != server or start_policy(old_config, server) != start_policy(config, server):
                runner.reconfigure(server)
            else:
                await self._publish(runner)  # the redacted view may still have changed
        for name in old:
            runner = self.runners.get(name)
            if runner is not None:
                runner.deliver_nowait(Command("remove"))
        for name in docker_changed:
            if (runner := self.runners.get(name)) is not None:
                runner.reconfigure(config.server(name) or runner.config)
        logger.info("config applied (%s): %d server(s)", source, len(config.mcpServers))
        self.known.learn(config)
        self._nursery.start_soon(self._share_known_secrets)
        await self._share_access_policy()
        limits = result_limits(self.config)
        concurrency = call_limits(self.config)
        for peer in list(self.subscribers):
            await self._send(peer, limits)
            await self._send(peer, concurrency)

    async def _share_access_policy(self) -> None:
        policy = access_policy(self.config, self.clients.grants.values())
        for peer in list(self.subscribers):
            await self._send(peer, policy)

    async def _share_known_secrets(self) -> None:
        """Read the store anew, and tell the gateway every secret value we know (for the activity log
        and tool results); when they changed, republish every server (its view and error masked anew)."""
        stored = await trio.to_thread.run_sync(read_stored, self.secrets)
        if self.known.learn(self.config, stored):
            for runner in list(self.runners.values()):
                await self._publish(runner)
        message = KnownSecrets(values=sorted(self.known.values))
        for peer in list(self.subscribers):
            await self._send(peer, message)

    def _config_view(self, name: str) -> bytes:
        if self.admin is None:
            return b"{}"
        try:
            server = self.admin.doc.server(name)
        except ConfigError:
            return b"{}"
        view = json.dumps(redact_server(server, reveal=self.admin.reveal)).encode()
        return self.known.mask_view(view, reveal=self.admin.reveal)

    async def _notice(self, event: str, data: dict[str, Any]) -> None:
        notice = Notice(event=event, data=json.dumps(data).encode())
        for peer in list(self.subscribers):
            await self._send(peer, notice)

    async def _config_command(self, peer: bytes, command: ConfigCommand) -> None:
        if self.admin is None:
            result = ConfigResult(request_id=command.request_id, ok=False, status=503, error="no config file")
        else:
            try:
                result = await self.admin.handle(command)
            except Exception as exc:  # task boundary: a bad request must never take the control plane down
                logger.exception("config command %s failed", command.action)
                result = ConfigResult(
                    request_id=command.request_id, ok=False, status=500, error=_internal(exc)
                )
        result = msgspec.structs.replace(
            result,
            body=self.known.mask_view(result.body, reveal=self.admin is not None and self.admin.reveal),
            error=self.known.scrub(result.error) if result.error else None,
        )
        await self._send(peer, result)

    async def _command(self, peer: bytes, command: ControlCommand) -> None:
        runner = self.runners.get(command.server)
        if runner is None:
            result = CommandResult(
                request_id=command.request_id, ok=False, error=f"unknown server {command.server!r}"
            )
        elif command.action not in COMMANDS:
            result = CommandResult(
                request_id=command.request_id, ok=False, error=f"unknown action {command.action!r}"
            )
        elif command.action in ("approve_tools", "approve_prompts"):  # waits for the runner: not on this task
            self._nursery.start_soon(self._approve, peer, command, runner)
            return
        elif command.action in ("login", "logout"):
            if runner.config.transport == "stdio":
                result = CommandResult(
                    request_id=command.request_id,
                    ok=False,
                    error=f"server {runner.name!r} is a stdio server: only servers with a url sign in",
                )
            else:  # both wait (on a worker, or on the store): not on the routing task
                handler = sign_in if command.action == "login" else sign_out
                self._nursery.start_soon(handler, partial(self._send, peer), self.secrets, command, runner)
                return
        else:  # restart, or start (a call needs an on-demand server: supervisor/on_demand.py)
            runner.deliver_nowait(Command("start" if command.action == "start" else "restart"))
            result = CommandResult(request_id=command.request_id, ok=True, status=runner.status())
        await self._send(peer, result)

    async def _approve(self, peer: bytes, command: ControlCommand, runner: ServerRunner) -> None:
        """Record the approvals of tools or prompts, then let the runner re-check its tools and prompts;
        answer once it has published them."""
        if command.action == "approve_prompts":
            asked = command.prompts
            names = approve_prompts(self.prompt_pins, runner.name, runner.catalog.prompts, asked)
        else:
            asked = command.tools
            names = self.pins.approve(runner.name, runner.tools, asked)
        repinned = trio.Event()
        runner.deliver_nowait(Command("repin", done=repinned))
        with trio.move_on_after(REPIN_TIMEOUT_S):
            await repinned.wait()
        result = CommandResult(
            request_id=command.request_id,
            ok=True,
            status=runner.status(),
            # Only None means all: a list that names nothing approves nothing, and says so.
            error=None if names or asked is None else f"no such {command.action.removeprefix('approve_')}",
        )
        await self._send(peer, result)

    async def _refresh_ledger(self, ledger: Ledger) -> None:
        while True:
            await trio.sleep(REFRESH_INTERVAL_S)
            # The worker's whole tree: a daemon that escaped the upstream's group is the worker's
            # (adopted) child, not the upstream's.
            trees = {
                r.name: ([r.worker.child.pid, r.upstream_pid], r.upstream_pgid)
                for r in self.runners.values()
                if r.worker is not None and r.upstream_pid is not None and r.upstream_pgid is not None
            }
            if trees:
                refresh_descendants(ledger, trees)

    async def _secret_command(self, peer: bytes, command: SecretCommand) -> None:
        try:
            result, restart = await secrets_admin.handle(command, self.secrets, self.config)
        except Exception as exc:  # task boundary: a bad request must never take the control plane down
            logger.exception("secret command %s failed", command.action)
            result = SecretResult(request_id=command.request_id, ok=False, status=500, error=_internal(exc))
            restart = []
        if result.ok and command.action != "list":
            await self._notice("secrets.changed", {"name": command.name, "action": command.action})
            self._nursery.start_soon(self._share_known_secrets)
        for name in restart:
            runner = self.runners.get(name)
            if runner is not None and runner.wanted:
                runner.deliver_nowait(Command("restart"))
        await self._send(peer, result)

    def _snapshot(self) -> Snapshot:
        return Snapshot(
            servers=[r.status() for r in self.runners.values()],
            tools={r.name: r.tools for r in self.runners.values() if r.tools},
            secrets_backend=self.secrets.backend_name,
            catalogs={r.name: r.catalog for r in self.runners.values() if r.catalog != Catalog()},
        )

    async def _send(self, peer: bytes, message: object) -> bool:
        """Send; a peer that is not connected is dropped from the subscribers. Returns whether it went out."""
        assert self.router is not None
        assert isinstance(message, Message)
        try:
            await self.router.send(peer, message)
        except PeerGoneError:
            self.subscribers.discard(peer)
            return False
        return True

    async def _publish(self, runner: ServerRunner) -> None:
        status = ServerChanged(status=runner.status())
        for peer in list(self.subscribers):
            await self._send(peer, status)

    async def _publish_tools(self, runner: ServerRunner) -> None:
        if runner.life.state is WorkerState.RUNNING:  # what an idle on-demand server is listed with
            self.tool_cache.save(
                runner.name,
                runner.tools,
                runner.catalog,
                server_version=runner.server_version,
                summary=runner.summary,
            )
        tools = ServerTools(server=runner.name, generation=runner.generation, tools=runner.tools)
        catalog = ServerCatalog(server=runner.name, generation=runner.generation, catalog=runner.catalog)
        for peer in list(self.subscribers):
            await self._send(peer, tools)
            await self._send(peer, catalog)


def _internal(exc: Exception) -> str:
    """What a caller is told of a command that failed on a bug: the exception's kind (its text may
    hold what the command carried, a secret's value among it); the log has the traceback."""
    return f"internal error: {type(exc).__name__}"
