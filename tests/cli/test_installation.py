"""`mcpproxy` refuses to start when another project's package stands where one of its own must be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.installation import PACKAGES, ROOT, foreign_packages
from cli.serve_launch import child_argv

EMPTY_FILE_HASH = "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
"""How a wheel's RECORD lists an empty file (each of our `__init__.py` files is one)."""
MCPPROXY = Path(sys.executable).parent / "mcpproxy"


def package(where: Path, name: str, text: str = "") -> Path:
    (where / name).mkdir(parents=True)
    init = where / name / "__init__.py"
    init.write_text(text)
    return init


def test_this_installation_is_all_ours() -> None:
    assert foreign_packages(ROOT, sys.path) == []


def test_a_package_earlier_on_the_path_is_named_with_where_it_is(tmp_path: Path) -> None:
    foreign = package(tmp_path, "supervisor", "# supervisord\n")
    ours = ROOT / "supervisor" / "__init__.py"
    assert foreign_packages(ROOT, [str(tmp_path), *sys.path]) == [
        f"`supervisor`: {foreign} comes first on sys.path (mcpproxy's is {ours})"
    ]


def test_a_module_of_the_same_name_hides_ours_too(tmp_path: Path) -> None:
    (tmp_path / "gateway.py").write_text("")
    [found] = foreign_packages(ROOT, [str(tmp_path), *sys.path])
    assert found.startswith(f"`gateway`: {tmp_path / 'gateway.py'} comes first on sys.path")


def test_a_package_written_over_ours_in_one_environment_names_who_wrote_it(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"  # an installed wheel: our packages beside our RECORD
    for name in PACKAGES:
        package(site, name)
    ours = site / "mcpproxy-0.1.0.dist-info"
    ours.mkdir()
    (ours / "RECORD").write_text("".join(f"{name}/__init__.py,{EMPTY_FILE_HASH},0\n" for name in PACKAGES))
    assert foreign_packages(site, [str(site)]) == []

    theirs = site / "supervisor-4.2.5.dist-info"  # pip install supervisor, into the same environment
    theirs.mkdir()
    (theirs / "RECORD").write_text("supervisor/__init__.py,sha256=x,21\nsupervisor/states.py,sha256=y,1\n")
    (site / "supervisor" / "__init__.py").write_text("# this is a package\n")
    assert foreign_packages(site, [str(site)]) == [
        f"`supervisor`: {site / 'supervisor' / '__init__.py'} is not the file mcpproxy installed; "
        "supervisor 4.2.5 wrote over it"
    ]


def test_mcpproxy_refuses_to_start_beside_a_foreign_package_and_names_the_fix(tmp_path: Path) -> None:
    foreign = package(tmp_path, "supervisor", "raise SystemExit('foreign code ran')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    refused = subprocess.run([MCPPROXY, "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert f"`supervisor`: {foreign} comes first on sys.path" in refused.stderr
    assert "uv tool install" in refused.stderr and "foreign code ran" not in refused.stderr
    env.pop("PYTHONPATH")
    assert subprocess.run([MCPPROXY, "--help"], env=env, capture_output=True, timeout=60).returncode == 0


def test_serves_children_ignore_a_package_of_the_same_name_in_the_working_directory(tmp_path: Path) -> None:
    package(tmp_path, "gateway")
    (tmp_path / "gateway" / "__main__.py").write_text("print('foreign gateway')\n")
    argv = [*child_argv("gateway", tmp_path / "mcp_config.json", None, None, "INFO"), "--help"]
    child = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0 and "usage: python -m gateway" in child.stdout
    assert "foreign gateway" not in child.stdout
