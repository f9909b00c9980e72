"""The Web UI: static files under `/ui/` (hand-written HTML, JS modules and CSS shipped in gateway/ui).

The pages need no key to load; every API call they make sends `X-API-Key`.
A strict Content-Security-Policy allows only our own scripts and styles.
`app.js` is the entry module; it imports `lib/*.js` and `pages/*.js` by relative
path, so every `.js` and `.css` file under gateway/ui is served, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

UI_DIR: Final = Path(__file__).resolve().parent / "ui"
MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def ui_assets(root: Path = UI_DIR) -> dict[str, str]:
    """Every script and stylesheet under `root`, by its path under /ui/, with its media type.

    Listed once at import: a request names one of these or gets 404, so no path from a URL ever
    reaches the file system.
    """
    return {
        path.relative_to(root).as_posix(): MEDIA_TYPES[path.suffix]
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


ASSETS: Final = ui_assets()


def _static(name: str, media_type: str) -> Response:
    return Response(
        (UI_DIR / name).read_bytes(),
        media_type=media_type,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


async def _index(request: Request) -> Response:
    return _static("index.html", "text/html; charset=utf-8")


async def _asset(request: Request) -> Response:
    name = request.path_params["asset"]
    if name not in ASSETS:
        return Response("not found", status_code=404, media_type="text/plain")
    return _static(name, ASSETS[name])


async def _slashless(request: Request) -> Response:
    return RedirectResponse("/ui/")


def ui_routes() -> list[Route]:
    """`/ui` (redirect), `/ui/` (the page) and `/ui/{asset}` (its modules and stylesheet)."""
    return [
        Route("/ui", _slashless, methods=["GET"]),
        Route("/ui/", _index, methods=["GET"]),
        Route("/ui/{asset:path}", _asset, methods=["GET"]),
    ]
