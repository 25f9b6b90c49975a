"""Deployments: ``/v1/deployments…`` and deployment predictions.

Deployments belong to the token's account. Every create or update is a new release
(``current_release.number`` grows); a deployment's predictions run its current
release's version, which therefore cannot be deleted while the deployment uses it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cogfleet.server._core import (
    HARDWARE_SKUS,
    NOT_FOUND,
    Account,
    ApiError,
    account_of,
    now_iso,
    paginate,
    read_json,
)
from cogfleet.server._models import Models
from cogfleet.server._runs import Runs
from cogfleet.server._validation import (
    DEPLOYMENT_CREATE,
    DEPLOYMENT_UPDATE,
    MODEL_PREDICTION,
    check_body,
    invalid,
)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class Deployments:
    """The deployments resource (each account sees and changes its own)."""

    def __init__(self, runs: Runs, models: Models, page_size: int | None) -> None:
        self.runs = runs
        self.models = models
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

    def _deployment(self, owner: str, name: str, account: Account) -> dict[str, Any]:
        doc = self.store.get("deployments", f"{owner}/{name}")
        if doc is None or not account.can_write(owner):
            raise ApiError(404, NOT_FOUND)
        return doc

    def _release(
        self,
        number: int,
        model: str,
        version: str,
        config: dict[str, Any],
        account: Account,
    ) -> dict[str, Any]:
        doc = self.store.get("models", model)
        if (
            doc is None
            or not account.can_see(doc)
            or self.store.get("versions", f"{model}:{version}") is None
        ):
            raise ApiError(
                422,
                f"The version {version} does not exist on model {model} "
                "(or perhaps you don't have permission to use it?)",
                "Invalid version or not permitted",
            )
        hardware = config.get("hardware")
        if hardware not in HARDWARE_SKUS:
            raise invalid([("enum", "hardware", f"unknown SKU {hardware!r}")])
        if config["min_instances"] > config["max_instances"]:
            raise invalid(
                [("number_lte", "min_instances", "Must be less than or equal to max_instances")]
            )
        return {
            "number": number,
            "model": model,
            "version": version,
            "created_at": now_iso(),
            "created_by": account.doc(),
            "configuration": {
                "hardware": hardware,
                "min_instances": config["min_instances"],
                "max_instances": config["max_instances"],
            },
        }

    async def create(self, request: Request) -> Response:
        """POST /v1/deployments (under the token's account): 200, as Replicate's spec has it."""
        body = await read_json(request)
        check_body(body, DEPLOYMENT_CREATE)
        account = account_of(request)
        name = body["name"].split("/")[-1]
        if not _NAME_RE.match(name):
            raise invalid(
                [("pattern", "name", "must be lowercase letters, digits, '.', '_' or '-'")]
            )
        key = f"{account.username}/{name}"
        with self.store.transaction():
            if self.store.get("deployments", key) is not None:
                raise ApiError(409, f"A deployment named {key} already exists", "Conflict")
            doc = {
                "owner": account.username,
                "name": name,
                "current_release": self._release(1, body["model"], body["version"], body, account),
            }
            self.store.put("deployments", key, doc)
        return JSONResponse(doc)

    async def get(self, request: Request) -> Response:
        """GET /v1/deployments/{owner}/{name}."""
        p = request.path_params
        return JSONResponse(self._deployment(p["owner"], p["name"], account_of(request)))

    async def update(self, request: Request) -> Response:
        """PATCH /v1/deployments/{owner}/{name}: every update is a new release."""
        p = request.path_params
        body = await read_json(request)
        check_body(body, DEPLOYMENT_UPDATE)
        account = account_of(request)
        with self.store.transaction():
            doc = self._deployment(p["owner"], p["name"], account)
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
                account,
            )
            self.store.put("deployments", f"{p['owner']}/{p['name']}", doc)
        return JSONResponse(doc)

    async def delete(self, request: Request) -> Response:
        """DELETE /v1/deployments/{owner}/{name}: 204."""
        p = request.path_params
        self._deployment(p["owner"], p["name"], account_of(request))
        self.store.delete("deployments", f"{p['owner']}/{p['name']}")
        return Response(status_code=204)

    async def index(self, request: Request) -> Response:
        """GET /v1/deployments (newest first)."""
        account = account_of(request)
        where = [] if account.permissive else [[("owner", "in", sorted(account.owners))]]
        return paginate(
            request, self.store, "deployments", lambda d: d, size=self.page_size, where=where
        )

    async def create_prediction(self, request: Request) -> Response:
        """POST /v1/deployments/{owner}/{name}/predictions (the current release's version)."""
        p = request.path_params
        account = account_of(request)
        dep = self._deployment(p["owner"], p["name"], account)
        body = await read_json(request)
        check_body(body, MODEL_PREDICTION)
        release = dep["current_release"]
        version = self.store.get("versions", f"{release['model']}:{release['version']}")
        if version is None:
            raise ApiError(422, "The deployment's version no longer exists", "Invalid version")
        return await self.runs.create(
            request,
            version,
            body,
            account=account,
            deployment=f"{p['owner']}/{p['name']}",
        )
