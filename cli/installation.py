"""Whether the packages `mcpproxy` runs are its own, or another project's package of the same name.

The wheel installs five top-level packages with common names: `bus`,
`services`, `supervisor`, `gateway` and `cli` (PyPI's `supervisor`, which is
supervisord, is one). Beside another project's package of the same name, one of
the two wins: the one earlier on sys.path (PYTHONPATH; or site-packages, ahead
of an editable checkout), or, when both were installed into one environment,
the last one written (their files mix, and the last `__init__.py` stays).
Either way mcpproxy would run someone else's code, or its own half-overwritten.

So before it imports any of the others, `mcpproxy` checks that each resolves
to the directory `cli` came from, and, where that directory holds the wheel's
RECORD (an installed wheel, not a checkout), that each `__init__.py` is the one
the wheel installed. The isolated install (`uv tool install`, `pipx install`)
gives mcpproxy an environment of its own, where neither can happen. The
processes `mcpproxy serve` starts run with `python -P`, so the working
directory cannot shadow a package in them either.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import sys
from collections.abc import Sequence
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Final

PACKAGES: Final = ("bus", "services", "supervisor", "gateway", "cli")
DISTRIBUTION: Final = "mcpproxy"
ROOT: Final = Path(__file__).resolve().parent.parent
"""Where this `cli` package, and so every package of this installation, lives."""


def foreign_packages(root: Path, path: Sequence[str]) -> list[str]:
    """One line per package of ours that `path` resolves to something other than our copy under `root`."""
    installed = _installed_hashes(root)
    found = []
    for name in PACKAGES:
        ours = root / name / "__init__.py"
        spec = PathFinder.find_spec(name, list(path))
        origin = spec.origin if spec is not None else None
        if origin is None or not Path(origin).is_file():
            found.append(f"`{name}`: not found as a package (mcpproxy's is {ours})")
        elif Path(origin).resolve() != ours:
            found.append(f"`{name}`: {origin} comes first on sys.path (mcpproxy's is {ours})")
        elif name in installed and _record_hash(ours.read_bytes()) != installed[name]:
            by = ", ".join(_other_owners(root, f"{name}/__init__.py")) or "another installation"
            found.append(f"`{name}`: {ours} is not the file mcpproxy installed; {by} wrote over it")
    return found


def refuse_foreign_packages() -> None:
    """Exit with the reason and the fix if any package of ours is another project's."""
    found = foreign_packages(ROOT, sys.path)
    if not found:
        return
    print(
        "mcpproxy: another project's package stands where mcpproxy's own must be:\n"
        + "".join(f"  {line}\n" for line in found)
        + f"mcpproxy's packages are named {', '.join(PACKAGES)}; PyPI's `supervisor` is one of those names.\n"
        "Fix: install mcpproxy in an environment of its own (`uv tool install <checkout>` or "
        "`pipx install <checkout>`), or take the other package off PYTHONPATH.",
        file=sys.stderr,
    )
    sys.exit(1)


def _record_hash(data: bytes) -> str:
    """A file's hash as a wheel's RECORD writes it."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _installed_hashes(root: Path) -> dict[str, str]:
    """The RECORD hash of each of our `__init__.py` files, if `root` holds our installed wheel."""
    hashes = {}
    for record in root.glob(f"{DISTRIBUTION}-*.dist-info/RECORD"):
        for row in csv.reader(record.read_text().splitlines()):
            package, _, rest = row[0].partition("/") if row else ("", "", "")
            if package in PACKAGES and rest == "__init__.py" and len(row) > 1:
                hashes[package] = row[1]
    return hashes


def _other_owners(root: Path, file: str) -> list[str]:
    """The other distributions in `root` whose RECORD lists `file` ("supervisor 4.2.5")."""
    owners = []
    for record in sorted(root.glob("*.dist-info/RECORD")):
        name, _, version = record.parent.name.removesuffix(".dist-info").partition("-")
        rows = csv.reader(record.read_text().splitlines())
        if name != DISTRIBUTION and any(row and row[0] == file for row in rows):
            owners.append(f"{name} {version}")
    return owners
