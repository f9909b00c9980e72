"""The OpenAPI document covers every HTTP route the gateway serves (but the MCP endpoints and the Web UI)."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route

from gateway import openapi
from gateway.app import GatewaySettings, build_app


def test_every_rest_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    settings = GatewaySettings("127.0.0.1", 0, "k", tmp_path, "ipc:///nonexistent-a", "ipc:///nonexistent-b")
    front, _upstreams, _lane = build_app(settings)
    starlette_app = front.app
    documented = openapi.document()["paths"]
    missing = []
    for route in starlette_app.routes:
        assert isinstance(route, Route)
        if route.path.startswith(("/mcp", "/ui")) or route.path == "/":
            continue
        for method in route.methods or ():
            if method == "HEAD":
                continue
            path = (
                route.path.replace("{action:str}", "{action}")
                .replace("{id:int}", "{id}")
                .replace("{pattern:path}", "{pattern}")
            )
            if path.endswith("{action}"):
                ok = any(
                    p.startswith(path.removesuffix("{action}")) and method.lower() in documented[p]
                    for p in documented
                )
            else:
                ok = path in documented and method.lower() in documented[path]
            if not ok:
                missing.append(f"{method} {path}")
    assert not missing, f"routes missing from the OpenAPI document: {missing}"


def test_the_document_is_openapi_3() -> None:
    doc = openapi.document()
    assert doc["openapi"].startswith("3.")
    assert all(path.startswith("/") for path in doc["paths"])
