"""Workers forked from the zygote share its pages: what a worker dirties after the fork stays small."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from tests.proxyctl import descendants, echo_server, running_proxy

pytestmark = pytest.mark.system

PRIVATE_LIMIT_KB: Final = 16 * 1024
"""A zygote-forked echo worker dirties ~9.5 MiB; one that imports or initialises `keyring` itself ~20."""


def rollup(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return fields


async def test_a_worker_keeps_most_of_its_memory_shared_with_the_zygote(tmp_path: Path) -> None:
    async with running_proxy(tmp_path, [echo_server("one"), echo_server("two")]) as proxy:
        for name in ("one", "two"):
            await proxy.wait_for(name, "running")
        async with proxy.mcp("/mcp/all") as session:
            for name in ("one", "two"):
                for _ in range(20):
                    await session.call_tool(f"{name}__echo", {"message": "x"})
        workers = [
            pid
            for pid in descendants(proxy.process.pid)
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"python -m services.worker --server")
        ]
        assert len(workers) == 2, "both workers come from the zygote (their title is set there)"
        for pid in workers:
            memory = rollup(pid)
            shared = memory["Shared_Clean"] + memory["Shared_Dirty"]
            assert memory["Private_Dirty"] < PRIVATE_LIMIT_KB, memory
            assert shared > memory["Private_Dirty"], memory
