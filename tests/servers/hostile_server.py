"""A stdio MCP server that misbehaves on purpose (mcp SDK low-level Server, under trio).

    python tests/servers/hostile_server.py --mode MODE [--mode MODE ...] [--pidfile PATH]
        [--flood-mb N] [--hold-while-exists PATH]

Modes (they combine; `--mode ignore-eof --mode ignore-sigterm` needs SIGKILL):

- ignore-sigterm: SIGTERM is ignored (SIG_IGN).
- ignore-eof:     after stdin EOF the process keeps running (sleeps forever).
- double-fork:    a daemon grandchild (fork, setsid, fork) sleeps forever; its pid goes to --pidfile.
- setsid-child:   a child calls setsid() and sleeps forever; its pid goes to --pidfile.
- group-child:    a child stays in our process group and sleeps forever (with ignore-sigterm it
                  ignores SIGTERM too); its pid goes to --pidfile.
- stderr-flood:   writes --flood-mb MiB of lines to stderr before serving, then serves normally.
- garbage-stdout: writes non-JSON lines and an invalid JSON-RPC message to stdout before
                  initialize and before every answer of `echo`.
- huge-message:   tool `huge` answers with a 20 MB text (argument `mb` changes the size).
- endless-line:   tool `endless` writes bytes to stdout without a newline, forever (even after
                  the call is cancelled), and never answers.
- crash-on-call:  tool `crash` ends the process with os._exit(3).
- never-init:     reads stdin but never answers initialize (exits on stdin EOF unless ignore-eof).

`--hold-while-exists PATH` delays serving while PATH exists (a test holds a restart in `starting`).
Every mode also serves `echo`, like echo_server.py, and `sleep`, which first writes
`hostile_server: sleep TOKEN started` to stderr so a test knows the call reached the upstream.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final

import mcp.types as types
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

MODES: Final = (
    "ignore-sigterm",
    "ignore-eof",
    "double-fork",
    "setsid-child",
    "group-child",
    "stderr-flood",
    "garbage-stdout",
    "huge-message",
    "endless-line",
    "crash-on-call",
    "never-init",
)
MIB: Final = 1024 * 1024
PIDFILE_WAIT_S: Final = 10.0
ENDLESS_CHUNK: Final = b"x" * MIB
# 50 MiB/s passes the proxy's 32 MiB line cap in under a second without eating a whole core.
ENDLESS_PAUSE_S: Final = 0.02
GARBAGE: Final = (
    b"this is not JSON at all\n",
    b'{"jsonrpc": "2.0", "method": 42, "params": "not an object"}\n',
    b'{"hello": "a JSON object that is no JSON-RPC message"}\n',
    b"\x00\x01\xff binary noise\n",
    b"\n",
)

ECHO = types.Tool(
    name="echo",
    description="Echo a message back unchanged.",
    input_schema={
        "type": "object",
        "properties": {"message": {"type": "string", "description": "The text to send back."}},
        "required": ["message"],
    },
    annotations=types.ToolAnnotations(read_only_hint=True),
)
SLEEP = types.Tool(
    name="sleep",
    description="Announce `token` on stderr, wait `seconds`, then answer 'slept'.",
    input_schema={
        "type": "object",
        "properties": {"seconds": {"type": "number"}, "token": {"type": "string"}},
        "required": ["seconds"],
    },
    annotations=types.ToolAnnotations(read_only_hint=True),
)
MODE_TOOLS: Final = {
    "huge-message": types.Tool(
        name="huge",
        description="Answer with a very large text (20 MB unless `mb` says otherwise).",
        input_schema={"type": "object", "properties": {"mb": {"type": "number"}}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    "endless-line": types.Tool(
        name="endless",
        description="Write to stdout forever without a newline; never answer.",
        input_schema={"type": "object", "properties": {}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    "crash-on-call": types.Tool(
        name="crash",
        description="Exit the server process at once with code 3.",
        input_schema={"type": "object", "properties": {}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
}


def text(value: str) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=value)]


def write_pidfile(path: Path, pid: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def detach_stdio() -> None:
    """What a daemon does: stdin, stdout and stderr to /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def sleep_forever() -> None:
    while True:
        signal.pause()


def wait_for_pidfile(path: Path) -> None:
    deadline = time.monotonic() + PIDFILE_WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"hostile_server: {path} was not written in {PIDFILE_WAIT_S}s")
        time.sleep(0.01)


def double_fork(pidfile: Path) -> None:
    """A classic daemon: fork, setsid, fork; the intermediate exits so the grandchild is orphaned."""
    intermediate = os.fork()
    if intermediate == 0:
        os.setsid()
        if os.fork() == 0:
            detach_stdio()
            write_pidfile(pidfile, os.getpid())
            sleep_forever()
        os._exit(0)
    os.waitpid(intermediate, 0)
    wait_for_pidfile(pidfile)


def setsid_child(pidfile: Path) -> None:
    """A child that leaves our session and process group (so killpg on our group misses it)."""
    if os.fork() == 0:
        os.setsid()
        detach_stdio()
        write_pidfile(pidfile, os.getpid())
        sleep_forever()
    wait_for_pidfile(pidfile)


def group_child(pidfile: Path) -> None:
    """A helper child that stays in our process group: PDEATHSIG is not inherited, so it outlives us."""
    if os.fork() == 0:
        detach_stdio()
        write_pidfile(pidfile, os.getpid())
        sleep_forever()
    wait_for_pidfile(pidfile)


def flood_stderr(megabytes: float) -> None:
    line = b"flood " + b"e" * 1017 + b"\n"  # 1 KiB per line
    for i in range(int(megabytes * 1024)):
        os.write(2, line if i % 1024 else b"flood line %08d " % i + line[15:])
    print("hostile_server: stderr flood done", file=sys.stderr, flush=True)


def never_init(modes: set[str]) -> None:
    """Read (and drop) whatever arrives; never answer."""
    while os.read(0, 65536):
        pass
    if "ignore-eof" in modes:
        sleep_forever()


class Hostile:
    def __init__(self, modes: set[str]) -> None:
        self.modes = modes
        # stdio_server() points fd 1 at stderr while it serves; this is the real wire.
        self.stdout_fd = os.dup(1)

    def garbage(self) -> None:
        if "garbage-stdout" in self.modes:
            for line in GARBAGE:
                os.write(self.stdout_fd, line)

    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[ECHO, SLEEP, *(t for m, t in MODE_TOOLS.items() if m in self.modes)]
        )

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        args = params.arguments or {}
        match params.name:
            case "echo":
                self.garbage()
                return types.CallToolResult(content=text(str(args.get("message", ""))))
            case "sleep":
                print(f"hostile_server: sleep {args.get('token', '')} started", file=sys.stderr, flush=True)
                await trio.sleep(float(args.get("seconds", 0)))
                return types.CallToolResult(content=text("slept"))
            case "huge" if "huge-message" in self.modes:
                size = int(float(args.get("mb", 20)) * 1000 * 1000)
                return types.CallToolResult(content=text("h" * size))
            case "endless" if "endless-line" in self.modes:
                # A thread that outlives the call: cancelling the request does not stop the bytes.
                await trio.to_thread.run_sync(self._write_forever, abandon_on_cancel=True)
            case "crash" if "crash-on-call" in self.modes:
                os._exit(3)
        return types.CallToolResult(content=text(f"unknown tool {params.name}"), is_error=True)

    def _write_forever(self) -> None:
        while True:
            os.write(self.stdout_fd, ENDLESS_CHUNK)
            time.sleep(ENDLESS_PAUSE_S)

    async def serve(self, hold_while_exists: Path | None) -> None:
        while hold_while_exists is not None and hold_while_exists.exists():
            await trio.sleep(0.05)
        server = Server(
            "hostile", version="1.0.0", on_list_tools=self.list_tools, on_call_tool=self.call_tool
        )
        self.garbage()
        print(f"hostile_server ready: {sorted(self.modes)}", file=sys.stderr, flush=True)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
            if "ignore-eof" in self.modes:
                await trio.sleep_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", action="append", choices=MODES, default=[])
    parser.add_argument("--pidfile", type=Path, default=None)
    parser.add_argument("--flood-mb", type=float, default=20.0)
    parser.add_argument("--hold-while-exists", type=Path, default=None)
    args = parser.parse_args()
    modes = set(args.mode)
    if len(modes & {"double-fork", "setsid-child", "group-child"}) > 1:
        parser.error("double-fork, setsid-child and group-child each need their own --pidfile")
    if modes & {"double-fork", "setsid-child", "group-child"} and args.pidfile is None:
        parser.error("double-fork, setsid-child and group-child need --pidfile")
    if "ignore-sigterm" in modes:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "double-fork" in modes:
        double_fork(args.pidfile)
    if "setsid-child" in modes:
        setsid_child(args.pidfile)
    if "group-child" in modes:
        group_child(args.pidfile)
    if "stderr-flood" in modes:
        flood_stderr(args.flood_mb)
    if "never-init" in modes:
        never_init(modes)
        return
    trio.run(Hostile(modes).serve, args.hold_while_exists)


if __name__ == "__main__":
    main()
