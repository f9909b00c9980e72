"""Resource caps per upstream (issue 23 item 2) and the upstream environment (item 4), on a real proxy.

A leaking upstream dies alone at its memory cap while a bystander keeps answering; a fork bomb
stops at its pids cap; the cgroups are the upstream's alone (never its worker's) and none is left
once the proxy stops, after a worker was SIGKILLed, or after a crashed run. These tests need a
cgroup hierarchy they may write (group `cgroups`: v1 as root on these machines); they skip only
where the kernel gives none, and say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Final

import certifi
import pytest
import trio

from services import cgroups
from services.limits import machine_support
from services.limits_config import cgroup_group
from tests.proxyctl import POLL_S, PYTHON, SERVERS, START_TIMEOUT_S, Proxy, echo_server, running_proxy
from tests.system.test_supervision import FAST_STOP, call, echo_ok, text_of, wait_until

pytestmark = [pytest.mark.system, pytest.mark.requires("cgroups")]

MIB: Final = 1024 * 1024
LEAK_CAP: Final = "96m"
PIDS_CAP: Final = 16
OOM_ERROR: Final = f"memory limit {LEAK_CAP} exceeded (oom)"


def greedy(name: str, **extra: Any) -> dict[str, Any]:
    """A config entry for tests/servers/greedy_server.py."""
    return {"name": name, "command": PYTHON, "args": [str(SERVERS / "greedy_server.py")], **extra}


@pytest.fixture
def hierarchies() -> dict[str, cgroups.Hierarchy]:
    """The memory and pids hierarchies, proven writable (a sync fixture, so a skip keeps its reason)."""
    support = machine_support()
    missing = {
        name: how for name, how in support.items() if name in ("memory", "pids") and "cgroup" not in how
    }
    if missing:
        pytest.skip(f"the kernel gives no writable cgroup hierarchy here: {missing}")
    return cgroups.hierarchies()


def upstream_cgroup(found: dict[str, cgroups.Hierarchy], controller: str, proxy: Proxy, name: str) -> Path:
    """The cgroup of server `name`'s only generation with a cgroup in `controller`'s hierarchy."""
    matches = cgroups.leftovers(cgroup_group(proxy.data_dir), f"{name}@", {controller: found[controller]})
    assert len(matches) == 1, f"expected one cgroup of {name}, found {matches}"
    return matches[0]


def instance_cgroups(found: dict[str, cgroups.Hierarchy], data_dir: Path) -> list[Path]:
    """Every directory of this proxy instance in every hierarchy, the instance's own ones included."""
    group = cgroup_group(data_dir)
    return [h.base / group for h in found.values() if (h.base / group).exists()]


async def test_a_leaking_upstream_dies_alone_at_its_memory_cap_while_a_bystander_keeps_answering(
    tmp_path: Path, hierarchies: dict[str, cgroups.Hierarchy]
) -> None:
    servers = [greedy("leaky", limits={"memory": LEAK_CAP}), echo_server("bystander")]
    async with running_proxy(tmp_path, servers, limits={"pids": 256}, **FAST_STOP) as proxy:
        leaky = await proxy.wait_for("leaky", "running")
        bystander = await proxy.wait_for("bystander", "running")
        memory = upstream_cgroup(hierarchies, "memory", proxy, "leaky")
        assert int((memory / "memory.limit_in_bytes").read_text()) == 96 * MIB
        # The upstream is in it and its worker is not: the cap is the upstream's alone.
        assert leaky["upstream_pid"] in cgroups.members(memory)
        assert leaky["worker_pid"] not in cgroups.members(memory)
        # The global limit reaches every stdio server that does not set its own.
        pids = upstream_cgroup(hierarchies, "pids", proxy, "bystander")
        assert bystander["upstream_pid"] in cgroups.members(pids)
        assert (pids / "pids.max").read_text().strip() == "256"

        async with proxy.mcp() as session:
            answers: list[str] = []
            async with trio.open_nursery() as nursery:

                async def keep_asking() -> None:
                    while True:
                        await echo_ok(session, "bystander", f"still here {len(answers)}")
                        answers.append("ok")
                        await trio.sleep(POLL_S)

                nursery.start_soon(keep_asking)
                result = await call(session, "leaky:leak", chunk_mb=4)
                nursery.cancel_scope.cancel()
            assert result.is_error, text_of(result)
            assert "was not stopped" not in text_of(result)
            await echo_ok(session, "bystander", "after the leak")
            assert answers, "the bystander never answered while the leak ran"

        failed = await wait_until(
            proxy, "leaky", lambda s: (s.get("last_error") or "").startswith(OOM_ERROR), "an OOM last_error"
        )
        assert failed["state"] in ("exited", "backoff", "starting"), failed
        log = (proxy.data_dir / "logs" / "server-leaky.log").read_text(errors="replace")
        assert OOM_ERROR in log
        # The restart policy applies: it comes back, in a cgroup of its new generation.
        again = await wait_until(
            proxy, "leaky", lambda s: s["state"] == "running" and s["restarts"] >= 1, "a restart"
        )
        assert again["upstream_pid"] in cgroups.members(
            upstream_cgroup(hierarchies, "memory", proxy, "leaky")
        )
        after = (await proxy.servers())["bystander"]
        assert (after["upstream_pid"], after["restarts"]) == (bystander["upstream_pid"], 0)
    assert instance_cgroups(hierarchies, proxy.data_dir) == []


async def test_a_fork_bomb_stops_at_its_pids_cap_and_leaves_nothing(
    tmp_path: Path, hierarchies: dict[str, cgroups.Hierarchy]
) -> None:
    servers = [greedy("bomb", limits={"pids": PIDS_CAP}), echo_server("bystander")]
    async with running_proxy(tmp_path, servers, **FAST_STOP) as proxy:
        await proxy.wait_for("bomb", "running")
        await proxy.wait_for("bystander", "running")
        pids = upstream_cgroup(hierarchies, "pids", proxy, "bomb")
        async with proxy.mcp() as session:
            result = await call(session, "bomb:fork", count=200)
            assert not result.is_error, text_of(result)
            forked = json.loads(text_of(result))
            proxy.remember_pids()  # the children too: the teardown checks that none outlives the proxy
            assert forked["refused"] == "EAGAIN", forked
            assert 0 < forked["started"] < PIDS_CAP, forked
            assert int((pids / "pids.current").read_text()) <= PIDS_CAP
            assert set(forked["pids"]) <= set(cgroups.members(pids))
            await echo_ok(session, "bystander", "unbothered")
            # The bomb's server still answers: the cap refused forks, it killed nothing.
            assert text_of(await call(session, "bomb:echo", message="alive")) == "alive"
        children = set(forked["pids"])
    assert instance_cgroups(hierarchies, proxy.data_dir) == []
    assert not {pid for pid in children if Path(f"/proc/{pid}").exists()}


async def test_a_sigkilled_workers_cgroup_is_removed_by_the_supervisor(
    tmp_path: Path, hierarchies: dict[str, cgroups.Hierarchy]
) -> None:
    async with running_proxy(tmp_path, [greedy("capped", limits={"pids": 64})], **FAST_STOP) as proxy:
        first = await proxy.wait_for("capped", "running")
        old = upstream_cgroup(hierarchies, "pids", proxy, "capped")
        os.kill(first["worker_pid"], signal.SIGKILL)
        second = await wait_until(
            proxy,
            "capped",
            lambda s: s["state"] == "running" and s.get("worker_pid") != first["worker_pid"],
            "a new generation",
        )
        assert not old.exists()
        new = upstream_cgroup(hierarchies, "pids", proxy, "capped")
        assert new != old and second["upstream_pid"] in cgroups.members(new)
    assert instance_cgroups(hierarchies, proxy.data_dir) == []


async def test_a_crashed_runs_cgroups_are_emptied_and_removed_at_the_next_start(
    tmp_path: Path, hierarchies: dict[str, cgroups.Hierarchy]
) -> None:
    data_dir = tmp_path / "data"
    stale = cgroups.make_cgroup(hierarchies["pids"], f"{cgroup_group(data_dir)}/ghost@1")
    procs = os.open(stale / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    try:
        leftover = subprocess.Popen(
            ["sleep", "600"],
            preexec_fn=lambda: os.write(procs, str(os.getpid()).encode()),
            start_new_session=True,
        )
    finally:
        os.close(procs)
    try:
        assert leftover.pid in cgroups.members(stale)
        async with running_proxy(tmp_path, [echo_server("plain")], **FAST_STOP) as proxy:
            await proxy.wait_for("plain", "running")
            with trio.fail_after(START_TIMEOUT_S):
                while leftover.poll() is None:
                    await trio.sleep(POLL_S)
            assert leftover.returncode == -signal.SIGKILL
            assert not stale.exists()
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
        await cgroups.release([stale])


async def test_the_global_env_and_the_corporate_network_variables_reach_a_stdio_upstream(
    tmp_path: Path,
) -> None:
    report = "HTTPS_PROXY,no_proxy,NODE_EXTRA_CA_CERTS,SSL_CERT_FILE,GLOBAL_ONLY,OWN,TOKEN,NOT_PASSED"
    servers = [echo_server("corp", env={"OWN": "mine"}, allow_secret_echo=True)]
    proxy_env = {
        "HTTPS_PROXY": "http://proxy.corp:3128",
        "no_proxy": "localhost,.corp",
        "NODE_EXTRA_CA_CERTS": "/etc/corp/ca.pem",
        "SSL_CERT_FILE": certifi.where(),  # the proxy's own HTTP clients read it too: a real bundle
        "CORP_TOKEN": "corp-token-value-0123456789",
        "NOT_PASSED": "secret of the proxy's own",
    }
    global_env = {
        "ECHO_SERVER_REPORT_ENV": report,
        "GLOBAL_ONLY": "from the global block",
        "OWN": "overridden by the server's own",
        "TOKEN": "${env:CORP_TOKEN}",
    }
    async with running_proxy(tmp_path, servers, env=proxy_env) as proxy:
        first = await proxy.wait_for("corp", "running")
        # A hand edit that adds the global block restarts the stdio server it changes.
        config = json.loads(proxy.config_path.read_text())
        draft = proxy.config_path.with_suffix(".new")
        draft.write_text(json.dumps({**config, "env": global_env}))
        draft.replace(proxy.config_path)
        await wait_until(
            proxy,
            "corp",
            lambda s: s["state"] == "running" and s.get("upstream_pid") not in (None, first["upstream_pid"]),
            "a restart with the global env",
        )
        async with proxy.mcp() as session:
            seen = json.loads(text_of(await call(session, "corp:whoami")))["env"]
    assert seen == {
        "HTTPS_PROXY": "http://proxy.corp:3128",
        "no_proxy": "localhost,.corp",
        "NODE_EXTRA_CA_CERTS": "/etc/corp/ca.pem",
        "SSL_CERT_FILE": certifi.where(),
        "GLOBAL_ONLY": "from the global block",
        "OWN": "mine",
        "TOKEN": "corp-token-value-0123456789",
        "NOT_PASSED": None,
    }
