"""Models and versions: ``/v1/models…`` and the cogfleet push extension.

A token sees public models and the private models of its account and
organizations, and creates, updates and deletes models only under those. A model
can be deleted while it is private and has no versions; a version of a private
model while no deployment, training or prediction in flight uses it (its
predictions and their output files go with it, as on Replicate). ``owner/name``
predictions (without a version) run only on official models.

``POST /v1/models/{owner}/{name}/versions`` (cogfleet's, not Replicate's) takes a
tar.gz / tar / zip of a build folder and adds it as a version: 201 for a new
version, 200 when the model already has it. Query parameters say how the version
runs (:class:`~cogfleet.runtime.RuntimeOptions`: ``cog_version``, ``environment``,
``python``, ``run_build_commands``); the version records ``cog_version`` as Replicate
does, its schema follows that Cog's rules, and an ``isolated`` push builds (or
finds) its environment before it answers, so a requirement that does not resolve
fails the push (422). The answer adds ``cogfleet``: the environment, its Python and
server, and notes on what of cog.yaml runs differently here (skipped ``build.run``
commands, ``gpu``). The build is stored once under a hash of its content and those
options; the version id is a hash of the model and that build, so each model has
its own record of a build and a bare version id names one model. The same endpoint
with the JSON body ``{"from_version": "<id>"}`` adds an existing version's build
(same environment) to the model ("promote").
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cogfleet._errors import ConfigError
from cogfleet.runtime import RuntimeOptions
from cogfleet.server._core import (
    HARDWARE_SKUS,
    INVALID,
    NOT_FOUND,
    Account,
    ApiError,
    account_of,
    base_url,
    now_iso,
    paginate,
    public,
    read_json,
)
from cogfleet.server._push import build_id_for, unpack_build, version_id
from cogfleet.server._runtimes import EnvironmentFailed, Prepared, Runtimes
from cogfleet.server._state import Condition, Order, Store
from cogfleet.server._validation import MODEL_CREATE, MODEL_UPDATE, PROMOTE, check_body, invalid

_MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION_RE = re.compile(r"^[0-9a-f]{64}$")
_OUTPUT_KEY_RE = re.compile(r"^[0-9a-z]{26}-[A-Za-z0-9_-]+$")
_IN_FLIGHT: list[Condition] = [("status", "in", ["starting", "processing"])]
NOT_PERMITTED = ApiError(
    422,
    "The specified version does not exist (or perhaps you don't have permission to use it?)",
    "Invalid version or not permitted",
)

# Renders a prediction for a model's examples (the run module's renderer).
RenderRun = Callable[[dict[str, Any], str], dict[str, Any]]


def forbidden(account: Account, owner: str) -> ApiError:
    """403 for writing under an owner the token may not write to."""
    return ApiError(
        403,
        f"Your token acts as {account.username}, which cannot write models under {owner}",
        "Forbidden",
    )


class Models:
    """Models, their versions, and version look-ups for the other resources."""

    def __init__(
        self,
        store: Store,
        state_dir: Path,
        page_size: int | None,
        official: frozenset[str],
        render_run: RenderRun,
        runtimes: Runtimes,
    ) -> None:
        self.store = store
        self.runtimes = runtimes
        self.state_dir = state_dir
        self.page_size = page_size
        self.official = official
        self.render_run = render_run
        self._push_locks: dict[str, asyncio.Lock] = {}

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        one = "/v1/models/{owner}/{name}"
        versions = one + "/versions"
        return [
            Route("/v1/models", self.index, methods=["GET", "QUERY"]),
            Route("/v1/models", self.create, methods=["POST"]),
            Route(one, self.get, methods=["GET"]),
            Route(one, self.update, methods=["PATCH"]),
            Route(one, self.delete, methods=["DELETE"]),
            Route(one + "/readme", self.readme, methods=["GET"]),
            Route(one + "/examples", self.examples, methods=["GET"]),
            Route(versions, self.versions_index, methods=["GET"]),
            Route(versions, self.versions_push, methods=["POST"]),
            Route(versions + "/{vid}", self.versions_get, methods=["GET"]),
            Route(versions + "/{vid}", self.versions_delete, methods=["DELETE"]),
        ]

    # ------------------------------------------------------------------ look-ups

    def model(self, owner: str, name: str, account: Account) -> dict[str, Any]:
        """The model if ``account`` may see it, else 404 (as for a missing one)."""
        doc = self.store.get("models", f"{owner}/{name}")
        if doc is None or not account.can_see(doc):
            raise ApiError(404, NOT_FOUND)
        return doc

    def writable(self, owner: str, name: str, account: Account) -> dict[str, Any]:
        """The model if ``account`` may change it (404 when unseen, 403 when read-only)."""
        doc = self.model(owner, name, account)
        if not account.can_write(owner):
            raise forbidden(account, owner)
        return doc

    def is_official(self, doc: dict[str, Any]) -> bool:
        """Marked official (``--official``, or the models cogfleet pushes as official)."""
        return f"{doc['owner']}/{doc['name']}" in self.official

    def version(self, owner: str, name: str, vid: str, account: Account) -> dict[str, Any]:
        """Version ``vid`` of model ``owner/name``, or 404."""
        self.model(owner, name, account)
        doc = self.store.get("versions", f"{owner}/{name}:{vid}")
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    def latest_version(self, owner: str, name: str) -> dict[str, Any] | None:
        """The newest version of model ``owner/name`` (None without versions)."""
        return self.store.first("versions", f"{owner}/{name}")

    def official_version(self, owner: str, name: str, account: Account) -> dict[str, Any]:
        """The version an ``owner/name`` prediction runs: official models only."""
        doc = self.store.get("models", f"{owner}/{name}")
        if doc is None or not account.can_see(doc):
            raise ApiError(404, NOT_FOUND)
        if not self.is_official(doc):
            raise ApiError(
                422,
                f"{owner}/{name} is not an official model: give a version "
                f"(owner/name:version, or the version id)",
                "Invalid version or not permitted",
            )
        version = self.latest_version(owner, name)
        if version is None:
            raise ApiError(404, f"The model {owner}/{name} has no versions")
        return version

    def resolve_version_ref(self, ref: str, account: Account) -> dict[str, Any]:
        """A version from ``<id>``, ``owner/name:<id>`` or (official models) ``owner/name``."""
        # Every prediction resolves one: the store's shared (read-only) documents.
        if ":" in ref:
            model, _, vid = ref.partition(":")
            doc = self.store.shared("versions", f"{model}:{vid}")
        elif "/" in ref:
            owner, _, name = ref.partition("/")
            if "/" in name:
                raise NOT_PERMITTED
            return self.official_version(owner, name, account)
        else:
            doc = self.store.shared("versions", ref, "id") if _VERSION_RE.match(ref) else None
        if doc is None:
            raise NOT_PERMITTED
        model_doc = self.store.shared("models", doc["_model"])
        if model_doc is None or not account.can_see(model_doc):
            raise NOT_PERMITTED
        return doc

    # ------------------------------------------------------------------ models

    def render_model(self, doc: dict[str, Any], base: str) -> dict[str, Any]:
        """A model as the API returns it."""
        out = public(doc)
        # The hardware a model was created with is not part of Replicate's model object.
        out.pop("hardware", None)
        key = f"{doc['owner']}/{doc['name']}"
        out["url"] = f"{base}/{key}"
        out["is_official"] = self.is_official(doc)
        out["run_count"] = self.run_count(key, doc["created_at"])
        latest = self.latest_version(doc["owner"], doc["name"])
        out["latest_version"] = public(latest) if latest else None
        examples, _ = self.store.page("predictions", limit=1, where=self._examples(key))
        out["default_example"] = self.render_run(examples[0], base) if examples else None
        return out

    def run_count(self, model: str, created_at: str) -> int:
        """The model's predictions and trainings: counted, not kept, so that creating a
        run writes nothing to its model (those made before a deleted model of the same
        name was created again are not its)."""
        where = [[("model", "=", model)], [("created_at", ">", created_at)]]
        return sum(self.store.count(kind, where=where) for kind in ("predictions", "trainings"))

    @staticmethod
    def _examples(model: str) -> list[list[Condition]]:
        # A model's examples: its succeeded predictions made by a token of its owner.
        return [[("model", "=", model)], [("status", "=", "succeeded")], [("_by_owner", "=", 1)]]

    @staticmethod
    def visible(account: Account) -> list[list[Condition]]:
        """The store condition for the models ``account`` may see."""
        if account.permissive:
            return []
        return [[("visibility", "=", "public"), ("owner", "in", sorted(account.owners))]]

    def search(self, text: str, account: Account, limit: int = 1000) -> list[dict[str, Any]]:
        """Models whose name or description holds ``text`` (case-insensitive), visible ones."""
        needle = text.strip().lower()
        docs, _ = self.store.page("models", limit=limit, where=self.visible(account))
        return [
            d
            for d in docs
            if needle in f"{d['owner']}/{d['name']} {d.get('description') or ''}".lower()
        ]

    async def index(self, request: Request) -> Response:
        """GET /v1/models (``sort_by``, ``sort_direction``) and QUERY /v1/models (search)."""
        base = base_url(request)
        account = account_of(request)
        if request.method == "QUERY":
            text = (await request.body()).decode(errors="replace")
            hits = [self.render_model(d, base) for d in self.search(text, account)]
            return JSONResponse({"next": None, "previous": None, "results": hits})
        order, ascending = _model_order(request)
        return paginate(
            request,
            self.store,
            "models",
            lambda d: self.render_model(d, base),
            size=self.page_size or 25,
            where=self.visible(account),
            order=order,
            ascending=ascending,
        )

    async def create(self, request: Request) -> Response:
        """POST /v1/models."""
        body = await read_json(request)
        check_body(body, MODEL_CREATE)
        owner, name = body["owner"], body["name"]
        problems = []
        if not _OWNER_RE.match(owner):
            problems.append(("pattern", "owner", "Does not match pattern '^[A-Za-z0-9._-]+$'"))
        if not _MODEL_NAME_RE.match(name):
            problems.append(
                ("pattern", "name", "must be lowercase letters, digits, '.', '_' or '-'")
            )
        if body["hardware"] not in HARDWARE_SKUS:
            problems.append(("enum", "hardware", f"unknown SKU {body['hardware']!r}"))
        if problems:
            raise invalid(problems)
        account = account_of(request)
        if not account.can_write(owner):
            raise forbidden(account, owner)
        key = f"{owner}/{name}"
        with self.store.transaction():
            if self.store.get("models", key) is not None:
                raise ApiError(409, f"A model named {key} already exists", "Conflict")
            doc = {
                "owner": owner,
                "name": name,
                "description": body.get("description"),
                "visibility": body["visibility"],
                "hardware": body["hardware"],
                "github_url": body.get("github_url"),
                "paper_url": body.get("paper_url"),
                "license_url": body.get("license_url"),
                "cover_image_url": body.get("cover_image_url"),
                "run_count": 0,
                "created_at": now_iso(),
            }
            self.store.put("models", key, doc)
        return JSONResponse(self.render_model(doc, base_url(request)), status_code=201)

    async def get(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}."""
        p = request.path_params
        doc = self.model(p["owner"], p["name"], account_of(request))
        return JSONResponse(self.render_model(doc, base_url(request)))

    async def update(self, request: Request) -> Response:
        """PATCH /v1/models/{owner}/{name} (models.update): the given fields only."""
        p = request.path_params
        body = await read_json(request)
        check_body(body, MODEL_UPDATE)
        key = f"{p['owner']}/{p['name']}"
        with self.store.transaction():
            doc = self.writable(p["owner"], p["name"], account_of(request))
            for field in ("description", "github_url", "paper_url", "license_url"):
                if field in body:
                    doc[field] = body[field]
            # Kept, but not part of Replicate's model object (its spec has no such field).
            if "weights_url" in body:
                doc["_weights_url"] = body["weights_url"]
            if "readme" in body:
                doc["_readme"] = body["readme"] or ""
            self.store.put("models", key, doc)
        return JSONResponse(self.render_model(doc, base_url(request)))

    async def readme(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/readme: the README's Markdown as text/plain
        (404 for a model without one)."""
        p = request.path_params
        doc = self.model(p["owner"], p["name"], account_of(request))
        if not doc.get("_readme"):
            raise ApiError(404, NOT_FOUND)
        return Response(doc["_readme"], media_type="text/plain; charset=utf-8")

    async def examples(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/examples: predictions that show the model's use."""
        p = request.path_params
        self.model(p["owner"], p["name"], account_of(request))
        base = base_url(request)
        return paginate(
            request,
            self.store,
            "predictions",
            lambda d: self.render_run(d, base),
            size=self.page_size or 100,
            where=self._examples(f"{p['owner']}/{p['name']}"),
        )

    async def delete(self, request: Request) -> Response:
        """DELETE /v1/models/{owner}/{name}: 204; only private models without versions
        (nor one a training in flight will add a version to)."""
        p = request.path_params
        key = f"{p['owner']}/{p['name']}"
        with self.store.transaction():
            doc = self.writable(p["owner"], p["name"], account_of(request))
            if doc.get("visibility") != "private":
                raise ApiError(409, "Only private models can be deleted", "Conflict")
            if self.store.count("versions", key):
                raise ApiError(
                    409, "Delete the model's versions before deleting the model", "Conflict"
                )
            training, _ = self.store.page(
                "trainings", limit=1, where=[[("destination", "=", key)], _IN_FLIGHT]
            )
            if training:
                # Its version would be added to a model that is gone.
                raise ApiError(
                    409, f"Training {training[0]['id']} will add a version to it", "Conflict"
                )
            self.store.delete("models", key)
        return Response(status_code=204)

    # ------------------------------------------------------------------ versions

    async def versions_index(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/versions (newest first)."""
        p = request.path_params
        self.model(p["owner"], p["name"], account_of(request))
        return paginate(
            request,
            self.store,
            "versions",
            public,
            size=self.page_size or 100,
            parent=f"{p['owner']}/{p['name']}",
        )

    async def versions_get(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/versions/{id}."""
        p = request.path_params
        doc = self.version(p["owner"], p["name"], p["vid"], account_of(request))
        return JSONResponse(public(doc))

    async def versions_delete(self, request: Request) -> Response:
        """DELETE …/versions/{id}: 202 like Replicate (the 1.0.7 client then returns False).

        As on Replicate, only versions of private models, and none that a deployment
        or a training in flight uses; its predictions are deleted with it. One with a
        prediction in flight is refused too (that prediction would outlive it).
        """
        p = request.path_params
        key = f"{p['owner']}/{p['name']}"
        with self.store.transaction():
            model = self.writable(p["owner"], p["name"], account_of(request))
            self.version(p["owner"], p["name"], p["vid"], account_of(request))
            if model.get("visibility") != "private":
                raise ApiError(409, "Only versions of private models can be deleted", "Conflict")
            training, _ = self.store.page(
                "trainings",
                limit=1,
                where=[
                    [("model", "=", key)],
                    [("version", "=", p["vid"])],
                    _IN_FLIGHT,
                ],
            )
            if training:
                raise ApiError(
                    409, f"The version is used by training {training[0]['id']}", "Conflict"
                )
            users, _ = self.store.page(
                "deployments",
                limit=1,
                where=[
                    [("current_release.model", "=", key)],
                    [("current_release.version", "=", p["vid"])],
                ],
            )
            if users:
                dep = users[0]
                raise ApiError(
                    409,
                    f"The version is used by deployment {dep['owner']}/{dep['name']}",
                    "Conflict",
                )
            running, _ = self.store.page(
                "predictions", limit=1, where=[*self._of_version(key, p["vid"]), _IN_FLIGHT]
            )
            if running:
                raise ApiError(
                    409, f"The version is running prediction {running[0]['id']}", "Conflict"
                )
            self.store.delete("versions", f"{key}:{p['vid']}")
            outputs = self._delete_predictions(key, p["vid"])
        # As on Replicate, its predictions go with it, output files included.
        for folder in outputs:
            shutil.rmtree(self.state_dir / "outputs" / folder, ignore_errors=True)
        return Response(status_code=202)

    @staticmethod
    def _of_version(model: str, vid: str) -> list[list[Condition]]:
        return [[("model", "=", model)], [("version", "=", vid)]]

    def _delete_predictions(self, model: str, vid: str) -> list[str]:
        """Delete the predictions of version ``vid`` of ``model``; their output folders."""
        folders: list[str] = []
        while True:
            docs, _ = self.store.page("predictions", limit=500, where=self._of_version(model, vid))
            if not docs:
                return folders
            for doc in docs:
                self.store.delete("predictions", doc["id"])
                if isinstance(doc.get("_key"), str) and _OUTPUT_KEY_RE.match(doc["_key"]):
                    folders.append(doc["_key"])

    async def versions_push(self, request: Request) -> Response:
        """POST …/versions: push a build archive, or promote with ``{"from_version": id}``."""
        p = request.path_params
        owner, name = p["owner"], p["name"]
        account = account_of(request)
        self.writable(owner, name, account)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            body = await read_json(request)
            check_body(body, PROMOTE)
            source = self.resolve_version_ref(body["from_version"], account)
            return self._added(*self.add_version(owner, name, source))
        try:
            options = RuntimeOptions.from_query(request.query_params)
        except ValueError as exc:
            raise ApiError(422, str(exc), INVALID) from None
        raw = await request.body()
        if not raw:
            raise ApiError(400, "The request body must be a tar.gz, tar or zip of a build folder")
        build, info = await self._store_build(raw, options)
        return self._added(*self.add_version(owner, name, build), extra={"cogfleet": info})

    @staticmethod
    def _added(
        doc: dict[str, Any], created: bool, extra: dict[str, Any] | None = None
    ) -> JSONResponse:
        return JSONResponse(public(doc) | (extra or {}), status_code=201 if created else 200)

    def add_version(
        self, owner: str, name: str, source: dict[str, Any], *, weights: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Add ``source``'s build (with ``weights``) to ``owner/name``; (version, is new)."""
        model = f"{owner}/{name}"
        weights = weights if weights is not None else source.get("_weights")
        content = source["_build"] if not weights else f"{source['_build']}+{weights}"
        vid = version_id(model, content)
        key = f"{model}:{vid}"
        with self.store.transaction():
            existing = self.store.get("versions", key)
            if existing is not None:
                return existing, False
            doc = {
                "id": vid,
                "created_at": now_iso(),
                "cog_version": source["cog_version"],
                "openapi_schema": source["openapi_schema"],
                "_build": source["_build"],
                "_weights": weights,
                "_runtime": source.get("_runtime"),
                "_model": model,
            }
            self.store.put("versions", key, doc, parent=model)
        return doc, True

    async def _prepare(self, build_dir: Path, options: RuntimeOptions) -> Prepared:
        try:
            return await self.runtimes.prepare(build_dir, options)
        except EnvironmentFailed as exc:
            raise ApiError(422, str(exc), "Environment build failed") from None

    async def _store_build(
        self, raw: bytes, options: RuntimeOptions
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Unpack an uploaded build content-addressed under builds/, generate its schema
        and make its environment; (the version source, what to tell the pusher)."""
        from cogfleet.schema import ModelCodeNeeded, generate_schema, write_schema_file

        tmp = self.state_dir / "tmp" / uuid.uuid4().hex
        prepared: Prepared | None = None
        try:
            try:
                await asyncio.to_thread(unpack_build, raw, tmp)
                build = await asyncio.to_thread(build_id_for, tmp, options)
            except (ValueError, ConfigError) as exc:
                raise ApiError(422, str(exc), "Invalid build") from exc
            lock = self._push_locks.setdefault(build, asyncio.Lock())
            async with lock:
                dest = self.state_dir / "builds" / build
                schema_file = dest / ".cog" / "openapi_schema.json"
                if not schema_file.is_file():
                    if dest.exists():
                        shutil.rmtree(dest)
                    tmp.rename(dest)
                    try:
                        # the document the pinned Cog's `cog build` writes (<= 0.16: the SDK's)
                        try:
                            doc = await asyncio.to_thread(
                                generate_schema, dest, options.cog_version
                            )
                        except ModelCodeNeeded as exc:
                            # Cog <= 0.16 ran the model's code: so does its SDK here, in
                            # the environment the version runs in (built once, for both)
                            prepared = await self._prepare(dest, options)
                            doc = await self.runtimes.sdk_schema(dest, options, prepared, exc)
                    except ConfigError as exc:
                        shutil.rmtree(dest, ignore_errors=True)
                        raise ApiError(422, str(exc), "Invalid build") from exc
                    await asyncio.to_thread(write_schema_file, dest, doc, options.cog_version)
                schema = json.loads(schema_file.read_text())
            if prepared is None:
                prepared = await self._prepare(dest, options)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        source = {
            "cog_version": options.cog_version,
            "openapi_schema": schema,
            "_build": build,
            "_runtime": Runtimes.record(options, prepared),
        }
        return source, {"cog_version": options.cog_version, **prepared.info}


_SORT_BY: dict[str, Order] = {
    "latest_version_created_at": "latest_child",
    "model_created_at": "created",
}


def _model_order(request: Request) -> tuple[Order, bool]:
    """``sort_by`` (default ``latest_version_created_at``) and ``sort_direction``
    (default ``desc``) of ``GET /v1/models``, as store ordering."""
    params = request.query_params
    sort_by = params.get("sort_by", "latest_version_created_at")
    direction = params.get("sort_direction", "desc")
    problems = []
    if sort_by not in _SORT_BY:
        choices = ", ".join(f'"{k}"' for k in _SORT_BY)
        problems.append(("enum", "sort_by", f"sort_by must be one of the following: {choices}"))
    if direction not in ("asc", "desc"):
        problems.append(
            ("enum", "sort_direction", 'sort_direction must be one of the following: "asc", "desc"')
        )
    if problems:
        raise invalid(problems)
    return _SORT_BY[sort_by], direction == "asc"
