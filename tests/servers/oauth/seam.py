"""authlib's framework seam: requests in, replies out. authlib's server is synchronous, so each
Starlette request is read in full first and handed over as an OAuth2Request; what it answers comes
back as a Reply."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import JsonPayload, JsonRequest, OAuth2Payload, OAuth2Request
from starlette.requests import Request
from starlette.responses import Response


class FormPayload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):
    """An already-read HTTP request: authlib's server is synchronous, Starlette's body is not."""

    def __init__(self, request: Request, query: list[tuple[str, str]], form: list[tuple[str, str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self.payload = FormPayload(query + form)
        self._args, self._form = dict(query), dict(form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class JsonBody(JsonPayload):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class JsonBodyRequest(JsonRequest):
    def __init__(self, request: Request, data: dict[str, Any]) -> None:
        super().__init__(request.method, str(request.url), request.headers)
        self.payload = JsonBody(data)


async def read_form_request(request: Request, *, query: bool) -> FormRequest:
    form: list[tuple[str, str]] = []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "POST" and content_type == "application/x-www-form-urlencoded":
        form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return FormRequest(request, list(request.query_params.multi_items()) if query else [], form)


@dataclass
class Reply:
    """What authlib answers; `location` is the attribute its RFC 9207 hook rewrites."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((value for key, value in self.headers if key.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]

    def to_response(self) -> Response:
        content = json.dumps(self.body) if isinstance(self.body, dict) else self.body
        return Response(content, status_code=self.status, headers=dict(self.headers))
