"""Deployments: ``/v1/deployments…`` and deployment predictions.

Every create or update is a new release (``current_release.number`` grows); a
deployment's predictions run its current release's version.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cogfleet.server._account import account_doc
from cogfleet.server._core import (
    ACCOUNT_NAME,
    HARDWARE_SKUS,
    INVALID,
    NOT_FOUND,
    ApiError,
    now_iso,
    paginate,
    read_json,
)
from cogfleet.server._runs import Runs


class Deployments:
    """The deployments resource."""

    def __init__(self, runs: Runs, page_size: int | None) -> None:
        self.runs = runs
        self.store = runs.store
        self.page_size = page_size or 100

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        one = "/v1/deployments/{owner}/{name}"
        return [
            Route("/v1/deployments", self.index, methods=["GET"]),
            Route("/v1/deployments", self.create, methods=["POST"]),
            Route(one, self.get, methods=["GET"]),
            Route(one, self.update, methods=["PATCH"]),
            Route(one, self.delete, methods=["DELETE"]),
            Route(one + "/predictions", self.create_prediction, methods=["POST"]),
        ]

    def _deployment(self, owner: str, name: str) -> dict[str, Any]:
        doc = self.store.get("deployments", f"{owner}/{name}")
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    def _release(
        self, number: int, model: str, version: str, config: dict[str, Any]
    ) -> dict[str, Any]:
        if self.store.get("versions", f"{model}:{version}") is None:
            raise ApiError(
                422,
                f"The version {version} does not exist on model {model}",
                "Invalid version or not permitted",
            )
        hardware = config.get("hardware")
        if hardware not in HARDWARE_SKUS:
            raise ApiError(422, f"- hardware: unknown SKU {hardware!r}\n", INVALID)
        for key, upper in (("min_instances", 5), ("max_instances", 20)):
            value = config.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= upper:
                raise ApiError(422, f"- {key}: must be an integer from 0 to {upper}\n", INVALID)
        return {
            "number": number,
            "model": model,
            "version": version,
            "created_at": now_iso(),
            "created_by": account_doc(),
            "configuration": {
                "hardware": hardware,
                "min_instances": config["min_instances"],
                "max_instances": config["max_instances"],
            },
        }

    async def create(self, request: Request) -> Response:
        """POST /v1/deployments (owner = the account)."""
        body = await read_json(request)
        fields = ("name", "model", "version", "hardware", "min_instances", "max_instances")
        missing = [k for k in fields if body.get(k) is None]
        if missing:
            raise ApiError(422, "".join(f"- {k} is required\n" for k in missing), INVALID)
        name = str(body["name"]).split("/")[-1]
        key = f"{ACCOUNT_NAME}/{name}"
        with self.store.transaction():
            if self.store.get("deployments", key) is not None:
                raise ApiError(409, f"A deployment named {key} already exists", "Conflict")
            doc = {
                "owner": ACCOUNT_NAME,
                "name": name,
                "current_release": self._release(1, body["model"], body["version"], body),
            }
            self.store.put("deployments", key, doc)
        return JSONResponse(doc, status_code=201)

    async def get(self, request: Request) -> Response:
        """GET /v1/deployments/{owner}/{name}."""
        p = request.path_params
        return JSONResponse(self._deployment(p["owner"], p["name"]))

    async def update(self, request: Request) -> Response:
        """PATCH /v1/deployments/{owner}/{name}: every update is a new release."""
        p = request.path_params
        body = await read_json(request)
        allowed = {"version", "hardware", "min_instances", "max_instances"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(
                422,
                "".join(f"- Additional property {k} is not allowed\n" for k in unknown),
                INVALID,
            )
        with self.store.transaction():
            doc = self._deployment(p["owner"], p["name"])
            current = doc["current_release"]
            config = {
                **current["configuration"],
                **{k: v for k, v in body.items() if k != "version"},
            }
            doc["current_release"] = self._release(
                int(current["number"]) + 1,
                current["model"],
                body.get("version", current["version"]),
                config,
            )
            self.store.put("deployments", f"{p['owner']}/{p['name']}", doc)
        return JSONResponse(doc)

    async def delete(self, request: Request) -> Response:
        """DELETE /v1/deployments/{owner}/{name}: 204."""
        p = request.path_params
        self._deployment(p["owner"], p["name"])
        self.store.delete("deployments", f"{p['owner']}/{p['name']}")
        return Response(status_code=204)

    async def index(self, request: Request) -> Response:
        """GET /v1/deployments (newest first)."""
        return paginate(request, self.store, "deployments", lambda d: d, size=self.page_size)

    async def create_prediction(self, request: Request) -> Response:
        """POST /v1/deployments/{owner}/{name}/predictions (the current release's version)."""
        p = request.path_params
        dep = self._deployment(p["owner"], p["name"])
        release = dep["current_release"]
        version = self.store.get("versions", f"{release['model']}:{release['version']}")
        if version is None:
            raise ApiError(422, "The deployment's version no longer exists", "Invalid version")
        return await self.runs.create(
            request, version, await read_json(request), deployment=f"{p['owner']}/{p['name']}"
        )
