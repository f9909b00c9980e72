"""`mcpproxy connect --move`: the client's own servers go behind the proxy, so the client ends
with the proxy's entry alone.

Each server is first added to the proxy (quarantined, as `mcpproxy import` adds it); only those
the proxy took are taken out of the client's file. One whose name the proxy has already, or that
cannot be converted, stays where it is and is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cli.client import Target
from cli.import_cmd import candidates_of, plan
from services.client_configs import ClientFile, read_servers, without_entry


@dataclass
class Move:
    text: str
    """The client's text without the servers moved (or that would be)."""
    moved: list[str] = field(default_factory=list)
    stayed: dict[str, str] = field(default_factory=dict)
    """Server -> why it stays in the client."""


def move_servers(target: Target, file: ClientFile, text: str, keep: str, *, dry_run: bool) -> Move:
    """Add the file's servers (all but `keep`) to the proxy; `text` without those it took."""
    servers = {k: v for k, v in read_servers(file, text).items() if k != keep}
    result = Move(text)
    if not servers:
        return result
    _fmt, candidates = candidates_of({file.kind.container: servers}, file.kind.id)
    existing = {s["name"] for s in target.call("GET", "/api/v1/servers")["servers"]}
    plan(candidates, existing, trust=False)
    for original, candidate in zip(servers, candidates, strict=True):
        if candidate.server is None or candidate.skip:
            result.stayed[original] = candidate.skip or "cannot be converted"
            continue
        if not dry_run:
            answer = target.answer("POST", "/api/v1/servers", json=candidate.server)
            if not answer.ok:
                result.stayed[original] = answer.error
                continue
        result.moved.append(original)
        result.text = without_entry(file, result.text, original, drop_container=False)
    return result
