"""The syntax of secret references, `${keyring:NAME}` and `${env:VAR}`: shared by resolving and masking."""

from __future__ import annotations

import re
from typing import Final

REFERENCE_RE: Final = re.compile(r"\$\{(keyring|env):([^}]+)\}")


def is_reference(value: str) -> bool:
    """True when the whole value is a single reference (it then passes through redaction unchanged)."""
    return REFERENCE_RE.fullmatch(value) is not None


def references_in(value: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in REFERENCE_RE.finditer(value)]
