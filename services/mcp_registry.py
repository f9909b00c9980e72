"""The official MCP registry (`GET /v0.1/servers`) and the reference servers shipped with us:
search them, and turn an entry into one of our server configs.

An entry names packages (npm, PyPI, OCI images: run with `npx -y`, `uvx`, `docker run -i --rm`)
and remotes (streamable HTTP or SSE URLs). Its required environment variables and headers become
`${keyring:NAME}` references for the user to fill (`mcpproxy secrets set NAME`), listed in
`needs`. A server from a registry is always added quarantined.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx2

SERVERS_PATH: Final = "/v0.1/servers"
REGISTRY_TIMEOUT_S: Final = 15.0
SEARCH_LIMIT: Final = 30
FIND_PAGES: Final = 10
"""Pages of a registry followed to find one server by name (300 entries at SEARCH_LIMIT)."""
REFERENCE_FILE: Final = Path(__file__).with_name("reference_servers.json")
OFFICIAL_META: Final = "io.modelcontextprotocol.registry/official"
REMOTE_PROTOCOLS: Final = {"streamable-http": "http", "sse": "sse"}
NAME_RE: Final = re.compile(r"[^A-Za-z0-9_.-]+")


class RegistryError(Exception):
    """A registry could not be searched, or has no such server; the message says which and why."""


@dataclass
class Conversion:
    """A registry entry as our server config, and what the user still has to provide."""

    server: dict[str, Any]
    needs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def reference_servers() -> list[dict[str, Any]]:
    """The offline list, in the registry's own shape."""
    data: dict[str, Any] = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    return [item["server"] for item in data["servers"]]


def summary(entry: dict[str, Any], source: str) -> dict[str, Any]:
    """What a search result shows."""
    packages = entry.get("packages") or []
    return {
        "id": entry.get("name", ""),
        "description": entry.get("description", ""),
        "version": entry.get("version", ""),
        "packages": [f"{p.get('registryType')}:{p.get('identifier')}" for p in packages],
        "remotes": [r.get("url", "") for r in entry.get("remotes") or []],
        "source": source,
    }


def search_offline(query: str) -> list[dict[str, Any]]:
    words = query.lower().split()
    return [
        e
        for e in reference_servers()
        if all(w in f"{e.get('name', '')} {e.get('description', '')}".lower() for w in words)
    ]


def _latest(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per server name: the one the registry marks latest, else the last listed."""
    chosen: dict[str, dict[str, Any]] = {}
    for item in items:
        server = item.get("server") or {}
        name = server.get("name")
        official = ((item.get("_meta") or {}).get(OFFICIAL_META)) or {}
        if isinstance(name, str) and (name not in chosen or official.get("isLatest", True)):
            chosen[name] = server
    return list(chosen.values())


async def _page(
    http: httpx2.AsyncClient, registry: str, params: dict[str, str | int]
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a registry's `GET /v0.1/servers`: its entries and the cursor of the next page."""
    url = registry.rstrip("/") + SERVERS_PATH
    try:
        response = await http.get(url, params=params, timeout=REGISTRY_TIMEOUT_S)
    except httpx2.HTTPError as exc:
        raise RegistryError(f"registry {registry}: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise RegistryError(f"registry {registry}: HTTP {response.status_code} for {url}")
    try:
        body = response.json()
        items = body["servers"]
        metadata = body.get("metadata") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError(f"registry {registry}: not a registry answer (no servers list)") from None
    following = metadata.get("nextCursor") if isinstance(metadata, dict) else None
    entries = [i for i in items if isinstance(i, dict)]
    return entries, following if isinstance(following, str) and following else None


async def search(
    http: httpx2.AsyncClient, registry: str, query: str, limit: int = SEARCH_LIMIT
) -> list[dict[str, Any]]:
    """The latest version of each server matching `query` in one registry (its first page)."""
    items, _ = await _page(http, registry, {"search": query, "version": "latest", "limit": limit})
    return _latest(items)


async def _find_in(http: httpx2.AsyncClient, registry: str, server_id: str) -> dict[str, Any] | None:
    """The entry named `server_id` in one registry, following its pages (FIND_PAGES at most): a search
    by name also answers every server whose name contains it, and the exact one need not come first."""
    params: dict[str, str | int] = {"search": server_id, "version": "latest", "limit": SEARCH_LIMIT}
    for _ in range(FIND_PAGES):
        items, following = await _page(http, registry, params)
        if match := next((e for e in _latest(items) if e.get("name") == server_id), None):
            return match
        if following is None:
            return None
        params["cursor"] = following
    return None


async def find(http: httpx2.AsyncClient, registries: list[str], server_id: str) -> dict[str, Any]:
    """The entry named `server_id`: from the registries in order, else the offline list."""
    problems = []
    for registry in registries:
        try:
            found = await _find_in(http, registry, server_id)
        except RegistryError as exc:
            problems.append(str(exc))
            continue
        if found is not None:
            return found
    if match := next((e for e in reference_servers() if e.get("name") == server_id), None):
        return match
    why = f" ({'; '.join(problems)})" if problems else ""
    raise RegistryError(f"no server {server_id!r} in {', '.join(registries) or 'no registry'}{why}")


def server_name(server_id: str) -> str:
    """`io.github.owner/some-server` -> `some-server`."""
    return NAME_RE.sub("-", server_id.rsplit("/", 1)[-1]).strip("-")[:64] or "server"


def _secret_ref(name: str, variable: str) -> str:
    return "${keyring:" + NAME_RE.sub("_", f"{name}_{variable}").strip("_") + "}"


def _arguments(specs: list[dict[str, Any]], needs: list[str], name: str) -> list[str]:
    args: list[str] = []
    for spec in specs:
        value = spec.get("value") or spec.get("default")
        if value is None and spec.get("isRequired"):
            value = f"<{spec.get('valueHint') or spec.get('name') or 'value'}>"
            needs.append(f"argument {value}: replace it with `mcpproxy upstream patch {name} --args ...`")
        if spec.get("type") == "named":
            args.append(str(spec.get("name", "")))
        if value is not None:
            args.append(str(value))
    return [a for a in args if a]


def _from_package(package: dict[str, Any], name: str, conversion: Conversion) -> None:
    kind, ident, version = package.get("registryType"), package.get("identifier", ""), package.get("version")
    if version == "latest":
        version = None
    needs, server = conversion.needs, conversion.server
    runtime = _arguments(package.get("runtimeArguments") or [], needs, name)
    rest = _arguments(package.get("packageArguments") or [], needs, name)
    env: dict[str, str] = {}
    for variable in package.get("environmentVariables") or []:
        var = str(variable.get("name", ""))
        if variable.get("isRequired") or variable.get("isSecret"):
            env[var] = variable.get("value") or _secret_ref(name, var)
            if env[var].startswith("${keyring:"):
                needs.append(f"env {var} = {env[var]}: {variable.get('description') or 'required'}")
        elif variable.get("default") is not None:
            env[var] = str(variable["default"])
    if kind == "npm":
        server.update(command="npx", args=["-y", *runtime, f"{ident}@{version}" if version else ident, *rest])
    elif kind == "pypi":
        server.update(command="uvx", args=[*runtime, f"{ident}=={version}" if version else ident, *rest])
    elif kind == "oci":
        image = ident if ":" in ident.rsplit("/", 1)[-1] or not version else f"{ident}:{version}"
        passed = [a for var in env for a in ("-e", var)]
        server.update(command="docker", args=["run", "-i", "--rm", *runtime, *passed, image, *rest])
    if env:
        server["env"] = env


def _from_remote(remote: dict[str, Any], name: str, conversion: Conversion) -> None:
    conversion.server["url"] = remote.get("url", "")
    conversion.server["protocol"] = REMOTE_PROTOCOLS.get(str(remote.get("type")), "auto")
    headers = {}
    for header in remote.get("headers") or []:
        if header.get("isRequired") or header.get("isSecret"):
            key = str(header.get("name", ""))
            headers[key] = header.get("value") or _secret_ref(name, key)
            if headers[key].startswith("${keyring:"):
                conversion.needs.append(
                    f"header {key} = {headers[key]}: {header.get('description') or 'required'}"
                )
    if headers:
        conversion.server["headers"] = headers
    if "{" in conversion.server["url"]:
        conversion.needs.append(f"the URL has variables to fill: {conversion.server['url']}")


def to_server(entry: dict[str, Any], name: str | None = None, *, prefer_remote: bool = False) -> Conversion:
    """Our server config for a registry entry: a stdio package (npm, PyPI, OCI) or a remote."""
    server_id = str(entry.get("name", ""))
    chosen = name or server_name(server_id)
    conversion = Conversion({"name": chosen, "quarantined": True})
    packages = [
        p
        for p in entry.get("packages") or []
        if p.get("registryType") in ("npm", "pypi", "oci")
        and (p.get("transport") or {}).get("type", "stdio") == "stdio"
    ]
    remotes = [r for r in entry.get("remotes") or [] if r.get("type") in REMOTE_PROTOCOLS]
    if remotes and (prefer_remote or not packages):
        _from_remote(remotes[0], chosen, conversion)
    elif packages:
        _from_package(packages[0], chosen, conversion)
    else:
        raise RegistryError(
            f"{server_id}: no npm, PyPI or OCI package with stdio and no HTTP/SSE remote to run"
        )
    conversion.notes.append(f"from the MCP registry: {server_id} {entry.get('version', '')}".rstrip())
    return conversion
