"""The layering rule: bus <- services <- supervisor, gateway; gateway and supervisor never meet in code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = {"bus", "services", "supervisor", "gateway", "cli"}
ALLOWED = {
    "bus": {"bus"},
    "services": {"bus", "services"},
    "supervisor": {"bus", "services", "supervisor"},
    "gateway": {"bus", "services", "gateway"},
    "cli": {"bus", "services", "cli"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) - ALLOWED[package])
        for path in (REPO / package).rglob("*.py")
        if imported_packages(path) - ALLOWED[package]
    }
    assert not offenders, f"layering violated: {offenders}"


def test_only_the_transport_module_imports_zmq() -> None:
    users = [
        str(path.relative_to(REPO))
        for package in OURS
        for path in (REPO / package).rglob("*.py")
        if "zmq" in {n.split(".")[0] for n in _all_imports(path)}
    ]
    assert users == ["bus/transport.py"]


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names
