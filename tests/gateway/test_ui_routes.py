"""The Web UI's files: one entry module, page modules it imports by relative path, all served."""

from __future__ import annotations

import re
from typing import Final

from starlette.requests import Request

from gateway.ui_routes import ASSETS, CSP, UI_DIR, _asset

IMPORT_RE: Final = re.compile(r'^\s*import\s[^;]*?from\s+"(\.{1,2}/[^"]+)";', re.M | re.S)
MAX_MODULE_LINES: Final = 400
"""The house limit is 500 lines a module; a page that grows past this is due to be split."""


def imports_of(path: str) -> list[str]:
    """The served paths a module imports (resolved against its own directory)."""
    base = path.rsplit("/", 1)[0] if "/" in path else ""
    resolved = []
    for spec in IMPORT_RE.findall((UI_DIR / path).read_text()):
        parts = [p for p in base.split("/") if p]
        for part in spec.split("/"):
            if part == "..":
                parts.pop()
            elif part != ".":
                parts.append(part)
        resolved.append("/".join(parts))
    return resolved


def test_every_module_the_entry_module_reaches_is_served_and_every_served_module_is_reached() -> None:
    index = (UI_DIR / "index.html").read_text()
    assert '<script type="module" src="/ui/app.js"></script>' in index
    reached, todo = set(), ["app.js"]
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        assert module in ASSETS, f"{module} is imported but not served"
        reached.add(module)
        todo.extend(imports_of(module))
    scripts = {name for name in ASSETS if name.endswith(".js")}
    assert reached == scripts, f"served but never imported: {sorted(scripts - reached)}"
    assert {"lib/api.js", "lib/dom.js", "pages/dashboard.js", "pages/activity.js"} <= reached


def test_no_module_is_a_thousand_line_file_again() -> None:
    sizes = {name: len((UI_DIR / name).read_text().splitlines()) for name in ASSETS if name.endswith(".js")}
    assert max(sizes.values()) <= MAX_MODULE_LINES, sizes


async def test_a_module_is_served_as_javascript_with_the_csp_and_nothing_else_is_served() -> None:
    def get(asset: str) -> Request:
        return Request({"type": "http", "method": "GET", "path_params": {"asset": asset}, "headers": []})

    served = await _asset(get("pages/server-tools.js"))
    assert served.status_code == 200
    assert served.headers["content-type"] == "text/javascript; charset=utf-8"
    assert served.headers["content-security-policy"] == CSP
    for outside in ("../rest.py", "index.html", "pages/../../ui_routes.py", "lib", "/etc/passwd"):
        assert (await _asset(get(outside))).status_code == 404, outside
