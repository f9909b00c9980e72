"""A stdio MCP server written by hand, line by line, so it can answer what the SDK would never write.

    python tests/servers/raw_server.py

Tools: `echo` (a valid result) and `broken` (a result whose `content` is not a list: no valid
CallToolResult). Everything else it answers as a minimal 2025-11-25 server would.
"""

from __future__ import annotations

import json
import sys
from typing import Any

TOOLS = [
    {"name": "echo", "description": "Echo a message.", "inputSchema": {"type": "object"}},
    {"name": "broken", "description": "Answer with an invalid result.", "inputSchema": {"type": "object"}},
]


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    method, params = request.get("method"), request.get("params") or {}
    if "id" not in request:
        return None  # a notification
    if method == "initialize":
        result: Any = {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "version": "1.0.0"},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call" and params.get("name") == "broken":
        result = {"content": "not a list"}
    elif method == "tools/call":
        message = str((params.get("arguments") or {}).get("message", ""))
        result = {"content": [{"type": "text", "text": message}]}
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "not found"}}
    return {"jsonrpc": "2.0", "id": request["id"], "result": result}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = answer(json.loads(line))
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
