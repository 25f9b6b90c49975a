"""The account, hardware, webhook secret, collections and search endpoints.

Collections come from the server's configuration (``cogfleet serve --collection
SLUG=owner/name,...`` or ``--collections FILE``); a collection lists the models of
it that exist and the token may see. ``GET /v1/search?query=`` answers like
Replicate's search: matching models (each with a ``metadata`` object) and
collections; ``pages`` (documentation) is always empty here.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cogfleet.server._core import (
    HARDWARE,
    NOT_FOUND,
    ApiError,
    account_of,
    base_url,
    paginate_list,
)
from cogfleet.server._models import Models
from cogfleet.server._webhooks import Webhooks


class Account:
    """``/v1/account``, ``/v1/hardware``, ``/v1/webhooks/default/secret``, collections, search."""

    def __init__(
        self,
        webhooks: Webhooks,
        models: Models,
        collections: list[dict[str, Any]],
        page_size: int | None,
    ) -> None:
        self.webhooks = webhooks
        self.models = models
        self.collections = {c["slug"]: c for c in collections}
        self.page_size = page_size or 25

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        return [
            Route("/v1/account", self.account, methods=["GET"]),
            Route("/v1/hardware", self.hardware, methods=["GET"]),
            Route("/v1/webhooks/default/secret", self.webhook_secret, methods=["GET"]),
            Route("/v1/collections", self.collections_index, methods=["GET"]),
            Route("/v1/collections/{slug}", self.collection, methods=["GET"]),
            Route("/v1/search", self.search, methods=["GET"]),
        ]

    async def account(self, request: Request) -> Response:
        """GET /v1/account: the token's account."""
        return JSONResponse(account_of(request).doc())

    async def hardware(self, request: Request) -> Response:
        """GET /v1/hardware (a bare array)."""
        return JSONResponse(HARDWARE)

    async def webhook_secret(self, request: Request) -> Response:
        """GET /v1/webhooks/default/secret: a stable per-state-dir signing secret."""
        return JSONResponse({"key": self.webhooks.key()})

    @staticmethod
    def _summary(collection: dict[str, Any]) -> dict[str, Any]:
        return {k: collection[k] for k in ("slug", "name", "description")}

    async def collections_index(self, request: Request) -> Response:
        """GET /v1/collections: ``{slug, name, description}`` items."""
        items = [self._summary(c) for c in self.collections.values()]
        return paginate_list(request, items, size=self.page_size)

    async def collection(self, request: Request) -> Response:
        """GET /v1/collections/{slug}: the collection with the models it holds."""
        found = self.collections.get(request.path_params["slug"])
        if found is None:
            raise ApiError(404, NOT_FOUND)
        base = base_url(request)
        models = [self.models.render_model(d, base) for d in self._members(found, request)]
        return JSONResponse(
            {
                **self._summary(found),
                "full_description": found.get("full_description"),
                "models": models,
            }
        )

    def _members(self, collection: dict[str, Any], request: Request) -> list[dict[str, Any]]:
        """The models of ``collection`` that exist and the request's token may see."""
        account = account_of(request)
        docs = (self.models.store.get("models", ref) for ref in collection["models"])
        return [d for d in docs if d is not None and account.can_see(d)]

    async def search(self, request: Request) -> Response:
        """GET /v1/search?query=: models and collections that match (no token needed)."""
        query = request.query_params.get("query")
        if query is None or not query.strip():
            raise ApiError(400, 'Query parameter "query" is required', "Bad request")
        limit_text = request.query_params.get("limit", "20")
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if not re.fullmatch(r"[0-9]{1,3}", limit_text) or not 1 <= int(limit_text) <= 50:
            raise ApiError(
                400, 'Query parameter "limit" must be an integer from 1 to 50', "Bad request"
            )
        limit = int(limit_text)
        account = account_of(request)
        base = base_url(request)
        needle = query.strip().lower()
        hits = self.models.search(query, account)[:limit]
        models = [
            {
                "model": self.models.render_model(doc, base),
                "metadata": {
                    "generated_description": None,
                    "tags": [],
                    "score": 1.0 if needle in f"{doc['owner']}/{doc['name']}".lower() else 0.5,
                },
            }
            for doc in hits
        ]
        collections = [
            {
                **self._summary(c),
                "models": [f"{d['owner']}/{d['name']}" for d in self._members(c, request)],
            }
            for c in self.collections.values()
            if needle in f"{c['slug']} {c['name']} {c['description']}".lower()
        ]
        return JSONResponse(
            {"query": query, "models": models, "collections": collections, "pages": []}
        )
