"""`/api/v1/clients`, `/api/v1/profiles`, `/api/v1/tool-tiers`, `/api/v1/access`: client credentials,
each bound to a profile, and the access settings a person edits (issue 21).

The gateway makes a credential (`mcpp_` and 32 random bytes), answers it once, and sends the
supervisor only its SHA-256, which is all the clients file keeps (services/clients.py). The
supervisor's new AccessPolicy reaches the gateway before its answer does, so a revoked or rotated
credential is refused from the next request on.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus.access import ClientAction
from bus.messages import ClientCommand, ClientResult
from bus.values import ConfigAction
from gateway.registry import Registry
from gateway.rest import answer, fail, json_body, ok
from gateway.upstreams import Upstreams
from services.access import CREDENTIAL_PREFIX, credential_hash, parse_expiry


def new_credential() -> str:
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


class ClientsApi:
    def __init__(self, registry: Registry, upstreams: Upstreams) -> None:
        self.registry = registry
        self.upstreams = upstreams

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/profiles", self.profiles, methods=["GET"]),
            Route("/api/v1/profiles/{name}", self.set_profile, methods=["PUT"]),
            Route("/api/v1/profiles/{name}", self.remove_profile, methods=["DELETE"]),
            Route("/api/v1/tool-tiers", self.tool_tiers, methods=["GET"]),
            Route("/api/v1/tool-tiers/{pattern:path}", self.set_tool_tier, methods=["PUT"]),
            Route("/api/v1/tool-tiers/{pattern:path}", self.clear_tool_tier, methods=["DELETE"]),
            Route("/api/v1/access", self.set_access, methods=["PATCH"]),
            Route("/api/v1/clients", self.list, methods=["GET"]),
            Route("/api/v1/clients", self.add, methods=["POST"]),
            Route("/api/v1/clients/{name}/rotate", self.rotate, methods=["POST"]),
            Route("/api/v1/clients/{name}", self.revoke, methods=["DELETE"]),
        ]

    async def profiles(self, request: Request) -> Response:
        policy = self.registry.access
        return ok(
            {
                "profiles": [msgspec.to_builtins(p) for p in policy.profiles],
                "anonymous_profile": policy.anonymous_profile,
                "require_mcp_auth": policy.require_mcp_auth,
                "tool_tiers": policy.tool_tiers,
            }
        )

    async def set_profile(self, request: Request) -> Response:
        """Create (201) or replace (200) a profile; the change holds from the next request on."""
        return await self._config(request, "set_profile", request.path_params["name"], with_body=True)

    async def remove_profile(self, request: Request) -> Response:
        return await self._config(request, "remove_profile", request.path_params["name"])

    async def tool_tiers(self, request: Request) -> Response:
        return ok({"tool_tiers": self.registry.access.tool_tiers})

    async def set_tool_tier(self, request: Request) -> Response:
        return await self._config(request, "set_tool_tier", request.path_params["pattern"], with_body=True)

    async def clear_tool_tier(self, request: Request) -> Response:
        return await self._config(request, "clear_tool_tier", request.path_params["pattern"])

    async def set_access(self, request: Request) -> Response:
        return await self._config(request, "set_access", with_body=True)

    async def _config(
        self, request: Request, action: ConfigAction, name: str = "", *, with_body: bool = False
    ) -> Response:
        body = None
        if with_body:
            try:
                body = await json_body(request)
            except ValueError as exc:
                return fail(request, 400, str(exc))
        return answer(request, await self.upstreams.config(action, name, body))

    async def list(self, request: Request) -> Response:
        result = await self._send("list")
        return self._answer(request, result)

    async def add(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            name, profile = body.get("name"), body.get("profile")
            if not isinstance(name, str) or not isinstance(profile, str):
                raise ValueError('expected {"name": "...", "profile": "...", "expires": "30d" (optional)}')
            expires_at = self._expires_at(body)
        except ValueError as exc:
            return fail(request, 400, str(exc))
        credential = new_credential()
        result = await self._send(
            "add", name, profile=profile, token_sha256=credential_hash(credential), expires_at=expires_at
        )
        return self._answer(request, result, credential)

    async def rotate(self, request: Request) -> Response:
        try:
            expires_at = self._expires_at(await self._body(request))
        except ValueError as exc:
            return fail(request, 400, str(exc))
        credential = new_credential()
        result = await self._send(
            "rotate",
            request.path_params["name"],
            token_sha256=credential_hash(credential),
            expires_at=expires_at,
        )
        return self._answer(request, result, credential)

    async def revoke(self, request: Request) -> Response:
        return self._answer(request, await self._send("revoke", request.path_params["name"]))

    async def _send(self, action: ClientAction, name: str = "", **fields: Any) -> ClientResult:
        return await self.upstreams.client(
            lambda rid: ClientCommand(request_id=rid, action=action, name=name, **fields)
        )

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        if not (await request.body()).strip():
            return {}
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        return body

    @staticmethod
    def _expires_at(body: dict[str, Any]) -> float | None:
        expires = body.get("expires")
        if expires is None:
            return None
        if not isinstance(expires, str):
            raise ValueError("expires: expected a duration like '30d', '12h' or '2w'")
        return time.time() + parse_expiry(expires)

    @staticmethod
    def _answer(request: Request, result: ClientResult, credential: str | None = None) -> Response:
        if not result.ok:
            return fail(request, result.status, result.error or "failed")
        clients = [msgspec.to_builtins(c) for c in result.clients]
        if credential is None:
            return ok({"clients": clients}, status=result.status)
        # The one time the credential is shown: the proxy keeps only its hash.
        return ok({"client": clients[0], "credential": credential}, status=result.status)
