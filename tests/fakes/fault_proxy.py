"""A reverse proxy in front of the local server that answers chosen requests itself.

Replicate can answer in ways the local server never does on its own (a 403 on a
deployment look-up, a body that is not JSON, a dropped connection). This proxy
forwards every request to a real server over real HTTP, except those matching a
rule, which get the rule's answer::

    with FaultProxy(server.base_url, [Rule("GET", r"/v1/deployments/", 403)]) as proxy:
        client = replicate.Client(api_token=server.token, base_url=proxy.base_url)

A rule's ``body`` is sent as given (bytes or text), or as problem JSON when omitted;
``status=0`` drops the connection without an answer. ``hits`` counts matches.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from cogfleet.server._threaded import ThreadedServer

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Rule:
    method: str
    path: str  # a regular expression searched in the request path
    status: int
    body: bytes | str | None = None
    content_type: str = "application/problem+json"
    headers: dict[str, str] | None = None  # sent with the answer (Retry-After...)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.search(self.path, path) is not None

    def response(self) -> Response:
        body = self.body
        if body is None:
            body = json.dumps({"title": "Injected", "detail": f"injected {self.status}",
                               "status": self.status})
        return Response(body, status_code=self.status, media_type=self.content_type,
                        headers=self.headers)


class _Drop(Exception):
    pass


class FaultProxy:
    """Forward to ``upstream``; answer requests matching a rule with the rule's answer."""

    def __init__(self, upstream: str, rules: list[Rule]) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules = rules
        self._http: ThreadedServer | None = None
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._client = httpx.AsyncClient(timeout=120)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self._client is not None:
                        await self._client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        for rule in self.rules:
            if rule.matches(request.method, request.url.path):
                rule.hits += 1
                if rule.status == 0:
                    raise _Drop  # uvicorn closes the connection without an answer
                await rule.response()(scope, receive, send)
                return
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream = await self._client.request(
            request.method, f"{self.upstream}{request.url.path}",
            params=request.query_params.multi_items(), headers=headers,
            content=await request.body(),
        )
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
               and k.lower() != "content-encoding"}
        await Response(upstream.content, status_code=upstream.status_code, headers=out)(
            scope, receive, send
        )

    @property
    def base_url(self) -> str:
        assert self._http is not None
        return self._http.base_url

    def __enter__(self) -> FaultProxy:
        self._http = ThreadedServer(self, name="fault-proxy", lifespan="on")
        self._http.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            self._http.stop()
        self._http = None
