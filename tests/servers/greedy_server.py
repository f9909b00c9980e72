"""A stdio MCP server that takes resources until something stops it (mcp SDK low-level Server, trio).

    python tests/servers/greedy_server.py

Tools:
- echo:   answers its message, like echo_server.py.
- leak:   allocates `chunk_mb` MiB at a time, touching every page and keeping it, and answers
          only if it reached `max_mb` (default 1024) without being stopped: a memory cap should
          end it long before that.
- fork:   forks up to `count` children (at most MAX_CHILDREN), each of which waits for a signal,
          and answers `{"started": N, "refused": "EAGAIN" | null, "pids": [...]}`: a pids cap
          makes `fork` fail once the tree is full. Both bounds keep a test machine safe where no
          cap applies; the children die with this process's group, or with its cgroup.
- limits: answers this process's view: its soft RLIMIT_AS, RLIMIT_NOFILE, RLIMIT_NPROC and
          /proc/self/cgroup, as JSON.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

MIB: Final = 1024 * 1024
MAX_LEAK_MB: Final = 1024
MAX_CHILDREN: Final = 256
PAGE: Final = 4096

READ: Final = types.ToolAnnotations(read_only_hint=True)
"""Every tool says read-only, so tests call them all through `call_tool_read`."""

TOOLS: Final = [
    types.Tool(
        name="echo",
        description="Echo a message back unchanged.",
        input_schema={
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        },
        annotations=READ,
    ),
    types.Tool(
        name="leak",
        description="Allocate memory until stopped (bounded by max_mb).",
        input_schema={
            "type": "object",
            "properties": {"chunk_mb": {"type": "integer"}, "max_mb": {"type": "integer"}},
        },
        annotations=READ,
    ),
    types.Tool(
        name="fork",
        description="Fork children that wait for a signal, until fork fails (bounded by count).",
        input_schema={"type": "object", "properties": {"count": {"type": "integer"}}},
        annotations=READ,
    ),
    types.Tool(
        name="limits",
        description="This process's rlimits and cgroups.",
        input_schema={"type": "object"},
        annotations=READ,
    ),
]

_held: list[bytearray] = []


def leak(chunk_mb: int, max_mb: int) -> str:
    for _ in range(min(max_mb, MAX_LEAK_MB) // chunk_mb):
        block = bytearray(chunk_mb * MIB)
        for offset in range(0, len(block), PAGE):
            block[offset] = 1  # touch every page: only resident memory counts against a cap
        _held.append(block)
    return f"allocated {len(_held) * chunk_mb} MiB and was not stopped"


def fork_children(count: int) -> dict[str, Any]:
    pids: list[int] = []
    refused = None
    for _ in range(min(count, MAX_CHILDREN)):
        try:
            pid = os.fork()
        except OSError as exc:
            refused = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            break
        if pid == 0:
            try:
                while True:
                    signal.pause()
            finally:
                os._exit(0)
        pids.append(pid)
    return {"started": len(pids), "refused": refused, "pids": pids}


def limits() -> dict[str, Any]:
    return {
        "as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
        "cgroup": Path("/proc/self/cgroup").read_text(),
    }


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    match params.name:
        case "echo":
            answer = str(args.get("message", ""))
        case "leak":
            answer = leak(int(args.get("chunk_mb", 8)), int(args.get("max_mb", MAX_LEAK_MB)))
        case "fork":
            answer = json.dumps(fork_children(int(args.get("count", MAX_CHILDREN))))
        case "limits":
            answer = json.dumps(limits())
        case _:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=f"no tool {params.name}")], is_error=True
            )
    return types.CallToolResult(content=[types.TextContent(type="text", text=answer)])


async def main() -> None:
    server = Server("greedy", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    # Forked children inherit SIGTERM's default action and die with the group's staged stop.
    trio.run(main)
