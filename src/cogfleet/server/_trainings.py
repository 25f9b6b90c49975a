"""Trainings: ``/v1/models/…/versions/{id}/trainings``, ``/v1/trainings…``, weights.

A successful training stores the weights its output carries (a ``data:`` URI, or
``{"weights": <data: URI>}``) under ``<state>/weights/<sha256>`` and adds a version
with those weights to the destination model. ``GET /v1/weights/{sha256}`` (a
cogfleet extension) serves that file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cogfleet.server._core import INVALID, NOT_FOUND, ApiError, base_url, paginate, read_json
from cogfleet.server._models import Models
from cogfleet.server._runs import Runs


class Trainings:
    """The trainings resource."""

    def __init__(self, runs: Runs, models: Models, page_size: int | None) -> None:
        self.runs = runs
        self.models = models
        self.store = runs.store
        self.weights_dir = runs.state_dir / "weights"
        self.page_size = page_size or 100

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        return [
            Route(
                "/v1/models/{owner}/{name}/versions/{vid}/trainings",
                self.create,
                methods=["POST"],
            ),
            Route("/v1/trainings", self.index, methods=["GET"]),
            Route("/v1/trainings/{pid}", self.get, methods=["GET"]),
            Route("/v1/trainings/{pid}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/weights/{sha}", self.weights, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        """POST /v1/models/{owner}/{name}/versions/{id}/trainings."""
        p = request.path_params
        version = self.models.version(p["owner"], p["name"], p["vid"])
        body = await read_json(request)
        destination = body.get("destination")
        if not isinstance(destination, str) or destination.count("/") != 1:
            raise ApiError(422, "- destination is required\n", INVALID)
        if self.store.get("models", destination) is None:
            raise ApiError(404, "The specified training destination does not exist")
        finish = partial(self._finish, version, destination, base_url(request))
        return await self.runs.create(
            request, version, body, kind="training", destination=destination, finish=finish
        )

    def _finish(
        self, version: dict[str, Any], destination: str, base: str, doc: dict[str, Any]
    ) -> None:
        """Store the trained weights and add a version carrying them to the destination."""
        weights = _find_weights(doc.get("output"))
        if weights is None:
            doc["status"] = "failed"
            doc["error"] = "The training output contains no weights file (a data: URI)."
            return
        sha = hashlib.sha256(weights).hexdigest()
        wpath = self.weights_dir / sha
        if not wpath.exists():
            wpath.write_bytes(weights)
        trained_id = hashlib.sha256(f"{version['id']}:{sha}".encode()).hexdigest()
        source = {
            "id": trained_id,
            "cog_version": version["cog_version"],
            "openapi_schema": version["openapi_schema"],
            "_build": version["_build"],
            "_weights": str(wpath),
            "_runtime": version.get("_runtime"),
        }
        owner, _, name = destination.partition("/")
        self.models.add_version(owner, name, source)
        doc["output"] = {
            "version": f"{destination}:{trained_id}",
            "weights": f"{base}/v1/weights/{sha}",
        }

    async def get(self, request: Request) -> Response:
        """GET /v1/trainings/{id}."""
        doc = self.runs.get("trainings", request.path_params["pid"])
        return JSONResponse(self.runs.render(doc, base_url(request)))

    async def index(self, request: Request) -> Response:
        """GET /v1/trainings (newest first)."""
        base = base_url(request)
        return paginate(
            request,
            self.store,
            "trainings",
            lambda d: self.runs.render(self.runs.current(d), base),
            size=self.page_size,
        )

    async def cancel(self, request: Request) -> Response:
        """POST /v1/trainings/{id}/cancel."""
        return await self.runs.cancel(request, "trainings")

    async def weights(self, request: Request) -> Response:
        """GET /v1/weights/{sha256}: a weights file produced by a training."""
        sha = request.path_params["sha"]
        path = self.weights_dir / sha
        if not re.fullmatch(r"[0-9a-f]{64}", sha) or not path.is_file():
            raise ApiError(404, NOT_FOUND)
        return Response(path.read_bytes(), media_type="application/octet-stream")


def _decode_data_uri(text: str) -> bytes | None:
    if not text.startswith("data:") or "," not in text:
        return None
    header, _, payload = text.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload)
        return unquote_to_bytes(payload)
    except (ValueError, binascii.Error):
        return None


def _find_weights(output: Any) -> bytes | None:
    """The weights bytes in a training output: a data: URI, or ``{"weights": <data: URI>}``."""
    if isinstance(output, str):
        return _decode_data_uri(output)
    if isinstance(output, dict):
        candidates = [output.get("weights"), *output.values()]
        for value in candidates:
            if isinstance(value, str):
                data = _decode_data_uri(value)
                if data is not None:
                    return data
    if isinstance(output, list):
        for value in output:
            found = _find_weights(value)
            if found is not None:
                return found
    return None
