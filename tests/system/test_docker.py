"""Docker isolation against a real engine: tool calls into a container, limits, labels, cleanup, failures.

The engine is Debian's dockerd, started by the `engine` fixture as root with
its own data root, exec root and socket (tests/dockerctl.py),
or the one named by MCPPROXY_TEST_DOCKER_HOST. Our echo server runs in a
container built with `docker import` from host libraries, with the host's
Python bind-mounted read-only. Where no engine can run a container, these
tests are SKIPPED with the reason; MCPPROXY_REQUIRE=docker (CI) turns that
into a failure (tests/conftest.py).

Evidence the issue asks for (`docker inspect` fields, cleanup times) is
printed as `EVIDENCE ...` / `MEASURE ...` lines (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import docker
import mcp.types as types
import pytest
import trio

from services.isolation import LABEL_GENERATION, LABEL_INSTANCE, LABEL_MANAGED, LABEL_SERVER, instance_id
from tests.dockerctl import (
    RUNTIME_ARGS,
    TEST_IMAGE,
    EngineUnavailableError,
    TestEngine,
    start_engine,
)
from tests.proxyctl import POLL_S, SERVERS, Proxy, alive, descendants, echo_server, running_proxy

pytestmark = [pytest.mark.system, pytest.mark.requires("docker")]

SECRET_ENV: Final = "MCPPROXY_DOCKER_TEST_SECRET"
SECRET: Final = "s3cret-value-7f3a9c"
MIB: Final = 1024 * 1024
STEP_TIMEOUT_S: Final = 60.0
GONE_TIMEOUT_S: Final = 30.0
FAST_RESTART: Final = {"initial_backoff": 0.5, "max_backoff": 2.0, "max_failures": 20}
FAST_STOP: Final = {"close_timeout": 1, "kill_timeout": 1}
STOP_BUDGET_S: Final = FAST_STOP["close_timeout"] + FAST_STOP["kill_timeout"]


@pytest.fixture(scope="module")
def engine() -> Iterator[TestEngine]:
    try:
        started = start_engine()
    except EngineUnavailableError as exc:
        pytest.skip(f"no Docker engine can run containers here: {exc}")
    try:
        yield started
    finally:
        started.stop()


def docker_isolation(**overrides: Any) -> dict[str, Any]:
    """Global settings: every stdio server isolated, in TEST_IMAGE (chosen by the `python` command)."""
    return {
        "enabled": True,
        "memory_limit": "256m",
        "cpu_limit": 0.5,
        "network_mode": "none",
        "default_images": {"python": TEST_IMAGE},
        "extra_args": RUNTIME_ARGS,
        "timeout": "30s",
        **overrides,
    }


def local_echo(name: str = "local") -> dict[str, Any]:
    """A stdio server that opts out of isolation: it runs as our child, as before."""
    return echo_server(name, isolation={"enabled": False})


def proxy_env(engine: TestEngine | None, host: str | None = None) -> dict[str, str]:
    return {"DOCKER_HOST": host or (engine.host if engine else ""), SECRET_ENV: SECRET}


def ours(client: docker.DockerClient, data_dir: Path, server: str | None = None) -> list[dict[str, Any]]:
    """Every container (running or not) of the proxy instance of `data_dir`, as `docker inspect` has it."""
    labels = [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={instance_id(data_dir)}"]
    if server is not None:
        labels.append(f"{LABEL_SERVER}={server}")
    listed = client.api.containers(all=True, filters={"label": labels})
    found = []
    for item in listed:
        try:
            found.append(client.api.inspect_container(item["Id"]))
        except docker.errors.NotFound:
            continue
    return found


async def wait_gone(client: docker.DockerClient, container_ids: set[str], timeout_s: float) -> float:
    """Seconds until none of `container_ids` exists any more."""
    start = time.monotonic()
    with trio.fail_after(timeout_s):
        while True:
            existing = {c["Id"] for c in client.api.containers(all=True)}
            if not existing & container_ids:
                return time.monotonic() - start
            await trio.sleep(POLL_S)


async def wait_error(proxy: Proxy, name: str, text: str, timeout_s: float = STEP_TIMEOUT_S) -> dict[str, Any]:
    last: dict[str, Any] = {}
    with trio.move_on_after(timeout_s):
        while True:
            last = (await proxy.servers()).get(name, {})
            if text in (last.get("last_error") or ""):
                return last
            await trio.sleep(POLL_S)
    raise AssertionError(f"server {name}: no last_error with {text!r} in {timeout_s:g}s; last: {last}")


async def crash_until_reported(proxy: Proxy, name: str, text: str, attempts: int = 3) -> dict[str, Any]:
    """Call `crash` until `last_error` says `text`. A worker's WorkerFailed can be lost when the worker
    exits right after sending it (its control socket closes with linger 0): then try again."""
    for attempt in range(1, attempts + 1):
        async with proxy.mcp() as session:
            await session.call_tool("call_tool_read", {"name": f"{name}:crash", "args": {}})
        with trio.fail_after(STEP_TIMEOUT_S):
            while True:
                last = (await proxy.servers())[name]
                if text in (last.get("last_error") or ""):
                    await proxy.wait_for(name, "running", restarts=attempt)
                    return last
                if last["state"] == "running" and last["restarts"] == attempt:
                    break  # restarted without our text: the report was lost
                await trio.sleep(POLL_S)
    raise AssertionError(f"server {name}: {text!r} never reached last_error in {attempts} crashes")


async def settle_failed(proxy: Proxy, name: str) -> None:
    """Park a failing server (disable it while it waits in backoff), so the proxy's stop is not held by
    a worker that is still starting (it would wait for its StartUpstream up to its hello timeout)."""
    with trio.fail_after(STEP_TIMEOUT_S):
        while (await proxy.servers())[name]["state"] != "backoff":
            await trio.sleep(POLL_S)
    response = await proxy.post(f"/api/v1/servers/{name}/disable")
    assert response.status_code == 200, response.text
    await proxy.wait_for(name, "stopped")


async def wait_processes_gone(pids: set[int], timeout_s: float = GONE_TIMEOUT_S) -> None:
    with trio.fail_after(timeout_s):
        while alive(pids):
            await trio.sleep(POLL_S)


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def call(proxy: Proxy, tool: str, args: dict[str, Any]) -> str:
    async with proxy.mcp() as session:
        result = await session.call_tool("call_tool_read", {"name": tool, "args": args})
    assert not result.is_error, text_of(result)
    return text_of(result)


def evidence(label: str, value: Any) -> None:
    print(f"\nEVIDENCE {label}: {json.dumps(value, sort_keys=True)}", flush=True)


def measure(label: str, value: str) -> None:
    print(f"\nMEASURE {label}: {value}", flush=True)


def inspect_view(info: dict[str, Any]) -> dict[str, Any]:
    host = info["HostConfig"]
    return {
        "Name": info["Name"],
        "Image": info["Config"]["Image"],
        "Cmd": info["Config"]["Cmd"],
        "HostConfig.Memory": host["Memory"],
        "HostConfig.NanoCpus": host["NanoCpus"],
        "HostConfig.NetworkMode": host["NetworkMode"],
        "HostConfig.Init": host.get("Init"),
        "HostConfig.ReadonlyRootfs": host.get("ReadonlyRootfs"),
        "Config.Labels": info["Config"]["Labels"],
        "Config.OpenStdin": info["Config"]["OpenStdin"],
        "Config.StdinOnce": info["Config"]["StdinOnce"],
        "Config.Env (names)": sorted(e.partition("=")[0] for e in info["Config"]["Env"] or []),
        "State.Status": info["State"]["Status"],
    }


async def test_a_tool_runs_in_a_container_with_its_limits_network_labels_and_secrets(
    engine: TestEngine, tmp_path: Path
) -> None:
    boxed = echo_server(
        "boxed",
        env={"SECRET_TOKEN": f"${{env:{SECRET_ENV}}}", "ECHO_SERVER_REPORT_ENV": "SECRET_TOKEN"},
        allow_secret_echo=True,  # whoami shows the value that reached the container (else: ••••)
    )
    tuned = echo_server(
        "tuned",
        isolation={
            "image": TEST_IMAGE,
            "memory_limit": "128m",
            "cpu_limit": "0.25",
            "network_mode": "bridge",
            "extra_args": ["--read-only", "--tmpfs", "/tmp"],
        },
    )
    client = engine.client()
    async with running_proxy(
        tmp_path, [boxed, tuned, local_echo()], env=proxy_env(engine), docker_isolation=docker_isolation()
    ) as proxy:
        for name in ("boxed", "tuned", "local"):
            await proxy.wait_for(name, "running")
        servers = await proxy.servers()
        assert servers["local"]["upstream_pid"] is not None  # not isolated: our own child, as before
        assert servers["boxed"]["upstream_pid"] is None

        assert await call(proxy, "boxed:echo", {"message": "hello from a container"}) == (
            "hello from a container"
        )
        report = json.loads(await call(proxy, "boxed:whoami", {}))
        assert report["env"] == {"SECRET_TOKEN": SECRET}  # the resolved secret reached the container
        assert await call(proxy, "tuned:add", {"a": 2, "b": 3}) == "5"
        assert await call(proxy, "local:echo", {"message": "still here"}) == "still here"

        [box] = ours(client, proxy.data_dir, "boxed")
        [tune] = ours(client, proxy.data_dir, "tuned")
        evidence("docker inspect boxed", inspect_view(box))
        evidence("docker inspect tuned", inspect_view(tune))
        instance = instance_id(proxy.data_dir)

        assert box["HostConfig"]["Memory"] == 256 * MIB
        assert box["HostConfig"]["NanoCpus"] == 500_000_000
        assert box["HostConfig"]["NetworkMode"] == "none"
        assert box["Config"]["Image"] == TEST_IMAGE  # from default_images["python"]
        labels = box["Config"]["Labels"]
        assert labels[LABEL_MANAGED] == "true"
        assert labels[LABEL_SERVER] == "boxed"
        assert labels[LABEL_INSTANCE] == instance
        assert labels[LABEL_GENERATION] == "1"
        assert f"SECRET_TOKEN={SECRET}" in box["Config"]["Env"]
        assert SECRET not in json.dumps([box["Path"], box["Args"], box["Config"]["Cmd"]])
        assert box["Config"]["OpenStdin"] and box["Config"]["StdinOnce"]

        # Per-server values win over the global ones; extra_args add to the global extra_args.
        assert tune["HostConfig"]["Memory"] == 128 * MIB
        assert tune["HostConfig"]["NanoCpus"] == 250_000_000
        assert tune["HostConfig"]["NetworkMode"] == "bridge"
        assert tune["HostConfig"]["ReadonlyRootfs"] is True
        assert tune["Config"]["Labels"][LABEL_SERVER] == "tuned"

        status = (await proxy.get("/api/v1/docker/status")).json()["data"]
        evidence("GET /api/v1/docker/status", status)
        assert status["available"] is True
        assert status["version"] == client.version()["Version"]
        assert status["instance"] == instance
        assert {c["server"] for c in status["containers"]} == {"boxed", "tuned"}

        logs = (await proxy.get("/api/v1/servers/boxed/logs")).json()["data"]["lines"]
        assert "echo_server ready" in logs  # the container's stderr, in the server's log
        assert any("started container" in line for line in logs)
        started = time.monotonic()
    assert ours(client, proxy.data_dir) == []  # a polite stop removes every container
    measure("stop with 2 containers", f"{time.monotonic() - started:.2f}s")
    client.close()


async def test_a_sigkilled_worker_and_then_proxy_leave_no_container(
    engine: TestEngine, tmp_path: Path
) -> None:
    client = engine.client()
    async with running_proxy(
        tmp_path, [echo_server("boxed")], env=proxy_env(engine), docker_isolation=docker_isolation()
    ) as proxy:
        first = await proxy.wait_for("boxed", "running")
        [before] = ours(client, proxy.data_dir, "boxed")

        os.kill(first["worker_pid"], signal.SIGKILL)
        took = await wait_gone(client, {before["Id"]}, GONE_TIMEOUT_S)
        measure("container gone after its worker's SIGKILL", f"{took:.2f}s")

        await proxy.wait_for("boxed", "running", restarts=1)
        [after] = ours(client, proxy.data_dir, "boxed")
        assert after["Config"]["Labels"][LABEL_GENERATION] == "2"
        assert await call(proxy, "boxed:echo", {"message": "again"}) == "again"

        # SIGKILL of `mcpproxy serve`: the supervisor hears it (parent-death signal) and stops everything.
        proxy.remember_pids()
        proxy.process.send_signal(signal.SIGKILL)
        took = await wait_gone(client, {after["Id"]}, GONE_TIMEOUT_S)
        measure("container gone after the proxy's SIGKILL", f"{took:.2f}s")
        await wait_processes_gone(proxy.seen_pids)
    assert ours(client, proxy.data_dir) == []
    client.close()


async def test_containers_of_a_proxy_killed_all_at_once_are_swept_at_the_next_start(
    engine: TestEngine, tmp_path: Path
) -> None:
    client = engine.client()
    async with running_proxy(
        tmp_path, [echo_server("boxed")], env=proxy_env(engine), docker_isolation=docker_isolation()
    ) as proxy:
        await proxy.wait_for("boxed", "running")
        [left] = ours(client, proxy.data_dir, "boxed")
        # Everything at once: serve, supervisor, gateway and workers; nobody is left to stop anything.
        everyone = descendants(proxy.process.pid) | {proxy.process.pid}
        for pid in everyone:
            os.kill(pid, signal.SIGKILL)
        await wait_processes_gone(everyone)
    [still] = [c for c in ours(client, proxy.data_dir) if c["Id"] == left["Id"]]
    evidence("left behind", {"name": still["Name"], "state": still["State"]["Status"]})

    # The next start, with no isolated server at all: only the supervisor's start sweep can remove it.
    async with running_proxy(
        tmp_path, [local_echo()], env=proxy_env(engine), docker_isolation=docker_isolation()
    ) as proxy:
        took = await wait_gone(client, {left["Id"]}, GONE_TIMEOUT_S)
        measure("leftover container removed after the next start", f"{took:.2f}s")
        await proxy.wait_for("local", "running")
    assert ours(client, proxy.data_dir) == []
    client.close()


async def test_the_staged_stop_of_a_stubborn_container_ends_in_docker_stop_and_a_crash_is_reported(
    engine: TestEngine, tmp_path: Path
) -> None:
    hostile = str(SERVERS / "hostile_server.py")
    stubborn = echo_server("stubborn", args=[hostile, "--mode", "ignore-eof", "--mode", "ignore-sigterm"])
    crashy = echo_server("crashy", args=[hostile, "--mode", "crash-on-call"])
    client = engine.client()
    async with running_proxy(
        tmp_path,
        [stubborn, crashy],
        env=proxy_env(engine),
        docker_isolation=docker_isolation(),
        restart=FAST_RESTART,
        **FAST_STOP,
    ) as proxy:
        await proxy.wait_for("stubborn", "running")
        await proxy.wait_for("crashy", "running")
        crashed = await crash_until_reported(proxy, "crashy", "upstream exited with code 3")
        evidence("crashy last_error", crashed["last_error"])
        [box] = ours(client, proxy.data_dir, "stubborn")
        started = time.monotonic()
        proxy.stop()
        took = time.monotonic() - started
    measure("stop of a container ignoring stdin EOF and SIGTERM (close 1s, kill 1s)", f"{took:.2f}s")
    assert took < STOP_BUDGET_S + 10.0
    assert ours(client, proxy.data_dir) == []
    log = (proxy.data_dir / "logs" / "server-stubborn.log").read_text()
    assert "no exit 1s after stdin EOF: docker stop (SIGTERM, SIGKILL after 1s)" in log
    assert f"removed container {box['Id'][:12]}" in log
    client.close()


async def test_a_missing_image_fails_only_that_server(engine: TestEngine, tmp_path: Path) -> None:
    ghost = echo_server("ghost", isolation={"image": "mcpproxy-test-missing:latest"})
    async with running_proxy(
        tmp_path,
        [ghost, echo_server("boxed"), local_echo()],
        env=proxy_env(engine),
        docker_isolation=docker_isolation(),
        restart=FAST_RESTART,
    ) as proxy:
        failed = await wait_error(proxy, "ghost", "image not found: mcpproxy-test-missing:latest")
        evidence("ghost last_error", failed["last_error"])
        await settle_failed(proxy, "ghost")
        logs = (await proxy.get("/api/v1/servers/ghost/logs")).json()["data"]["lines"]
        assert any("image not found: mcpproxy-test-missing:latest" in line for line in logs)
        await proxy.wait_for("boxed", "running")
        await proxy.wait_for("local", "running")
        assert await call(proxy, "boxed:echo", {"message": "fine"}) == "fine"


async def test_without_an_engine_only_the_isolated_server_fails(tmp_path: Path) -> None:
    nowhere = f"unix://{tmp_path}/no-engine.sock"
    async with running_proxy(
        tmp_path,
        [echo_server("boxed"), local_echo()],
        env=proxy_env(None, host=nowhere),
        docker_isolation=docker_isolation(),
        restart=FAST_RESTART,
    ) as proxy:
        failed = await wait_error(proxy, "boxed", "docker unavailable: ")
        evidence("boxed last_error", failed["last_error"])
        await settle_failed(proxy, "boxed")
        await proxy.wait_for("local", "running")
        assert await call(proxy, "local:echo", {"message": "unaffected"}) == "unaffected"
        status = (await proxy.get("/api/v1/docker/status")).json()["data"]
        evidence("GET /api/v1/docker/status without an engine", status)
        assert status["available"] is False
        assert status["error"].startswith("docker unavailable: ")


@pytest.fixture
def killable_engine(engine: TestEngine) -> TestEngine:
    """Our own dockerd, which a test may kill. (A skip raised inside a trio test loses its reason in
    pytest-trio, so it is raised here, in a sync fixture.)"""
    if not engine.owned:
        pytest.skip("needs an engine this test may kill (not MCPPROXY_TEST_DOCKER_HOST)")
    return engine


@pytest.mark.usefixtures("killable_engine")
async def test_an_engine_dying_mid_run_fails_that_server_until_it_is_back(
    engine: TestEngine, tmp_path: Path
) -> None:
    async with running_proxy(
        tmp_path,
        [echo_server("boxed"), local_echo()],
        env=proxy_env(engine),
        docker_isolation=docker_isolation(),
        restart=FAST_RESTART,
    ) as proxy:
        await proxy.wait_for("boxed", "running")
        await proxy.wait_for("local", "running")
        try:
            engine.kill()
            failed = await wait_error(proxy, "boxed", "docker unavailable: ")
            evidence("boxed last_error after dockerd died", failed["last_error"])
            assert (await proxy.servers())["local"]["state"] == "running"
            assert await call(proxy, "local:echo", {"message": "unaffected"}) == "unaffected"
        finally:
            engine.start()
        back = await proxy.wait_for("boxed", "running", timeout_s=STEP_TIMEOUT_S)
        assert back["restarts"] >= 1
        assert await call(proxy, "boxed:echo", {"message": "back"}) == "back"
        client = engine.client()
        # Only the new generation's container is left; the dead engine's one was removed.
        assert [c["State"]["Status"] for c in ours(client, proxy.data_dir)] == ["running"]
    assert ours(client, proxy.data_dir) == []
    client.close()
