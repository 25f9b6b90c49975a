"""Models and versions: ``/v1/models…`` and the cogfleet push extension.

``POST /v1/models/{owner}/{name}/versions`` (cogfleet's, not Replicate's) takes a
tar.gz / tar / zip of a build folder and adds it as a version (id = content hash,
see ``_push.py``): 201 for a new version, 200 when the model already has it. Query
parameters say how the version runs (:class:`~cogfleet.runtime.RuntimeOptions`:
``cog_version``, ``environment``, ``python``, ``run_build_commands``); the version
records ``cog_version`` as Replicate does, its schema follows that Cog's rules, and
an ``isolated`` push builds (or finds) its environment before it answers, so a
requirement that does not resolve fails the push (422). The answer adds
``cogfleet``: the environment, its Python and server, and notes on what of cog.yaml
runs differently here (skipped ``build.run`` commands, ``gpu``). The same endpoint
with the JSON body ``{"from_version": "<id>"}`` copies an existing version (same id,
same build, same environment) onto the model ("promote").
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
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
    ApiError,
    base_url,
    now_iso,
    paginate,
    public,
    read_json,
)
from cogfleet.server._push import unpack_build, version_id_for
from cogfleet.server._runtimes import EnvironmentFailed, Runtimes
from cogfleet.server._state import Store

_MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION_RE = re.compile(r"^[0-9a-f]{64}$")


class Models:
    """Models, their versions, and version look-ups for the other resources."""

    def __init__(
        self, store: Store, state_dir: Path, page_size: int | None, runtimes: Runtimes
    ) -> None:
        self.store = store
        self.state_dir = state_dir
        self.page_size = page_size
        self.runtimes = runtimes
        self._push_locks: dict[str, asyncio.Lock] = {}

    def routes(self) -> list[Route]:
        """The routes of this resource family."""
        versions = "/v1/models/{owner}/{name}/versions"
        return [
            Route("/v1/models", self.index, methods=["GET", "QUERY"]),
            Route("/v1/models", self.create, methods=["POST"]),
            Route("/v1/models/{owner}/{name}", self.get, methods=["GET"]),
            Route("/v1/models/{owner}/{name}", self.delete, methods=["DELETE"]),
            Route(versions, self.versions_index, methods=["GET"]),
            Route(versions, self.versions_push, methods=["POST"]),
            Route(versions + "/{vid}", self.versions_get, methods=["GET"]),
            Route(versions + "/{vid}", self.versions_delete, methods=["DELETE"]),
        ]

    # ------------------------------------------------------------------ look-ups

    def model(self, owner: str, name: str) -> dict[str, Any]:
        """The stored model, or 404."""
        doc = self.store.get("models", f"{owner}/{name}")
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    def version(self, owner: str, name: str, vid: str) -> dict[str, Any]:
        """Version ``vid`` of model ``owner/name``, or 404."""
        self.model(owner, name)
        doc = self.store.get("versions", f"{owner}/{name}:{vid}")
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    def latest_version(self, owner: str, name: str) -> dict[str, Any] | None:
        """The newest version of model ``owner/name`` (None without versions)."""
        return self.store.first("versions", f"{owner}/{name}")

    def resolve_version_ref(self, ref: str) -> dict[str, Any]:
        """A version document from ``<id>``, ``owner/name:<id>`` or (latest) ``owner/name``."""
        invalid = ApiError(
            422,
            "The specified version does not exist "
            "(or perhaps you don't have permission to use it?)",
            "Invalid version or not permitted",
        )
        if ":" in ref:
            model, _, vid = ref.partition(":")
            doc = self.store.get("versions", f"{model}:{vid}")
        elif "/" in ref:
            doc = self.store.first("versions", ref)
        else:
            # A promoted version lives on several models; a bare id means the model it
            # was first pushed to, so promoting never changes what existing callers see.
            doc = self.store.find("versions", "id", ref) if _VERSION_RE.match(ref) else None
        if doc is None:
            raise invalid
        return doc

    # ------------------------------------------------------------------ models

    def _render_model(self, doc: dict[str, Any], base: str) -> dict[str, Any]:
        out = public(doc)
        out["url"] = f"{base}/{doc['owner']}/{doc['name']}"
        latest = self.latest_version(doc["owner"], doc["name"])
        out["latest_version"] = public(latest) if latest else None
        out["default_example"] = None
        return out

    async def index(self, request: Request) -> Response:
        """GET /v1/models (and QUERY /v1/models: search by substring)."""
        base = base_url(request)
        if request.method == "QUERY":
            needle = (await request.body()).decode(errors="replace").strip().lower()
            docs, _ = self.store.page("models", offset=0, limit=1000)
            hits = [
                self._render_model(d, base)
                for d in docs
                if needle in f"{d['owner']}/{d['name']} {d.get('description') or ''}".lower()
            ]
            return JSONResponse({"next": None, "previous": None, "results": hits})
        return paginate(
            request,
            self.store,
            "models",
            lambda d: self._render_model(d, base),
            size=self.page_size or 25,
        )

    async def create(self, request: Request) -> Response:
        """POST /v1/models."""
        body = await read_json(request)
        missing = [k for k in ("owner", "name", "visibility", "hardware") if not body.get(k)]
        if missing:
            raise ApiError(422, "".join(f"- {k} is required\n" for k in missing), INVALID)
        owner, name = str(body["owner"]), str(body["name"])
        if not _MODEL_NAME_RE.match(name) or not _MODEL_NAME_RE.match(owner.lower()):
            raise ApiError(
                422,
                f"- name: {name!r} must be lowercase letters, digits, '.', '_' or '-'\n",
                INVALID,
            )
        if body["visibility"] not in ("public", "private"):
            raise ApiError(422, '- visibility: must be one of "public", "private"\n', INVALID)
        if body["hardware"] not in HARDWARE_SKUS:
            raise ApiError(422, f"- hardware: unknown SKU {body['hardware']!r}\n", INVALID)
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
        return JSONResponse(self._render_model(doc, base_url(request)), status_code=201)

    async def get(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}."""
        p = request.path_params
        doc = self.model(p["owner"], p["name"])
        return JSONResponse(self._render_model(doc, base_url(request)))

    async def delete(self, request: Request) -> Response:
        """DELETE /v1/models/{owner}/{name}: 204; like Replicate, only without versions."""
        p = request.path_params
        key = f"{p['owner']}/{p['name']}"
        self.model(p["owner"], p["name"])
        if self.store.count("versions", key):
            raise ApiError(409, "Delete the model's versions before deleting the model", "Conflict")
        self.store.delete("models", key)
        return Response(status_code=204)

    # ------------------------------------------------------------------ versions

    async def versions_index(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/versions (newest first)."""
        p = request.path_params
        self.model(p["owner"], p["name"])
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
        return JSONResponse(public(self.version(p["owner"], p["name"], p["vid"])))

    async def versions_delete(self, request: Request) -> Response:
        """DELETE …/versions/{id}: 202 like Replicate (the 1.0.7 client then returns False)."""
        p = request.path_params
        self.version(p["owner"], p["name"], p["vid"])
        self.store.delete("versions", f"{p['owner']}/{p['name']}:{p['vid']}")
        return Response(status_code=202)

    async def versions_push(self, request: Request) -> Response:
        """POST …/versions: push a build archive, or promote with ``{"from_version": id}``."""
        p = request.path_params
        owner, name = p["owner"], p["name"]
        self.model(owner, name)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            body = await read_json(request)
            source_id = body.get("from_version")
            if not isinstance(source_id, str) or not source_id:
                raise ApiError(422, "- from_version is required\n", INVALID)
            source = self.store.find("versions", "id", source_id)
            if source is None:
                raise ApiError(
                    422,
                    f"The version {source_id} does not exist",
                    "Invalid version or not permitted",
                )
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
        self, owner: str, name: str, source: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Add version ``source`` to ``owner/name``; (the version, whether it is new)."""
        key = f"{owner}/{name}:{source['id']}"
        with self.store.transaction():
            existing = self.store.get("versions", key)
            if existing is not None:
                return existing, False
            doc = {
                "id": source["id"],
                "created_at": now_iso(),
                "cog_version": source["cog_version"],
                "openapi_schema": source["openapi_schema"],
                "_build": source["_build"],
                "_weights": source.get("_weights"),
                "_runtime": source.get("_runtime"),
                "_model": f"{owner}/{name}",
            }
            self.store.put("versions", key, doc, parent=f"{owner}/{name}")
        return doc, True

    async def _store_build(
        self, raw: bytes, options: RuntimeOptions
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Unpack an uploaded build content-addressed under builds/, generate its schema
        and make its environment; (the version source, what to tell the pusher)."""
        from cogfleet.schema import generate_schema, write_schema_file

        tmp = self.state_dir / "tmp" / uuid.uuid4().hex
        try:
            try:
                await asyncio.to_thread(unpack_build, raw, tmp)
                vid = await asyncio.to_thread(version_id_for, tmp, options)
            except (ValueError, ConfigError) as exc:
                raise ApiError(422, str(exc), "Invalid build") from exc
            lock = self._push_locks.setdefault(vid, asyncio.Lock())
            async with lock:
                dest = self.state_dir / "builds" / vid
                schema_file = dest / ".cog" / "openapi_schema.json"
                if not schema_file.is_file():
                    if dest.exists():
                        shutil.rmtree(dest)
                    tmp.rename(dest)
                    try:
                        # the document the pinned Cog's `cog build` writes (<= 0.16: the SDK's)
                        doc = await asyncio.to_thread(generate_schema, dest, options.cog_version)
                    except ConfigError as exc:
                        shutil.rmtree(dest, ignore_errors=True)
                        raise ApiError(422, str(exc), "Invalid build") from exc
                    await asyncio.to_thread(write_schema_file, dest, doc, options.cog_version)
                schema = json.loads(schema_file.read_text())
            try:
                prepared = await self.runtimes.prepare(dest, options)
            except EnvironmentFailed as exc:
                raise ApiError(422, str(exc), "Environment build failed") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        source = {
            "id": vid,
            "cog_version": options.cog_version,
            "openapi_schema": schema,
            "_build": vid,
            "_runtime": Runtimes.record(options, prepared),
        }
        return source, {"cog_version": options.cog_version, **prepared.info}
