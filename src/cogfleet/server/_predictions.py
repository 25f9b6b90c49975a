"""Predictions: ``/v1/predictions…``, model predictions, and the SSE stream.

Predictions of versions whose Output is an iterator get ``urls.stream``, a
``text/event-stream`` of ``output`` / ``logs`` / ``error`` / ``done`` events (each
with an ``id:`` line, as the 1.0.7 client needs).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cogfleet.server._core import INVALID, NOT_FOUND, ApiError, base_url, paginate, read_json
from cogfleet.server._models import Models
from cogfleet.server._runs import Runs


class Predictions:
    """The predictions resource."""

    def __init__(self, runs: Runs, models: Models, page_size: int | None) -> None:
        self.runs = runs
        self.models = models
        self.store = runs.store
        self.page_size = page_size or 100

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        return [
            Route("/v1/predictions", self.index, methods=["GET"]),
            Route("/v1/predictions", self.create, methods=["POST"]),
            Route("/v1/predictions/{pid}", self.get, methods=["GET"]),
            Route("/v1/predictions/{pid}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/models/{owner}/{name}/predictions", self.create_for_model, methods=["POST"]),
            Route("/v1/streams/{pid}", self.stream, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        """POST /v1/predictions (``version`` = id, ``owner/name:id`` or ``owner/name``)."""
        body = await read_json(request)
        ref = body.get("version")
        if not isinstance(ref, str) or not ref:
            raise ApiError(422, "- version is required\n", INVALID)
        return await self.runs.create(request, self.models.resolve_version_ref(ref), body)

    async def create_for_model(self, request: Request) -> Response:
        """POST /v1/models/{owner}/{name}/predictions (the model's latest version)."""
        p = request.path_params
        self.models.model(p["owner"], p["name"])
        version = self.models.latest_version(p["owner"], p["name"])
        if version is None:
            raise ApiError(404, f"The model {p['owner']}/{p['name']} has no versions")
        return await self.runs.create(request, version, await read_json(request))

    async def get(self, request: Request) -> Response:
        """GET /v1/predictions/{id}."""
        doc = self.runs.get("predictions", request.path_params["pid"])
        return JSONResponse(self.runs.render(doc, base_url(request)))

    async def index(self, request: Request) -> Response:
        """GET /v1/predictions (newest first)."""
        base = base_url(request)
        return paginate(
            request,
            self.store,
            "predictions",
            lambda d: self.runs.render(self.runs.current(d), base),
            size=self.page_size,
        )

    async def cancel(self, request: Request) -> Response:
        """POST /v1/predictions/{id}/cancel: stops the work inside the predictor."""
        return await self.runs.cancel(request, "predictions")

    async def stream(self, request: Request) -> Response:
        """GET /v1/streams/{id}: server-sent events of a streamable prediction."""
        pid = request.path_params["pid"]
        doc = self.runs.get("predictions", pid)
        if not doc.get("_stream"):
            raise ApiError(404, NOT_FOUND)
        return StreamingResponse(
            self.runs.events(pid, doc),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store"},
        )
