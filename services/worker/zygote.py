"""The worker zygote: imports everything a worker needs once, then forks workers on request.

Why: a Python process that imports the MCP SDK costs ~1 s and ~58 MB of
private memory. Forked from this pre-imported parent, a worker starts at once
and shares those pages copy-on-write. What a worker would otherwise do first
thing after the fork is done here instead: the secrets store's keyring
detection (~12 MB of private memory per worker: `keyring` imports
dozens of modules and scans every installed distribution's entry points) and
one in-memory MCP exchange. `gc.freeze()` then moves every object into the
permanent generation, and workers leave them there, so no collection in a
worker ever touches (and so copies) the pages they live on.

Protocol, over the socket on fd 0 (a socketpair from the supervisor): one JSON
line per request, `{"server", "generation", "control", "log_level"}`; one JSON
line per answer, `{"pid": N}` or `{"error": "..."}`.

Each worker is double-forked so that it is re-parented to the supervisor (a
child subreaper): the supervisor then waits for it and reaps it like any child
of its own. The worker sets its parent-death signal only once its parent is
the supervisor, so it stops with the supervisor, not with the zygote.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any, Final

import setproctitle
import trio

from bus.transport import terminate_context
from services import process
from services.secrets import keyring_works
from services.worker.entry import run_worker
from services.worker.log_format import configure_worker_logging

REPARENT_TIMEOUT_S: Final = 2.0
REPARENT_POLL_S: Final = 0.001


def _become_worker(request: dict[str, Any], supervisor_pid: int, channel: socket.socket) -> None:
    """In the grandchild: detach, wait to belong to the supervisor, then run the worker. Never returns."""
    code = 1
    try:
        channel.close()
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        deadline = time.monotonic() + REPARENT_TIMEOUT_S
        while os.getppid() != supervisor_pid and time.monotonic() < deadline:
            time.sleep(REPARENT_POLL_S)
        process.set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != supervisor_pid:
            os._exit(1)  # the supervisor is gone already
        # In `ps`, a worker reads as what it is, not as the zygote it was forked from.
        setproctitle.setproctitle(
            f"python -m services.worker --server {request['server']} --generation {request['generation']}"
        )
        configure_worker_logging(request["server"], request["log_level"])
        code = trio.run(run_worker, request["server"], int(request["generation"]), request["control"], None)
        terminate_context()  # os._exit() below would otherwise drop the worker's last message
    except BaseException:  # the process is ours alone: report and leave
        logging.getLogger(__name__).exception("worker crashed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _spawn(request: dict[str, Any], supervisor_pid: int, channel: socket.socket) -> int:
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        worker = os.fork()
        if worker == 0:
            os.close(write_end)
            _become_worker(request, supervisor_pid, channel)
        os.write(write_end, str(worker).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        pid = int(pipe.read() or b"0")
    os.waitpid(middle, 0)  # once the middle is gone, the worker belongs to the supervisor
    return pid


async def _warm_up() -> None:
    """One in-memory MCP exchange, so validators the SDK builds on first use are built here, shared."""
    import anyio
    import mcp.types as types
    from mcp.client.session import ClientSession
    from mcp.server.lowlevel import Server

    from services.worker.upstream import CLIENT_INFO, tool_info

    tool = types.Tool(name="echo", description="warm-up", input_schema={"type": "object"})

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx: Any, params: Any) -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text="ok")], structured_content={}
        )

    server = Server("warm-up", on_list_tools=list_tools, on_call_tool=call_tool)
    to_server_send, to_server = anyio.create_memory_object_stream[Any](8)
    to_client_send, to_client = anyio.create_memory_object_stream[Any](8)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run, to_server, to_client_send, server.create_initialization_options())
        async with ClientSession(to_client, to_server_send, client_info=CLIENT_INFO) as session:
            await session.initialize()
            for listed in (await session.list_tools()).tools:
                tool_info(listed)
            result = await session.call_tool("echo", {})
            result.model_dump_json(by_alias=True, exclude_unset=True)
            await session.send_ping()
        nursery.cancel_scope.cancel()


def serve(channel: socket.socket, supervisor_pid: int) -> None:
    reader = channel.makefile("rb")
    for line in reader:
        try:
            request = json.loads(line)
            answer: dict[str, Any] = {"pid": _spawn(request, supervisor_pid, channel)}
        except (OSError, ValueError, KeyError) as exc:
            answer = {"error": str(exc)}
        channel.sendall(json.dumps(answer).encode() + b"\n")


def main() -> None:
    process.set_parent_death_signal(signal.SIGKILL)
    supervisor_pid = os.getppid()
    channel = socket.socket(fileno=os.dup(0))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setproctitle.setproctitle("python -m services.worker.zygote")
    try:
        keyring_works()  # detection is cached process-wide: workers inherit its result
        trio.run(_warm_up)
    except Exception:  # a cold zygote still works; its workers just share less
        logging.getLogger(__name__).exception("zygote warm-up failed")
    gc.collect()
    gc.freeze()
    serve(channel, supervisor_pid)


if __name__ == "__main__":
    main()
