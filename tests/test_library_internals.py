"""Another library's private names are touched in one adapter module per library, and nowhere else.

A private name (`x._name`, or `getattr(x, "_name")`) is ours when some module
of ours outside the adapters defines it (a function, a class, a module global,
or an attribute set on `self`/`cls`); any other is a library's, and belongs in
that library's adapter, which checks at import or start that it still exists.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

REPO = Path(__file__).resolve().parent.parent
PRODUCT: Final = ("bus", "services", "supervisor", "gateway", "cli")
ADAPTERS: Final = {
    "services/mcp_internals.py": "mcp",
    "gateway/_hypercorn_internals.py": "hypercorn",
    "services/docker_engine.py": "docker",
}
STANDARD_LIBRARY: Final = {
    "_exit": "os._exit, the documented exit for a forked child",
    "_replace": "namedtuple's documented _replace (urllib.parse results)",
    "_run_exitfuncs": "atexit's, run before os._exit in services/process.py",
}


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(REPO)): ast.parse(path.read_text(), filename=str(path))
        for package in PRODUCT
        for path in sorted((REPO / package).rglob("*.py"))
    }


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
    return names


def _private_names(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        if name is not None and name.startswith("_") and not name.startswith("__"):
            found.append((node.lineno, name))
    return found


def test_private_names_of_other_libraries_are_touched_only_in_their_adapter() -> None:
    modules = _modules()
    ours = set().union(*(_defined(tree) for path, tree in modules.items() if path not in ADAPTERS))
    outside = sorted(
        f"{path}:{line} {name}"
        for path, tree in modules.items()
        if path not in ADAPTERS
        for line, name in _private_names(tree)
        if name not in ours and name not in STANDARD_LIBRARY
    )
    assert not outside, f"a library's private names outside its adapter ({sorted(ADAPTERS)}): {outside}"


def test_each_adapter_still_touches_private_names_of_its_library() -> None:
    # An adapter that no longer needs its library's internals should go, and its pin with it.
    modules = _modules()
    ours = set().union(*(_defined(tree) for path, tree in modules.items() if path not in ADAPTERS))
    for path in ADAPTERS:
        assert any(name not in ours for _, name in _private_names(modules[path])), path
