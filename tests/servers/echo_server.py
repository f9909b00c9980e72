"""A small stdio MCP server of our own, written with the mcp SDK (low-level Server, under trio).

    python tests/servers/echo_server.py [--name NAME] [--startup-cpu SECONDS]

Tools: echo, add, sleep, fail, whoami, delete_everything (annotated destructive); with
ECHO_SERVER_LARGE=1 also `large`, which answers with a long text, JSON array or image (issue 22); with
ECHO_SERVER_GATE=PATH also `gate`, which answers once PATH exists (issue 23); with ECHO_SERVER_META=1
also `meta`, which answers with its request's `_meta` (traces, issue 23).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import mcp.types as types
import trio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

NUMBER = {"type": "number"}

TOOLS = [
    types.Tool(
        name="echo",
        description="Echo a message back unchanged.",
        input_schema={
            "type": "object",
            "properties": {"message": {"type": "string", "description": "The text to send back."}},
            "required": ["message"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="add",
        description="Add two numbers and return their sum.",
        input_schema={
            "type": "object",
            "properties": {
                "a": {**NUMBER, "description": "First addend."},
                "b": {**NUMBER, "description": "Second."},
            },
            "required": ["a", "b"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="sleep",
        description="Wait for a number of seconds, then answer 'slept'.",
        input_schema={"type": "object", "properties": {"seconds": NUMBER}, "required": ["seconds"]},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="fail",
        description="Return a tool error result carrying the given message.",
        input_schema={"type": "object", "properties": {"message": {"type": "string"}}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="whoami",
        description="Report this server's process id, working directory and selected environment variables.",
        input_schema={"type": "object", "properties": {}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="delete_everything",
        description="Pretend to delete everything (a destructive tool for tests).",
        input_schema={"type": "object", "properties": {}},
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
    ),
]


LARGE_TOOL = types.Tool(
    name="large",
    description="Answer with a long result: text, a JSON array of records, or an image beside a long text.",
    input_schema={
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["text", "json", "image"]},
            "size": {"type": "integer", "description": "Characters of text, or records of the array."},
            "env": {"type": "string", "description": "An environment variable whose value the text holds."},
        },
        "required": ["kind", "size"],
    },
    annotations=types.ToolAnnotations(read_only_hint=True),
)
PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


GATE_TOOL = types.Tool(
    name="gate",
    description="Wait until the file named in ECHO_SERVER_GATE exists (a minute at most); answer 'passed'.",
    input_schema={"type": "object", "properties": {}},
    annotations=types.ToolAnnotations(read_only_hint=True),
)
META_TOOL = types.Tool(
    name="meta",
    description="Answer with the `_meta` of this very request, as JSON (what the proxy passed on).",
    input_schema={"type": "object", "properties": {}},
    annotations=types.ToolAnnotations(read_only_hint=True),
)
GATE_POLL_S = 0.02
GATE_LIMIT_S = 60.0


async def wait_for_gate(path: str) -> types.CallToolResult:
    """Hold a call until the test opens the gate: how tests keep calls in flight for as long as they need."""
    print("gate entered", file=sys.stderr, flush=True)
    with trio.move_on_after(GATE_LIMIT_S):
        while not os.path.exists(path):
            await trio.sleep(GATE_POLL_S)
        return types.CallToolResult(content=text("passed"))
    return types.CallToolResult(content=text("the gate never opened"), is_error=True)


def long_text(size: int, planted: str = "") -> str:
    """`size` characters of numbered lines, with multi-byte characters and CRLFs, `planted` near the end."""
    lines, total, number = [], 0, 0
    while total < size:
        line = (
            f"line {number:06d}: caf\u00e9 \u20ac \U0001f600 "
            + "x" * (number % 37)
            + ("\r\n" if number % 5 else "\n")
        )
        lines.append(line)
        total += len(line)
        number += 1
    body = "".join(lines)[:size]
    return body if not planted else body[: size - len(planted) - 10] + planted + body[size - 10 :]


def large_result(args: dict[str, Any]) -> types.CallToolResult:
    size = int(args.get("size", 0))
    planted = os.environ.get(args["env"], "") if isinstance(args.get("env"), str) else ""
    match args.get("kind"):
        case "json":
            records = [
                {"id": i, "name": f"record {i}", "tags": ["a", "\u00e9"], "ok": i % 2 == 0}
                for i in range(size)
            ]
            return types.CallToolResult(content=text(json.dumps(records, indent=1)))
        case "image":
            image = types.ImageContent(type="image", data=PIXEL_PNG * 2000, mime_type="image/png")
            return types.CallToolResult(content=[image, *text(long_text(size, planted))])
    return types.CallToolResult(content=text(long_text(size, planted)))


def text(value: str) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=value)]


def current_tools() -> list[types.Tool]:
    """TOOLS, changed by the JSON file named in ECHO_SERVER_TOOLS_FILE if there is one (for rug-pull tests):
    {"echo_description": "...", "extra_tools": ["name", ...]}."""
    path = os.environ.get("ECHO_SERVER_TOOLS_FILE")
    if os.environ.get("ECHO_SERVER_LARGE"):
        return [*TOOLS, LARGE_TOOL]
    if os.environ.get("ECHO_SERVER_GATE"):
        return [*TOOLS, GATE_TOOL]
    if os.environ.get("ECHO_SERVER_META"):
        return [*TOOLS, META_TOOL]
    if not path or not os.path.exists(path):
        return TOOLS
    with open(path) as handle:
        spec = json.load(handle)
    tools = [
        t.model_copy(update={"description": spec["echo_description"]})
        if t.name == "echo" and "echo_description" in spec
        else t
        for t in TOOLS
    ]
    for name in spec.get("extra_tools", []):
        tools.append(
            types.Tool(
                name=name,
                description=f"An extra tool called {name}.",
                input_schema={"type": "object", "properties": {}},
            )
        )
    return tools


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=current_tools())


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    match params.name:
        case "echo":
            return types.CallToolResult(content=text(str(args.get("message", ""))))
        case "add":
            for key in ("a", "b"):
                value = args.get(key)
                if not isinstance(value, int | float) or isinstance(value, bool):
                    return types.CallToolResult(content=text(f"add: '{key}' must be a number"), is_error=True)
            total = args["a"] + args["b"]
            return types.CallToolResult(content=text(str(total)), structured_content={"sum": total})
        case "sleep":
            print("sleep started", file=sys.stderr, flush=True)
            if isinstance(args.get("progress_env"), str):  # a progress message that echoes an env value
                await ctx.session.report_progress(0.0, 1.0, os.environ.get(args["progress_env"], ""))
            try:
                await trio.sleep(float(args.get("seconds", 0)))
            except trio.Cancelled:
                print("sleep cancelled", file=sys.stderr, flush=True)
                raise
            return types.CallToolResult(content=text("slept"))
        case "fail":
            return types.CallToolResult(content=text(str(args.get("message", "failed"))), is_error=True)
        case "whoami":
            keys = [k for k in os.environ.get("ECHO_SERVER_REPORT_ENV", "").split(",") if k]
            report = {"pid": os.getpid(), "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in keys}}
            return types.CallToolResult(content=text(json.dumps(report)))
        case "delete_everything":
            return types.CallToolResult(content=text("nothing deleted"))
        case "large" if os.environ.get("ECHO_SERVER_LARGE"):
            return large_result(args)
        case "gate" if os.environ.get("ECHO_SERVER_GATE"):
            return await wait_for_gate(os.environ["ECHO_SERVER_GATE"])
        case "meta" if os.environ.get("ECHO_SERVER_META"):
            return types.CallToolResult(content=text(json.dumps(params.meta or {})))
    if any(t.name == params.name for t in current_tools()):
        return types.CallToolResult(content=text(f"{params.name} called"))
    return types.CallToolResult(content=text(f"unknown tool {params.name}"), is_error=True)


async def main(name: str) -> None:
    server = Server(name, version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
    print("echo_server ready", file=sys.stderr, flush=True)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def burn_cpu(seconds: float) -> None:
    """Spend `seconds` of CPU time before serving: what a heavy server's imports cost at its start."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="echo_server")
    parser.add_argument("--startup-cpu", type=float, default=0.0, help="CPU seconds to burn before serving")
    parsed = parser.parse_args()
    burn_cpu(parsed.startup_cpu)
    trio.run(main, parsed.name)
