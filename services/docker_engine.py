"""The Docker engine: the one module that calls the docker SDK. Every SDK call blocks: always in a thread.

Which engine: the SDK's choice, `DOCKER_HOST` (a unix socket or plain tcp)
else `/var/run/docker.sock`. Every call is bounded; errors come out as
`DockerUnavailableError` ("docker unavailable: ..."), `ImageNotFoundError`
("image not found: ...") or `DockerError`, so a server's `last_error` says
which of the three went wrong.

The attach stream of a container is not read through the SDK: we take the
socket the SDK hijacked, duplicate its descriptor and hand it to trio, so
reading the container's output needs no thread. The one SDK internal this
relies on: the attach socket carries the HTTP response it came from as
`_response`, which we close with it. Importing this module checks that the
installed SDK still sets it (WRITTEN_FOR, which pyproject.toml pins) and raises
IncompatibleLibraryError otherwise.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

import docker
import docker.errors
import requests.exceptions
import trio
from docker.api.client import APIClient

from bus.errors import IncompatibleLibraryError, UpstreamError
from bus.messages import ContainerSpec, UpstreamSpec
from services.isolation import LABEL_GENERATION, LABEL_RUN, LABEL_SERVER, instance_labels, parse_extra_args

logger = logging.getLogger(__name__)

ENGINE_CALL_S: Final = 10.0
"""One API call: ping, inspect, list, remove. The engine answers these in milliseconds when healthy."""
STATUS_TIMEOUT_S: Final = 5.0
DEFAULT_HOST: Final = "unix:///var/run/docker.sock"
WRITTEN_FOR: Final = "7"
"""The docker SDK release series whose internals this module relies on."""

T = TypeVar("T")


class DockerError(UpstreamError):
    """The engine refused or failed a request."""


class DockerUnavailableError(DockerError):
    """No engine answers (not installed, not running, wrong DOCKER_HOST, or it died)."""


class ImageNotFoundError(DockerError):
    """The image is not on the engine and could not be pulled."""


def engine_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _reason(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode(errors="replace")
        return str(explanation or exc).strip()
    while exc.__cause__ is not None and not str(exc):
        exc = exc.__cause__
    text = str(exc) or type(exc).__name__
    if "FileNotFoundError" in text or "No such file" in text:
        return f"no engine socket at {engine_host()} (is dockerd running? is DOCKER_HOST right?)"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return f"connection refused by {engine_host()} (is dockerd running?)"
    if "Permission denied" in text or "PermissionError" in text:
        return f"permission denied on {engine_host()} (is this user in the docker group?)"
    return text


def engine_error_reason(exc: BaseException) -> str:
    """Why the engine could not be used, in words that say what to check (for `mcpproxy doctor`)."""
    return _reason(exc)


def _unavailable(exc: BaseException) -> DockerUnavailableError:
    return DockerUnavailableError(f"docker unavailable: {_reason(exc)}")


async def _run(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """`fn()` in a worker thread, within `timeout_s`; SDK exceptions become ours."""
    try:
        with trio.fail_after(timeout_s):
            return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)
    except trio.TooSlowError:
        raise DockerUnavailableError(
            f"docker unavailable: the engine at {engine_host()} did not answer {what} within {timeout_s:g}s"
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise _unavailable(exc) from exc
    except docker.errors.APIError:
        raise
    except docker.errors.DockerException as exc:
        raise _unavailable(exc) from exc


@dataclass(frozen=True)
class ContainerInfo:
    """A managed container as the engine lists it."""

    id: str
    name: str
    server: str
    state: str
    status: str
    image: str
    labels: dict[str, str]

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> ContainerInfo:
        labels = raw.get("Labels") or {}
        names = raw.get("Names") or [""]
        return cls(
            id=raw["Id"],
            name=names[0].lstrip("/"),
            server=labels.get(LABEL_SERVER, ""),
            state=raw.get("State", ""),
            status=raw.get("Status", ""),
            image=raw.get("Image", ""),
            labels=labels,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id[:12],
            "name": self.name,
            "server": self.server,
            "state": self.state,
            "status": self.status,
            "image": self.image,
            "generation": self.labels.get(LABEL_GENERATION),
        }


class Attached:
    """A started container and our own descriptor of its attach socket (stdin, stdout, stderr multiplexed)."""

    def __init__(self, container_id: str, fd: int, keep: socket.SocketIO) -> None:
        self.container_id = container_id
        self.fd = fd
        self._keep = keep
        self._response = keep._response  # type: ignore[attr-defined]  # set by the SDK (see `problems`)

    def release(self) -> None:
        """Close the SDK's side of the hijacked connection (our duplicate descriptor is separate)."""
        with contextlib.suppress(Exception):
            self._keep.close()
            self._response.close()


def _create_kwargs(api: Any, spec: UpstreamSpec, container: ContainerSpec) -> dict[str, Any]:
    options = parse_extra_args(container.extra_args)
    host_config = api.create_host_config(
        binds=options.binds or None,
        mem_limit=container.memory_bytes,
        nano_cpus=container.nano_cpus,
        network_mode=container.network_mode,
        init=options.init,
        read_only=options.read_only or None,
        tmpfs=options.tmpfs or None,
        cap_add=options.cap_add or None,
        cap_drop=options.cap_drop or None,
        security_opt=options.security_opt or None,
        pids_limit=options.pids_limit,
        extra_hosts=options.extra_hosts or None,
        dns=options.dns or None,
        shm_size=options.shm_size,
    )
    assert spec.command is not None
    return {
        "image": container.image,
        "command": [spec.command, *spec.args],
        "name": container.name,
        # stdin open and attached; the SDK then sets StdinOnce: our half-close is the server's stdin EOF.
        "stdin_open": True,
        "tty": False,
        # Secrets reach the container through its environment, never through its command line.
        "environment": {**options.env, **spec.env},
        "labels": dict(container.labels),
        "working_dir": options.working_dir,
        "user": options.user,
        "host_config": host_config,
        "use_config_proxy": False,
    }


class DockerEngine:
    """One SDK client; every method runs the blocking call in a thread, bounded."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._client = client
        self._api = client.api

    @classmethod
    async def connect(cls, timeout_s: float = ENGINE_CALL_S) -> DockerEngine:
        """Reach the engine (the SDK asks it for its API version on construction)."""

        def build() -> docker.DockerClient:
            client = docker.DockerClient.from_env(timeout=max(1, round(timeout_s)))
            client.ping()
            return client

        try:
            return cls(await _run(build, timeout_s, "a ping"))
        except docker.errors.APIError as exc:
            raise _unavailable(exc) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    async def _call(self, fn: Callable[[], T], what: str, timeout_s: float = ENGINE_CALL_S) -> T:
        try:
            return await _run(fn, timeout_s, what)
        except docker.errors.APIError as exc:
            raise DockerError(f"docker error ({what}): {_reason(exc)}") from exc

    async def version(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(self._api.version, "version")
        return result

    async def ensure_image(self, image: str, timeout_s: float, note: Callable[[str], None]) -> None:
        """The image is on the engine, pulled if it was not; ImageNotFoundError otherwise."""
        try:
            await _run(partial(self._api.inspect_image, image), ENGINE_CALL_S, "an image inspect")
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise DockerError(f"docker error (inspect image {image}): {_reason(exc)}") from exc
        note(f"image {image} is not on the engine: pulling it")
        repository, tag = _split_image(image)
        output: str | None = None
        try:
            output = await _run(partial(self._api.pull, repository, tag=tag), timeout_s, f"a pull of {image}")
            # A pull can fail after the engine said 200: the error is then a line of its progress stream.
            await _run(partial(self._api.inspect_image, image), ENGINE_CALL_S, "an image inspect")
        except docker.errors.APIError as exc:
            reason = _reason(exc) if output is None else _pull_error(output)
            raise ImageNotFoundError(
                f"image not found: {image} (not on the engine, and pulling it failed: {reason}); "
                "pull or build it, or set isolation.image"
            ) from exc
        except DockerUnavailableError as exc:
            if "did not answer" in str(exc):
                raise ImageNotFoundError(
                    f"image not found: {image} (pulling it took longer than docker_isolation.timeout "
                    f"{timeout_s:g}s; pull it first with `docker pull {image}`)"
                ) from exc
            raise

    async def run_attached(self, spec: UpstreamSpec) -> Attached:
        """Create the container, attach to its stdin/stdout/stderr, start it."""
        container = spec.container
        assert container is not None
        try:
            created = await _run(
                partial(self._api.create_container, **_create_kwargs(self._api, spec, container)),
                container.start_timeout_s,
                "a container create",
            )
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(f"image not found: {container.image}: {_reason(exc)}") from exc
        except docker.errors.APIError as exc:
            raise DockerError(f"docker error (create container): {_reason(exc)}") from exc
        container_id: str = created["Id"]
        attached: Attached | None = None
        try:
            # Attach before start, so not a byte of output is missed.
            keep = await self._call(
                partial(
                    self._api.attach_socket,
                    container_id,
                    params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1},
                ),
                "an attach",
            )
            # A unix or plain tcp engine hands over the socket's raw reader; TLS and ssh give other kinds.
            if not isinstance(keep, socket.SocketIO) or self._api.base_url.startswith("https:"):
                raise DockerError(
                    f"docker error: cannot attach over {engine_host()}: Docker isolation needs a unix "
                    "socket or a plain tcp DOCKER_HOST (not TLS or ssh)"
                )
            attached = Attached(container_id, os.dup(keep.fileno()), keep)
            try:
                await _run(partial(self._api.start, container_id), ENGINE_CALL_S, "a container start")
            except docker.errors.APIError as exc:
                raise DockerError(f"cannot start the container: {_reason(exc)}") from exc
            return attached
        except BaseException:
            if attached is not None:
                attached.release()
                os.close(attached.fd)
            with trio.CancelScope(shield=True), contextlib.suppress(DockerError):
                await self.remove(container_id)
            raise

    async def state(self, container_id: str) -> dict[str, Any] | None:
        """The container's `State` from inspect, or None if it is gone."""
        try:
            info = await _run(partial(self._api.inspect_container, container_id), ENGINE_CALL_S, "inspect")
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            raise DockerError(f"docker error (inspect): {_reason(exc)}") from exc
        state: dict[str, Any] = info.get("State") or {}
        return state

    async def stop(self, container_id: str, kill_timeout_s: float) -> None:
        """`docker stop`: SIGTERM (the image's stop signal), SIGKILL after `kill_timeout_s`."""
        try:
            await _run(
                partial(self._api.stop, container_id, timeout=math.ceil(kill_timeout_s)),
                kill_timeout_s + ENGINE_CALL_S,
                "a stop",
            )
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise DockerError(f"docker error (stop): {_reason(exc)}") from exc

    async def kill(self, container_id: str) -> None:
        try:
            await _run(partial(self._api.kill, container_id), ENGINE_CALL_S, "a kill")
        except docker.errors.APIError as exc:
            if exc.status_code not in (404, 409):  # gone, or not running any more
                raise DockerError(f"docker error (kill): {_reason(exc)}") from exc

    async def remove(self, container_id: str) -> None:
        """`docker rm -f`: kill if still running, then remove (a container already gone is fine)."""
        try:
            await _run(
                partial(self._api.remove_container, container_id, force=True, v=True),
                ENGINE_CALL_S,
                "a remove",
            )
        except docker.errors.APIError as exc:
            # 404: already gone; 409: a removal is already in progress.
            if exc.status_code not in (404, 409):
                raise DockerError(f"docker error (remove): {_reason(exc)}") from exc

    async def containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """Every container (running or not) carrying all of `labels`."""
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        raw = await self._call(partial(self._api.containers, all=True, filters=filters), "a list")
        return [ContainerInfo.from_api(item) for item in raw]

    async def remove_all(self, labels: dict[str, str], spare_run: str | None = None) -> list[ContainerInfo]:
        """Remove every container with `labels`, except those of supervisor run `spare_run`."""
        removed = []
        for info in await self.containers(labels):
            if spare_run is None or info.labels.get(LABEL_RUN) != spare_run:
                await self.remove(info.id)
                removed.append(info)
        return removed


def _pull_error(output: str) -> str:
    for line in reversed(output.splitlines()):
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and event.get("error"):
                return str(event["error"])
    return "the image is still missing after the pull"


def _split_image(image: str) -> tuple[str, str | None]:
    """`repo[:tag]` or `repo@digest` as the pull API wants them."""
    if "@" in image:
        return image, None
    repository, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return repository, tag
    return image, "latest"


async def engine_status(instance: str, timeout_s: float = STATUS_TIMEOUT_S) -> dict[str, Any]:
    """For GET /api/v1/docker/status: is an engine there, which version, and this instance's containers."""
    status: dict[str, Any] = {"available": False, "host": engine_host(), "instance": instance}
    try:
        engine = await DockerEngine.connect(timeout_s)
    except DockerError as exc:
        status["error"] = str(exc)
        return status
    try:
        version = await engine.version()
        listed = await engine.containers(instance_labels(instance))
    except DockerError as exc:
        status["error"] = str(exc)
        return status
    finally:
        engine.close()
    status.update(
        available=True,
        version=version.get("Version"),
        api_version=version.get("ApiVersion"),
        os=version.get("Os"),
        arch=version.get("Arch"),
        containers=[info.view() for info in listed],
    )
    return status


def problems(api: type[APIClient] = APIClient) -> list[str]:
    """Each SDK internal this module relies on that `api` lacks, in words (none: all there)."""
    expected = {
        "APIClient.attach_socket returns the socket of _get_raw_response_socket": _uses(
            api, "attach_socket", "_get_raw_response_socket"
        ),
        "APIClient._get_raw_response_socket keeps the response on the socket as _response": _uses(
            api, "_get_raw_response_socket", "_response"
        ),
    }
    return [what for what, present in expected.items() if not present]


def _uses(cls: type, method: str, *names: str) -> bool:
    """Whether `cls.method` exists and its code (past decorators) reads or writes each name in `names`."""
    function = getattr(cls, method, None)
    code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
    return code is not None and set(names) <= set(code.co_names)


IncompatibleLibraryError.require("docker", WRITTEN_FOR, problems())
