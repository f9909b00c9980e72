"""Test harness: a real Docker engine, and a small image for it, with no registry.

The engine: Debian's `dockerd` (package docker.io), started by hand as root
with its own data root, exec root and socket under a temporary directory,
so it shares nothing with an engine the machine may already run; or, when
MCPPROXY_TEST_DOCKER_HOST is set, that engine instead.

The image (TEST_IMAGE) is assembled from the host, then `docker import`ed:
the shared libraries the host's Python loads outside its own prefix (found
in /proc/self/maps), the dynamic loader, and a minimal /etc. The Python
runtime itself, the venv and our test servers are bind-mounted read-only
(`RUNTIME_ARGS`), so `tests/servers/echo_server.py` runs in the container
at the same paths as on the host.

Anything that keeps the engine from running a container raises
EngineUnavailableError with the reason; the tests turn it into a skip, which
MCPPROXY_REQUIRE=docker turns into a failure (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import docker
import docker.errors
import requests.exceptions

REPO: Final = Path(__file__).resolve().parent.parent
SERVERS: Final = REPO / "tests" / "servers"
TEST_IMAGE: Final = "mcpproxy-test-python:latest"
ENGINE_ENV: Final = "MCPPROXY_TEST_DOCKER_HOST"
START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 20.0
POLL_S: Final = 0.1
PROBE_TIMEOUT_S: Final = 60
# What our test servers import; the libraries these load are the ones the image needs.
PROBE_IMPORTS: Final = "import ssl, json, trio, mcp.types, mcp.server.lowlevel, mcp.server.stdio"


class EngineUnavailableError(Exception):
    """No Docker engine can run containers here; the message says why."""


def runtime_paths() -> list[str]:
    """Host directories the container needs read-only: the Python runtime, the venv, our test servers."""
    paths: list[str] = []
    for candidate in (sys.base_prefix, sys.prefix, str(SERVERS)):
        real = os.path.realpath(candidate)
        if not any(real == p or real.startswith(p + "/") for p in paths):
            paths = [p for p in paths if not p.startswith(real + "/")] + [real]
    return paths


RUNTIME_ARGS: Final = [arg for path in runtime_paths() for arg in ("-v", f"{path}:{path}:ro")]
"""`extra_args` for an isolated server running our test servers with the host's Python."""


def _host_libraries() -> list[str]:
    maps = subprocess.run(
        [sys.executable, "-c", f"{PROBE_IMPORTS}; print(open('/proc/self/maps').read())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    covered = tuple(p + "/" for p in runtime_paths())
    found = {
        parts[5]
        for line in maps.splitlines()
        if len(parts := line.split()) >= 6 and parts[5].startswith("/") and ".so" in parts[5]
    }
    return sorted(path for path in found if not path.startswith(covered))


class _RootFS:
    """Adds host paths to a tar at the same place, copying every symlink met on the way."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.done: set[str] = {"/"}

    def add(self, path: str) -> None:
        path = os.path.normpath(path)
        if path in self.done:
            return
        self.add(os.path.dirname(path))
        self.done.add(path)
        if os.path.islink(path):
            target = os.readlink(path)
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            self.tar.addfile(info)
            self.add(os.path.join(os.path.dirname(path), target))
        elif os.path.isdir(path):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            self.tar.addfile(info)
        else:
            self.file(path)

    def file(self, path: str) -> None:
        """`path` as a regular entry with its own content, whatever its link count.

        `tarfile.add` writes the second path of an inode with several hard links as a LNKTYPE
        entry (e.g. `ld-linux-x86-64.so.2` reached through /lib and /usr/lib on a layout that is
        not merged); on some layouts `docker import` cannot resolve it and the image is unusable.
        """
        st = os.stat(path)
        info = tarfile.TarInfo(path.lstrip("/"))
        info.type, info.size, info.mode, info.mtime = (
            tarfile.REGTYPE,
            st.st_size,
            stat.S_IMODE(st.st_mode),
            int(st.st_mtime),
        )
        with open(path, "rb") as content:
            self.tar.addfile(info, content)

    def add_aliases(self, path: str) -> None:
        """Also the symlinks next to `path` that name it (libffi.so.8 -> libffi.so.8.1.2)."""
        real = os.path.realpath(path)
        for entry in os.scandir(os.path.dirname(real)):
            if entry.is_symlink() and os.path.realpath(entry.path) == real:
                self.add(entry.path)

    def text(self, name: str, body: str, mode: int = 0o644) -> None:
        data = body.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        self.tar.addfile(info, io.BytesIO(data))


def rootfs_tar() -> bytes:
    buffer = io.BytesIO()
    interpreter = "/lib64/ld-linux-x86-64.so.2"
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        fs = _RootFS(tar)
        for path in [*_host_libraries(), interpreter, "/etc/ld.so.cache"]:
            if os.path.exists(path):
                fs.add(path)
                fs.add_aliases(path)
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
        fs.text(
            "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n"
        )
        fs.text("etc/group", "root:x:0:\nnogroup:x:65534:\n")
    return buffer.getvalue()


def import_test_image(client: docker.DockerClient) -> None:
    """`docker import` of the rootfs as TEST_IMAGE."""
    repository, _, tag = TEST_IMAGE.partition(":")
    client.api.import_image_from_data(rootfs_tar(), repository=repository, tag=tag)


def probe(client: docker.DockerClient) -> None:
    """Run the host's Python in a container from TEST_IMAGE once: proof the engine runs containers."""
    binds = [f"{path}:{path}:ro" for path in runtime_paths()]
    try:
        output = client.containers.run(
            TEST_IMAGE,
            [sys.executable, "-c", "print('probe ok')"],
            remove=True,
            network_mode="none",
            volumes=binds,
        )
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(f"the engine cannot run a container: {exc}") from exc
    if b"probe ok" not in output:
        raise EngineUnavailableError(f"the probe container printed {output!r}")


@dataclass
class TestEngine:
    """A Docker engine the tests use: ours (a dockerd we started) or an external one."""

    host: str
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    argv: list[str] = field(default_factory=list)

    __test__ = False  # not a pytest test class

    @property
    def owned(self) -> bool:
        return self.root is not None

    @property
    def log_path(self) -> Path | None:
        return self.root / "dockerd.log" if self.root else None

    def client(self, timeout: int = 30) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        """(Re)start our dockerd and wait until it answers."""
        assert self.root is not None
        # A dockerd that was killed leaves containerd's pid file behind, naming a dead (or zombie)
        # process: the next dockerd would wait for that containerd instead of starting its own.
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            if not _running(int(pidfile.read_text().strip())):
                pidfile.unlink()
        with open(self.root / "dockerd.log", "ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineUnavailableError(
                    f"dockerd exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                self.client(timeout=2).close()  # the client asks the engine its version
                return
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                time.sleep(POLL_S)
        self.kill()
        raise EngineUnavailableError(
            f"dockerd did not answer within {START_TIMEOUT_S:g}s:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """SIGKILL dockerd alone, as a crash would; its containerd lives on and the next dockerd adopts it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Stop our dockerd (SIGTERM, then SIGKILL) and remove its directories."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.root is not None:
            for pid in _processes_mentioning(str(self.root)):  # containerd and shims of a killed dockerd
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            # Mounts dockerd may have left (it was SIGKILLed, say) would make rmtree fail.
            subprocess.run(
                ["sh", "-c", f"grep -o ' {self.root}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"],
                check=False,
                capture_output=True,
            )
            shutil.rmtree(self.root, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return line[line.rfind(")") + 2] != "Z"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _dockerd() -> str:
    found = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if found is None:
        raise EngineUnavailableError(
            "dockerd is not installed (Debian: apt-get install -y --no-install-recommends docker.io; "
            f"or set {ENGINE_ENV} to a running engine)"
        )
    return found


def start_engine() -> TestEngine:
    """An engine that runs containers, with TEST_IMAGE imported; EngineUnavailableError if impossible."""
    external = os.environ.get(ENGINE_ENV)
    if external:
        engine = TestEngine(host=external)
    else:
        if os.geteuid() != 0:
            raise EngineUnavailableError(
                f"starting dockerd needs root (running as uid {os.geteuid()}); "
                f"or set {ENGINE_ENV} to a running engine"
            )
        dockerd = _dockerd()
        root = Path(tempfile.mkdtemp(prefix="mcpproxy-dockerd-", dir="/tmp"))
        socket_path = root / "docker.sock"
        engine = TestEngine(
            host=f"unix://{socket_path}",
            root=root,
            argv=[
                dockerd,
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(root / "exec"),
                "--pidfile",
                str(root / "dockerd.pid"),
                "-H",
                f"unix://{socket_path}",
                # Leave the host's firewall alone: the tests need no published ports or NAT.
                "--iptables=false",
                "--ip-masq=false",
                "--log-level=warn",
            ],
        )
        try:
            engine.start()
        except BaseException:
            engine.stop()
            raise
    try:
        try:
            client = engine.client()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineUnavailableError(f"no engine answers at {engine.host}: {exc}") from exc
        try:
            import_test_image(client)
            probe(client)
        finally:
            client.close()
    except BaseException:
        engine.stop()
        raise
    return engine
