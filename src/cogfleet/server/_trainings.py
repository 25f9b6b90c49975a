"""Trainings: ``/v1/models/…/versions/{id}/trainings``, ``/v1/trainings…``, weights.

Only versions whose build declares ``train`` can be trained (422 at create, before
anything runs); the destination must be a model the token may write to.

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

from cogfleet.server._core import NOT_FOUND, ApiError, account_of, base_url, paginate, read_json
from cogfleet.server._inputs import has_trainer
from cogfleet.server._models import Models, forbidden
from cogfleet.server._runs import Runs
from cogfleet.server._validation import TRAINING, check_body


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
        """POST /v1/models/{owner}/{name}/versions/{id}/trainings (versions with a trainer)."""
        p = request.path_params
        account = account_of(request)
        version = self.models.version(p["owner"], p["name"], p["vid"], account)
        body = await read_json(request)
        check_body(body, TRAINING)
        if not has_trainer(version):
            raise ApiError(
                422,
                "This version cannot be trained: its cog.yaml declares no train",
                "Invalid version or not permitted",
            )
        destination = body["destination"]
        owner, _, name = destination.partition("/")
        dest = self.store.get("models", destination)
        if dest is None or not account.can_see(dest):
            raise ApiError(404, "The specified training destination does not exist")
        if not account.can_write(owner):
            raise forbidden(account, owner)
        finish = partial(self._finish, version, destination, base_url(request))
        return await self.runs.create(
            request,
            version,
            body,
            account=account,
            kind="training",
            destination=destination,
            finish=finish,
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
        owner, _, name = destination.partition("/")
        trained, _ = self.models.add_version(owner, name, version, weights=str(wpath))
        doc["output"] = {
            "version": f"{destination}:{trained['id']}",
            "weights": f"{base}/v1/weights/{sha}",
        }

    async def get(self, request: Request) -> Response:
        """GET /v1/trainings/{id}."""
        doc = self.runs.get("trainings", request.path_params["pid"], account_of(request))
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
            where=self.runs.owned_by(account_of(request)),
        )

    async def cancel(self, request: Request) -> Response:
        """POST /v1/trainings/{id}/cancel."""
        return await self.runs.cancel(request, "trainings", account_of(request))

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
