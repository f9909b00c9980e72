"""The supervisor's side of Docker isolation: which container each server gets, and removing the ones
no worker will stop any more.

Every container carries labels: `com.mcpproxy.managed=true`, the server, this
proxy instance (a hash of the host and the data dir: stable across
restarts), this supervisor run, and the worker generation. With them:

- at start, `sweep_leftovers` removes every container of this instance that
  an earlier run left (the whole proxy was SIGKILLed). It spares the current
  run, so it runs in the background while servers start;
- when a worker ends, `after_worker` removes what is left of its server's
  containers: the worker normally removed its own, but a SIGKILLed worker
  removed nothing, and its container would otherwise outlive it;
- at shutdown, `sweep_all` removes whatever of this instance is still there.

`<data_dir>/run/docker-isolation` exists from the first container of a run
until a shutdown sweep that reached the engine: a proxy that never isolates
anything neither imports the docker SDK nor calls an engine.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from bus.messages import ContainerSpec
from services.config import DockerIsolationConfig, ServerConfig, write_atomically
from services.isolation import container_spec, instance_id, instance_labels, isolated
from services.private_files import make_private_dir

if TYPE_CHECKING:
    from services.docker_engine import ContainerInfo

logger = logging.getLogger(__name__)

JANITOR_CONNECT_S: Final = 5.0
SWEEP_TIMEOUT_S: Final = 10.0
"""Bounds one sweep (connect, list, remove); at shutdown it comes after every worker stopped."""
MARKER_NAME: Final = "docker-isolation"


class ContainerJanitor:
    def __init__(self, data_dir: Path, docker: DockerIsolationConfig) -> None:
        self.instance = instance_id(data_dir)
        self.run = secrets.token_hex(8)
        self.docker = docker
        self.marker = data_dir / "run" / MARKER_NAME
        self.used = False
        self._marked = False
        self._isolated: set[str] = set()

    def spec_for(self, server: ServerConfig, generation: int) -> ContainerSpec | None:
        """The container of `server`'s next generation, or None when it is not isolated."""
        spec = container_spec(server, self.docker, self.instance, self.run, generation)
        if spec is None:
            self._isolated.discard(server.name)
            return None
        self._isolated.add(server.name)
        self.used = True
        if not self._marked:
            make_private_dir(self.marker.parent)
            write_atomically(self.marker, self.instance + "\n", durable=False)
            self._marked = True
        return spec

    def adopt(
        self, docker: DockerIsolationConfig, before: list[ServerConfig], after: list[ServerConfig]
    ) -> list[str]:
        """A new config: servers unchanged themselves whose container a new `docker_isolation` changes."""
        old, self.docker = self.docker, docker
        if old == docker:
            return []
        previous = {server.name: server for server in before}
        return [
            server.name
            for server in after
            if previous.get(server.name) == server
            and container_spec(server, old, self.instance, self.run, 0)
            != container_spec(server, docker, self.instance, self.run, 0)
        ]

    async def after_worker(self, server: str) -> None:
        """A worker of `server` ended: remove any container of the server still there."""
        if server not in self._isolated:
            return
        removed = await self._remove(instance_labels(self.instance, server), None, f"server {server}")
        if removed:
            logger.warning(
                "server %s: removed %d container(s) its worker left: %s",
                server,
                len(removed),
                ", ".join(info.name for info in removed),
            )

    async def sweep_leftovers(self, servers: list[ServerConfig]) -> None:
        """At start: remove every container of this instance from an earlier run."""
        if not self.marker.exists() and not any(isolated(s, self.docker) for s in servers):
            return
        self.used = True  # the shutdown sweep finishes the job if the engine does not answer now
        removed = await self._remove(instance_labels(self.instance), self.run, "start sweep")
        if removed:
            logger.warning(
                "removed %d container(s) left by a previous run: %s",
                len(removed),
                ", ".join(f"{info.name} ({info.state})" for info in removed),
            )

    async def sweep_all(self) -> None:
        """At shutdown, after every worker stopped: remove whatever of this instance is still there."""
        if not self.used:
            return
        removed = await self._remove(instance_labels(self.instance), None, "shutdown sweep")
        if removed is None:
            return  # the marker stays: the next start sweeps
        if removed:
            logger.warning("shutdown: removed %d container(s)", len(removed))
        self.marker.unlink(missing_ok=True)
        self._marked = False

    async def _remove(
        self, labels: dict[str, str], spare_run: str | None, what: str
    ) -> list[ContainerInfo] | None:
        """Remove the containers with `labels`; None when the engine could not be reached."""
        from services.docker_engine import DockerEngine, DockerError  # the SDK costs ~0.2 s to import

        with trio.move_on_after(SWEEP_TIMEOUT_S):
            try:
                engine = await DockerEngine.connect(JANITOR_CONNECT_S)
            except DockerError as exc:
                logger.warning("%s: %s", what, exc)
                return None
            try:
                return await engine.remove_all(labels, spare_run)
            except DockerError as exc:
                logger.warning("%s: %s", what, exc)
                return None
            finally:
                engine.close()
        logger.warning("%s: the engine did not answer within %gs", what, SWEEP_TIMEOUT_S)
        return None
