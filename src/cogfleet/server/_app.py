"""The local Replicate-compatible HTTP API (starlette).

Everything lives under ``/v1`` with the shapes the official ``replicate`` client
1.0.7 requires (see the project's reference notes on the Replicate HTTP API).
Predictions and trainings run real Cog predictors through
:class:`cogfleet.server._runner.RunnerPool`; resources persist in SQLite under the
state directory.

cogfleet extensions (not part of Replicate's API):

* ``POST /v1/models/{owner}/{name}/versions`` with a tar.gz / tar / zip body of a
  build folder pushes it as a version (id = content hash, see ``_push.py``);
  201 for a new version, 200 when the model already has it.
* the same endpoint with the JSON body ``{"from_version": "<id>"}`` copies an
  existing version (same id, same build) onto the model ("promote").
* ``GET /v1/weights/{sha256}`` serves the weights file a training produced.

Webhooks: ``webhook`` / ``webhook_events_filter`` (start, output, logs, completed;
intermediate events at most every 500 ms) and the legacy ``webhook_completed`` get
the prediction JSON, signed like Replicate (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) with the secret from ``GET /v1/webhooks/default/secret``.

Streaming: predictions of versions whose Output is an iterator get ``urls.stream``,
a ``text/event-stream`` of ``output`` / ``logs`` / ``error`` / ``done`` events (each
with an ``id:`` line, as the 1.0.7 client needs).

Not implemented: collections, ``models.update``, ``Cancel-After``.

Authentication: ``Authorization: Bearer <token>`` (or ``Token <token>``). With a
configured token it must match; without one any non-empty token is accepted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import importlib.metadata
import json
import logging
import mimetypes
import re
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cogfleet._errors import ConfigError
from cogfleet.server._push import unpack_build, version_id_for
from cogfleet.server._state import Store

log = logging.getLogger("cogfleet.server")

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
NOT_FOUND = "The requested resource could not be found."
ACCOUNT_NAME = "local"
HARDWARE = [
    {"sku": "cpu", "name": "CPU"},
    {"sku": "gpu-t4", "name": "Nvidia T4 GPU"},
    {"sku": "gpu-l40s", "name": "Nvidia L40S GPU"},
    {"sku": "gpu-a40-small", "name": "Nvidia A40 GPU"},
    {"sku": "gpu-a40-large", "name": "Nvidia A40 (Large) GPU"},
    {"sku": "gpu-a100-large", "name": "Nvidia A100 (80GB) GPU"},
    {"sku": "gpu-h100", "name": "Nvidia H100 GPU"},
]
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PREFER_RE = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$")
_FILE_URL_RE = re.compile(r"/v1/files/([A-Za-z0-9_-]+)(?:/download)?(?:\?.*)?$")
_MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_VERSION_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class ServerConfig:
    """Settings of one server instance (the ``cogfleet serve`` flags)."""

    state_dir: Path
    token: str | None = None
    latency: float = 0.0
    fail_rate: float = 0.0
    fail_seed: int | None = None
    rate_limit: float | None = None
    idle_timeout: float = 300.0
    page_size: int | None = None


class ApiError(Exception):
    """An error answered as ``application/problem+json``."""

    def __init__(self, status: int, detail: str, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.extra = extra


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> JSONResponse:
    """An RFC 7807 problem response (``{title, detail, status}``)."""
    body: dict[str, Any] = {"detail": detail, "status": status}
    if title:
        body["title"] = title
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def now_iso() -> str:
    """The current UTC time as RFC 3339 with ``Z``."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_id() -> str:
    """A 26-character lowercase id like Replicate's prediction ids."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def cog_version() -> str:
    """The Cog SDK version the local runner uses (reported as ``cog_version``)."""
    try:
        return importlib.metadata.version("cog")
    except importlib.metadata.PackageNotFoundError:
        return "0.23.1"


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    # Keys starting with "_" are server-internal (build ids, weights paths).
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class AuthMiddleware:
    """401 problem+json unless the request carries an accepted token."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = ""
        for key, value in scope["headers"]:
            if key == b"authorization":
                header = value.decode("latin-1")
        scheme, _, given = header.partition(" ")
        given = given.strip()
        ok = scheme.lower() in ("bearer", "token") and bool(given)
        if ok and self.token is not None:
            ok = secrets.compare_digest(given.encode(), self.token.encode())
        if not ok:
            resp = problem(401, "You did not pass a valid authentication token", "Unauthenticated")
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


class LocalApi:
    """The server's state and request handlers; :meth:`asgi` builds the ASGI app."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir)
        for sub in ("builds", "files", "weights", "tmp", "logs"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.store = Store(self.state_dir / "state.sqlite3")
        self.pool: Any = None
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._push_locks: dict[str, asyncio.Lock] = {}
        self._validators: dict[tuple[str, str], jsonschema.Draft7Validator | None] = {}
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._hook_chain: dict[str, asyncio.Task[None]] = {}
        self._last_hook: dict[str, float] = {}
        self._changed: dict[str, asyncio.Condition] = {}
        self._generation: dict[str, int] = {}
        self._recover()

    # ------------------------------------------------------------------ lifecycle

    def _recover(self) -> None:
        """Mark work that was in flight when the previous server stopped as failed."""
        for kind in ("predictions", "trainings"):
            for doc in self.store.unfinished(kind):
                doc["status"] = "failed"
                doc["error"] = "The local server stopped before this finished."
                doc["completed_at"] = now_iso()
                self.store.put(kind, doc["id"], doc)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Start the runner pool; on exit stop all work and every coglet process."""
        from cogfleet.server._runner import RunnerPool

        self.pool = RunnerPool(
            idle_timeout=self.config.idle_timeout, log_dir=self.state_dir / "logs"
        )
        try:
            yield
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._hook_tasks:
                # Give final webhooks a moment, then drop the rest.
                await asyncio.wait(list(self._hook_tasks), timeout=2)
                for hook in list(self._hook_tasks):
                    hook.cancel()
                await asyncio.gather(*self._hook_tasks, return_exceptions=True)
            await self.pool.close()
            self.store.close()

    def asgi(self) -> ASGIApp:
        """The ASGI application: routes wrapped in auth and fault-injection middleware."""
        from cogfleet.server._faults import FaultInjection

        app = Starlette(routes=self._routes(), lifespan=self.lifespan)
        app.add_exception_handler(ApiError, self._api_error)  # type: ignore[arg-type]
        wrapped: ASGIApp = AuthMiddleware(app, self.config.token)
        if self.config.fail_rate or self.config.rate_limit:
            wrapped = FaultInjection(
                wrapped,
                fail_rate=self.config.fail_rate,
                seed=self.config.fail_seed,
                rate_limit=self.config.rate_limit,
            )
        return wrapped

    @staticmethod
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return problem(exc.status, exc.detail, exc.title, **exc.extra)

    def _routes(self) -> list[Route]:
        r = Route
        return [
            r("/v1/account", self.account, methods=["GET"]),
            r("/v1/hardware", self.hardware, methods=["GET"]),
            r("/v1/webhooks/default/secret", self.webhook_secret, methods=["GET"]),
            r("/v1/models", self.models_list, methods=["GET", "QUERY"]),
            r("/v1/models", self.models_create, methods=["POST"]),
            r("/v1/models/{owner}/{name}", self.models_get, methods=["GET"]),
            r("/v1/models/{owner}/{name}", self.models_delete, methods=["DELETE"]),
            r("/v1/models/{owner}/{name}/versions", self.versions_list, methods=["GET"]),
            r("/v1/models/{owner}/{name}/versions", self.versions_push, methods=["POST"]),
            r("/v1/models/{owner}/{name}/versions/{vid}", self.versions_get, methods=["GET"]),
            r(
                "/v1/models/{owner}/{name}/versions/{vid}",
                self.versions_delete,
                methods=["DELETE"],
            ),
            r(
                "/v1/models/{owner}/{name}/versions/{vid}/trainings",
                self.trainings_create,
                methods=["POST"],
            ),
            r(
                "/v1/models/{owner}/{name}/predictions",
                self.model_predictions_create,
                methods=["POST"],
            ),
            r("/v1/predictions", self.predictions_list, methods=["GET"]),
            r("/v1/predictions", self.predictions_create, methods=["POST"]),
            r("/v1/predictions/{pid}", self.predictions_get, methods=["GET"]),
            r("/v1/predictions/{pid}/cancel", self.predictions_cancel, methods=["POST"]),
            r("/v1/streams/{pid}", self.predictions_stream, methods=["GET"]),
            r("/v1/trainings", self.trainings_list, methods=["GET"]),
            r("/v1/trainings/{pid}", self.trainings_get, methods=["GET"]),
            r("/v1/trainings/{pid}/cancel", self.trainings_cancel, methods=["POST"]),
            r("/v1/deployments", self.deployments_list, methods=["GET"]),
            r("/v1/deployments", self.deployments_create, methods=["POST"]),
            r("/v1/deployments/{owner}/{name}", self.deployments_get, methods=["GET"]),
            r("/v1/deployments/{owner}/{name}", self.deployments_update, methods=["PATCH"]),
            r("/v1/deployments/{owner}/{name}", self.deployments_delete, methods=["DELETE"]),
            r(
                "/v1/deployments/{owner}/{name}/predictions",
                self.deployment_predictions_create,
                methods=["POST"],
            ),
            r("/v1/files", self.files_list, methods=["GET"]),
            r("/v1/files", self.files_create, methods=["POST"]),
            r("/v1/files/{fid}", self.files_get, methods=["GET"]),
            r("/v1/files/{fid}", self.files_delete, methods=["DELETE"]),
            r("/v1/files/{fid}/download", self.files_download, methods=["GET"]),
            r("/v1/weights/{sha}", self.weights_download, methods=["GET"]),
        ]

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _base(request: Request) -> str:
        # Absolute URLs point back at whatever host:port the client used.
        return str(request.base_url).rstrip("/")

    @staticmethod
    async def _json(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"Request body is not valid JSON: {exc}", "Bad request") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object", "Bad request")
        return body

    def _page_size(self, default: int) -> int:
        return self.config.page_size or default

    def _paginate(
        self,
        request: Request,
        kind: str,
        render: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        default_size: int,
        parent: str | None = None,
    ) -> JSONResponse:
        size = self._page_size(default_size)
        offset = 0
        cursor = request.query_params.get("cursor")
        if cursor:
            try:
                decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
                offset = int(decoded.removeprefix("o="))
            except (ValueError, binascii.Error) as exc:
                raise ApiError(400, "Invalid cursor", "Bad request") from exc
        docs, more = self.store.page(kind, offset=offset, limit=size, parent=parent)
        url = str(request.url.replace(query=""))

        def link(off: int) -> str:
            token = base64.urlsafe_b64encode(f"o={off}".encode()).decode()
            return f"{url}?cursor={token}"

        return JSONResponse(
            {
                "next": link(offset + size) if more else None,
                "previous": link(max(0, offset - size)) if offset > 0 else None,
                "results": [render(d) for d in docs],
            }
        )

    # ------------------------------------------------------------------ account & misc

    async def account(self, request: Request) -> Response:
        """GET /v1/account."""
        return JSONResponse(self._account())

    @staticmethod
    def _account() -> dict[str, Any]:
        return {
            "type": "organization",
            "username": ACCOUNT_NAME,
            "name": "cogfleet local server",
            "github_url": None,
        }

    async def hardware(self, request: Request) -> Response:
        """GET /v1/hardware (a bare array)."""
        return JSONResponse(HARDWARE)

    def _webhook_key(self) -> str:
        path = self.state_dir / "webhook_secret"
        if not path.exists():
            path.write_text("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
            path.chmod(0o600)
        return path.read_text().strip()

    async def webhook_secret(self, request: Request) -> Response:
        """GET /v1/webhooks/default/secret: a stable per-state-dir signing secret."""
        return JSONResponse({"key": self._webhook_key()})

    # ------------------------------------------------------------------ webhooks

    def _notify(self, plural: str, doc: dict[str, Any], event: str) -> None:
        """Send ``event`` for ``doc`` to its webhooks (in the background, in order)."""
        targets: list[str] = []
        hook = doc.get("_webhook")
        events = doc.get("_webhook_events") or list(WEBHOOK_EVENTS)
        if hook and event in events:
            targets.append(hook)
        if event == "completed" and doc.get("_webhook_completed"):
            targets.append(doc["_webhook_completed"])
        if not targets:
            return
        if event in ("logs", "output"):
            # Like Replicate: intermediate events at most every 500 ms.
            now = asyncio.get_running_loop().time()
            if now - self._last_hook.get(doc["id"], -1.0) < 0.5:
                return
            self._last_hook[doc["id"]] = now
        body = json.dumps(self._render_run(doc, doc.get("_base", "")), separators=(",", ":"))
        previous = self._hook_chain.get(doc["id"])
        task = asyncio.create_task(
            self._deliver(previous, targets, body, retry=event == "completed")
        )
        self._hook_chain[doc["id"]] = task
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)
        if event == "completed":
            self._hook_chain.pop(doc["id"], None)
            self._last_hook.pop(doc["id"], None)

    async def _deliver(
        self, previous: asyncio.Task[None] | None, urls: list[str], body: str, *, retry: bool
    ) -> None:
        if previous is not None:
            # Deliver each prediction's events in order.
            await asyncio.gather(previous, return_exceptions=True)
        key = base64.b64decode(self._webhook_key().split("_", 1)[1])
        msg_id = "msg_" + secrets.token_urlsafe(18)
        stamp = str(int(datetime.now(UTC).timestamp()))
        mac = hmac.new(key, f"{msg_id}.{stamp}.{body}".encode(), hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        }
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as http:
            for url in urls:
                # Only the terminal event is retried, as on Replicate (same webhook-id).
                for attempt in range(4 if retry else 1):
                    try:
                        resp = await http.post(url, content=body, headers=headers)
                        if resp.status_code < 400:
                            break
                    except httpx.HTTPError as exc:
                        log.warning("webhook %s failed: %s", url, exc)
                    if attempt < 3 and retry:
                        await asyncio.sleep(0.5 * 2**attempt)

    # ------------------------------------------------------------------ models

    def _render_model(self, doc: dict[str, Any], base: str) -> dict[str, Any]:
        out = _public(doc)
        out["url"] = f"{base}/{doc['owner']}/{doc['name']}"
        latest = self.store.first("versions", f"{doc['owner']}/{doc['name']}")
        out["latest_version"] = _public(latest) if latest else None
        out["default_example"] = None
        return out

    def _model(self, owner: str, name: str) -> dict[str, Any]:
        doc = self.store.get("models", f"{owner}/{name}")
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    async def models_list(self, request: Request) -> Response:
        """GET /v1/models (and QUERY /v1/models: search by substring)."""
        base = self._base(request)
        if request.method == "QUERY":
            needle = (await request.body()).decode(errors="replace").strip().lower()
            docs, _ = self.store.page("models", offset=0, limit=1000)
            hits = [
                self._render_model(d, base)
                for d in docs
                if needle in f"{d['owner']}/{d['name']} {d.get('description') or ''}".lower()
            ]
            return JSONResponse({"next": None, "previous": None, "results": hits})
        return self._paginate(
            request, "models", lambda d: self._render_model(d, base), default_size=25
        )

    async def models_create(self, request: Request) -> Response:
        """POST /v1/models."""
        body = await self._json(request)
        missing = [k for k in ("owner", "name", "visibility", "hardware") if not body.get(k)]
        if missing:
            raise ApiError(
                422,
                "".join(f"- {k} is required\n" for k in missing),
                "Input validation failed",
            )
        owner, name = str(body["owner"]), str(body["name"])
        if not _MODEL_NAME_RE.match(name) or not _MODEL_NAME_RE.match(owner.lower()):
            raise ApiError(
                422,
                f"- name: {name!r} must be lowercase letters, digits, '.', '_' or '-'\n",
                "Input validation failed",
            )
        if body["visibility"] not in ("public", "private"):
            raise ApiError(
                422, '- visibility: must be one of "public", "private"\n', "Input validation failed"
            )
        if body["hardware"] not in {h["sku"] for h in HARDWARE}:
            raise ApiError(
                422, f"- hardware: unknown SKU {body['hardware']!r}\n", "Input validation failed"
            )
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
        return JSONResponse(self._render_model(doc, self._base(request)), status_code=201)

    async def models_get(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}."""
        p = request.path_params
        doc = self._model(p["owner"], p["name"])
        return JSONResponse(self._render_model(doc, self._base(request)))

    async def models_delete(self, request: Request) -> Response:
        """DELETE /v1/models/{owner}/{name}: 204; like Replicate, only without versions."""
        p = request.path_params
        key = f"{p['owner']}/{p['name']}"
        self._model(p["owner"], p["name"])
        if self.store.count("versions", key):
            raise ApiError(409, "Delete the model's versions before deleting the model", "Conflict")
        self.store.delete("models", key)
        return Response(status_code=204)

    # ------------------------------------------------------------------ versions

    def _version(self, owner: str, name: str, vid: str) -> dict[str, Any]:
        self._model(owner, name)
        doc = self.store.get("versions", f"{owner}/{name}:{vid}")
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    async def versions_list(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/versions (newest first)."""
        p = request.path_params
        self._model(p["owner"], p["name"])
        return self._paginate(
            request, "versions", _public, default_size=100, parent=f"{p['owner']}/{p['name']}"
        )

    async def versions_get(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/versions/{id}."""
        p = request.path_params
        return JSONResponse(_public(self._version(p["owner"], p["name"], p["vid"])))

    async def versions_delete(self, request: Request) -> Response:
        """DELETE …/versions/{id}: 202 like Replicate (the 1.0.7 client then returns False)."""
        p = request.path_params
        self._version(p["owner"], p["name"], p["vid"])
        self.store.delete("versions", f"{p['owner']}/{p['name']}:{p['vid']}")
        return Response(status_code=202)

    async def versions_push(self, request: Request) -> Response:
        """POST …/versions: push a build archive, or promote with ``{"from_version": id}``."""
        p = request.path_params
        owner, name = p["owner"], p["name"]
        self._model(owner, name)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            body = await self._json(request)
            source_id = body.get("from_version")
            if not isinstance(source_id, str) or not source_id:
                raise ApiError(422, "- from_version is required\n", "Input validation failed")
            source = self.store.find("versions", "id", source_id)
            if source is None:
                raise ApiError(
                    422,
                    f"The version {source_id} does not exist",
                    "Invalid version or not permitted",
                )
            return self._add_version(owner, name, source)
        raw = await request.body()
        if not raw:
            raise ApiError(400, "The request body must be a tar.gz, tar or zip of a build folder")
        build = await self._store_build(raw)
        return self._add_version(owner, name, build)

    def _add_version(self, owner: str, name: str, source: dict[str, Any]) -> JSONResponse:
        key = f"{owner}/{name}:{source['id']}"
        with self.store.transaction():
            existing = self.store.get("versions", key)
            if existing is not None:
                return JSONResponse(_public(existing), status_code=200)
            doc = {
                "id": source["id"],
                "created_at": now_iso(),
                "cog_version": source["cog_version"],
                "openapi_schema": source["openapi_schema"],
                "_build": source["_build"],
                "_weights": source.get("_weights"),
                "_model": f"{owner}/{name}",
            }
            self.store.put("versions", key, doc, parent=f"{owner}/{name}")
        return JSONResponse(_public(doc), status_code=201)

    async def _store_build(self, raw: bytes) -> dict[str, Any]:
        """Unpack an uploaded build content-addressed under builds/ and generate its schema."""
        from cogfleet.schema import generate_schema, write_schema_file

        tmp = self.state_dir / "tmp" / uuid.uuid4().hex
        try:
            try:
                await asyncio.to_thread(unpack_build, raw, tmp)
                vid = await asyncio.to_thread(version_id_for, tmp)
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
                        doc = await asyncio.to_thread(generate_schema, dest)
                    except ConfigError as exc:
                        shutil.rmtree(dest, ignore_errors=True)
                        raise ApiError(422, str(exc), "Invalid build") from exc
                    await asyncio.to_thread(write_schema_file, dest, doc)
                schema = json.loads(schema_file.read_text())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {"id": vid, "cog_version": cog_version(), "openapi_schema": schema, "_build": vid}

    # ------------------------------------------------------------------ predictions

    def _render_run(self, doc: dict[str, Any], base: str) -> dict[str, Any]:
        out = _public(doc)
        plural = "trainings" if doc.get("_kind") == "training" else "predictions"
        out["urls"] = {
            "get": f"{base}/v1/{plural}/{doc['id']}",
            "cancel": f"{base}/v1/{plural}/{doc['id']}/cancel",
            "web": f"{base}/p/{doc['id']}",
        }
        if doc.get("_stream"):
            # Only streamable versions get the key: the client rejects "stream": null.
            out["urls"]["stream"] = f"{base}/v1/streams/{doc['id']}"
        return out

    def _resolve_version_ref(self, ref: str) -> dict[str, Any]:
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

    def _file_input(self, text: str) -> str:
        # Our own file URLs become data: URIs: coglet offline only reads data: URIs.
        if text.startswith(("http://", "https://")):
            match = _FILE_URL_RE.search(text)
            if match:
                meta = self.store.get("files", match.group(1))
                path = self.state_dir / "files" / match.group(1)
                if meta is not None and path.is_file():
                    data = base64.b64encode(path.read_bytes()).decode()
                    return f"data:{meta['content_type']};base64,{data}"
        return text

    def _coglet_input(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._file_input(value)
        if isinstance(value, list):
            return [self._coglet_input(v) for v in value]
        if isinstance(value, dict):
            return {k: self._coglet_input(v) for k, v in value.items()}
        return value

    def _validator(
        self, version: dict[str, Any], component: str
    ) -> jsonschema.Draft7Validator | None:
        # Building a validator costs more than validating; versions are immutable.
        key = (version["id"], component)
        if key not in self._validators:
            schema = version["openapi_schema"]
            components = schema.get("components", {})
            input_schema = components.get("schemas", {}).get(component)
            self._validators[key] = (
                jsonschema.Draft7Validator({**input_schema, "components": components})
                if isinstance(input_schema, dict)
                else None
            )
        return self._validators[key]

    def _validate_input(self, version: dict[str, Any], component: str, data: Any) -> None:
        """422 with coglet-style messages when ``data`` does not fit the schema's input."""
        if not isinstance(data, dict):
            raise ApiError(422, "- input: must be an object\n", "Input validation failed")
        validator = self._validator(version, component)
        if validator is None:
            return
        problems: list[tuple[str, str, str]] = []
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
            if err.validator == "required" and not err.path:
                missing = str(err.message).split("'")[1] if "'" in err.message else err.message
                problems.append(("input", f"{missing} is required", "required"))
                continue
            field = ".".join(str(p) for p in err.path) or "input"
            problems.append((f"input.{field}", _coglet_message(err), str(err.validator)))
        if problems:
            raise ApiError(
                422,
                "".join(f"- {field}: {msg}\n" for field, msg, _ in problems),
                "Input validation failed",
                invalid_fields=[
                    {"type": kind, "field": field, "description": msg}
                    for field, msg, kind in problems
                ],
            )

    def _prefer_wait(self, request: Request) -> float | None:
        header = request.headers.get("prefer")
        if header is None:
            return None
        match = _PREFER_RE.match(header)
        if not match:
            return None
        return float(min(60, max(1, int(match.group(1) or 60))))

    async def _create_run(
        self,
        request: Request,
        version: dict[str, Any],
        body: dict[str, Any],
        *,
        kind: str = "prediction",
        deployment: str | None = None,
        destination: str | None = None,
    ) -> Response:
        raw_input = body.get("input", {})
        if raw_input is None:
            raw_input = {}
        component = "TrainingInput" if kind == "training" else "Input"
        self._validate_input(version, component, raw_input)
        base = self._base(request)
        pid = new_id()
        model = version["_model"]
        doc: dict[str, Any] = {
            "id": pid,
            "model": model,
            "version": version["id"],
            "input": _redact_secrets(version["openapi_schema"], component, raw_input),
            "output": None,
            "logs": "",
            "error": None,
            "status": "starting",
            "data_removed": False,
            "source": "api",
            "created_at": now_iso(),
            "started_at": None,
            "completed_at": None,
            "metrics": {},
            "_kind": kind,
            "_base": base,
        }
        if kind == "prediction" and _is_iterator(version["openapi_schema"]):
            doc["_stream"] = True
        webhook = body.get("webhook")
        if webhook is not None:
            events = body.get("webhook_events_filter")
            if not isinstance(webhook, str) or not webhook.startswith(("http://", "https://")):
                raise ApiError(
                    422, "- webhook: must be an http(s) URL\n", "Input validation failed"
                )
            if events is not None and (
                not isinstance(events, list) or not set(events) <= set(WEBHOOK_EVENTS)
            ):
                raise ApiError(
                    422,
                    "- webhook_events_filter: items must be start, output, logs or completed\n",
                    "Input validation failed",
                )
            doc["_webhook"] = webhook
            doc["_webhook_events"] = events
        if isinstance(body.get("webhook_completed"), str):
            doc["_webhook_completed"] = body["webhook_completed"]
        if deployment:
            doc["deployment"] = deployment
        if destination:
            doc["destination"] = destination
        plural = "trainings" if kind == "training" else "predictions"
        with self.store.transaction():
            self.store.put(plural, pid, doc)
            model_doc = self.store.get("models", model)
            if model_doc is not None:
                model_doc["run_count"] = int(model_doc.get("run_count", 0)) + 1
                self.store.put("models", model, model_doc)
        event = asyncio.Event()
        self._done[pid] = event
        self._changed[pid] = asyncio.Condition()
        self._generation[pid] = 0
        coglet_input = self._coglet_input(raw_input)
        self._tasks[pid] = asyncio.create_task(
            self._execute(plural, pid, version, coglet_input, base, destination)
        )
        wait = self._prefer_wait(request)
        headers: dict[str, str] = {}
        if wait is not None:
            headers["Preference-Applied"] = request.headers["prefer"].strip()
            # Answer before the client's read timeout (N + 0.5 s) runs out.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=max(0.5, wait - 0.3))
        current = self.store.get(plural, pid) or doc
        rendered = self._render_run(current, base)
        if current["status"] not in TERMINAL:
            headers["Location"] = rendered["urls"]["get"]
            if wait is not None:
                # The 1.0.7 client's run() only polls after a "starting" answer.
                rendered["status"] = "starting"
        return JSONResponse(rendered, status_code=201, headers=headers)

    def _on_update(self, plural: str, pid: str) -> Callable[[dict[str, Any]], None]:
        def update(partial: dict[str, Any]) -> None:
            doc = self.store.get(plural, pid)
            if doc is None or doc["status"] in TERMINAL:
                return
            changed = [
                key
                for key in ("output", "logs")
                if partial.get(key) is not None and partial[key] != doc.get(key)
            ]
            for key in changed:
                doc[key] = partial[key]
            self.store.put(plural, pid, doc)
            if changed:
                self._notify(plural, doc, changed[0])
                self._wake(pid)

        return update

    async def _execute(
        self,
        plural: str,
        pid: str,
        version: dict[str, Any],
        coglet_input: dict[str, Any],
        base: str,
        destination: str | None,
    ) -> None:
        from cogfleet.server._runner import InvalidInput, SetupFailed

        doc = self.store.get(plural, pid)
        assert doc is not None
        started = datetime.now(UTC)
        try:
            if self.config.latency > 0:
                # Injected delay (--latency) so callers can test timeouts and waits.
                await asyncio.sleep(self.config.latency)
            doc["status"] = "processing"
            doc["started_at"] = now_iso()
            self.store.put(plural, pid, doc)
            self._notify(plural, doc, "start")
            env = {"COG_WEIGHTS": version["_weights"]} if version.get("_weights") else None
            mode = "train" if plural == "trainings" else "predict"
            build_dir = self.state_dir / "builds" / version["_build"]
            result = await self.pool.run(
                f"{version['id']}:{mode}",
                build_dir,
                mode=mode,
                prediction_id=pid,
                input=coglet_input,
                env=env,
                on_update=self._on_update(plural, pid),
            )
            doc = self.store.get(plural, pid) or doc
            status = result.get("status", "failed")
            if status not in TERMINAL:
                status = "failed"
            doc["status"] = status
            doc["output"] = result.get("output")
            doc["error"] = result.get("error")
            doc["logs"] = result.get("logs") or doc.get("logs") or ""
            predict_time = (result.get("metrics") or {}).get("predict_time")
            doc["metrics"] = {k: v for k, v in (result.get("metrics") or {}).items()}
            if predict_time is None:
                doc["metrics"]["predict_time"] = (datetime.now(UTC) - started).total_seconds()
            if result.get("started_at"):
                doc["started_at"] = result["started_at"]
            if status == "succeeded" and plural == "trainings":
                self._finish_training(doc, version, destination, base)
        except InvalidInput as exc:
            doc["status"] = "failed"
            doc["error"] = _detail_text(exc.detail)
        except SetupFailed as exc:
            doc["status"] = "failed"
            doc["error"] = "Setup failed"
            doc["logs"] = exc.logs
        except asyncio.CancelledError:
            doc["status"] = "canceled" if pid in self._cancel_requested else "failed"
            if doc["status"] == "failed":
                doc["error"] = "The local server stopped before this finished."
            self._complete(plural, doc)
            raise
        except Exception as exc:  # a runner crash must still end the prediction
            log.exception("prediction %s crashed", pid)
            doc["status"] = "failed"
            doc["error"] = f"{type(exc).__name__}: {exc}"
        self._complete(plural, doc)

    def _complete(self, plural: str, doc: dict[str, Any]) -> None:
        pid = doc["id"]
        if doc["status"] == "canceled" or pid in self._cancel_requested:
            if doc["status"] != "succeeded":
                doc["status"] = "canceled"
        completed = datetime.now(UTC)
        doc["completed_at"] = now_iso()
        metrics = doc.setdefault("metrics", {})
        metrics["total_time"] = (completed - _parse_iso(doc["created_at"])).total_seconds()
        if doc.get("started_at") and "predict_time" not in metrics:
            metrics["predict_time"] = (completed - _parse_iso(doc["started_at"])).total_seconds()
        self.store.put(plural, pid, doc)
        self._notify(plural, doc, "completed")
        self._wake(pid, final=True)
        self._cancel_requested.discard(pid)
        self._tasks.pop(pid, None)
        event = self._done.pop(pid, None)
        if event is not None:
            event.set()

    def _finish_training(
        self, doc: dict[str, Any], version: dict[str, Any], destination: str | None, base: str
    ) -> None:
        """Store the trained weights and add a version carrying them to the destination."""
        weights = _find_weights(doc.get("output"))
        if weights is None:
            doc["status"] = "failed"
            doc["error"] = "The training output contains no weights file (a data: URI)."
            return
        data = weights
        sha = hashlib.sha256(data).hexdigest()
        wpath = self.state_dir / "weights" / sha
        if not wpath.exists():
            wpath.write_bytes(data)
        new_id_ = hashlib.sha256(f"{version['id']}:{sha}".encode()).hexdigest()
        assert destination is not None
        source = {
            "id": new_id_,
            "cog_version": version["cog_version"],
            "openapi_schema": version["openapi_schema"],
            "_build": version["_build"],
            "_weights": str(wpath),
        }
        owner, _, name = destination.partition("/")
        self._add_version(owner, name, source)
        doc["output"] = {
            "version": f"{destination}:{new_id_}",
            "weights": f"{base}/v1/weights/{sha}",
        }

    async def predictions_create(self, request: Request) -> Response:
        """POST /v1/predictions (``version`` = id, ``owner/name:id`` or ``owner/name``)."""
        body = await self._json(request)
        ref = body.get("version")
        if not isinstance(ref, str) or not ref:
            raise ApiError(422, "- version is required\n", "Input validation failed")
        return await self._create_run(request, self._resolve_version_ref(ref), body)

    async def model_predictions_create(self, request: Request) -> Response:
        """POST /v1/models/{owner}/{name}/predictions (the model's latest version)."""
        p = request.path_params
        self._model(p["owner"], p["name"])
        version = self.store.first("versions", f"{p['owner']}/{p['name']}")
        if version is None:
            raise ApiError(404, f"The model {p['owner']}/{p['name']} has no versions")
        return await self._create_run(request, version, await self._json(request))

    def _get_run(self, plural: str, pid: str) -> dict[str, Any]:
        doc = self.store.get(plural, pid)
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    async def predictions_get(self, request: Request) -> Response:
        """GET /v1/predictions/{id}."""
        doc = self._get_run("predictions", request.path_params["pid"])
        return JSONResponse(self._render_run(doc, self._base(request)))

    async def predictions_list(self, request: Request) -> Response:
        """GET /v1/predictions (newest first)."""
        base = self._base(request)
        return self._paginate(
            request, "predictions", lambda d: self._render_run(d, base), default_size=100
        )

    def _wake(self, pid: str, *, final: bool = False) -> None:
        # The generation counter makes waiting race-free: a stream only sleeps while
        # nothing changed since it last read the prediction.
        if final:
            self._generation.pop(pid, None)
        else:
            self._generation[pid] = self._generation.get(pid, 0) + 1
        cond = self._changed.pop(pid, None) if final else self._changed.get(pid)
        if cond is None:
            return

        async def notify() -> None:
            async with cond:
                cond.notify_all()

        task = asyncio.create_task(notify())
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    def _changed_since(self, pid: str, seen: int) -> bool:
        """Whether prediction ``pid`` changed after generation ``seen`` (stream wake-up)."""
        return self._generation.get(pid, -1) != seen

    async def predictions_stream(self, request: Request) -> Response:
        """GET /v1/streams/{id}: server-sent events of a streamable prediction."""
        pid = request.path_params["pid"]
        doc = self._get_run("predictions", pid)
        if not doc.get("_stream"):
            raise ApiError(404, NOT_FOUND)
        cond = self._changed.get(pid)

        async def events() -> AsyncIterator[bytes]:
            sent_items = 0
            sent_logs = 0
            seq = 0
            while True:
                seen = self._generation.get(pid, -1)
                current = self.store.get("predictions", pid) or doc
                chunks: list[tuple[str, str]] = []
                output = current.get("output")
                if isinstance(output, list):
                    chunks += [("output", _sse_text(item)) for item in output[sent_items:]]
                    sent_items = max(sent_items, len(output))
                logs = current.get("logs") or ""
                if len(logs) > sent_logs:
                    chunks += [("logs", line) for line in logs[sent_logs:].splitlines()]
                    sent_logs = len(logs)
                terminal = current["status"] in TERMINAL
                if terminal:
                    if current["status"] == "failed":
                        detail = json.dumps({"detail": current.get("error") or "failed"})
                        chunks.append(("error", detail))
                    reason = {"succeeded": {}, "failed": {"reason": "error"}}.get(
                        current["status"], {"reason": "canceled"}
                    )
                    chunks.append(("done", json.dumps(reason)))
                for name, data in chunks:
                    lines = "".join(f"data: {part}\n" for part in data.split("\n"))
                    yield f"event: {name}\nid: {pid}:{seq}\n{lines}\n".encode()
                    seq += 1
                if terminal or cond is None:
                    return
                async with cond:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            cond.wait_for(partial(self._changed_since, pid, seen)),
                            timeout=15,
                        )
                # A comment line keeps idle connections open through proxies.
                yield b": ping\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def _cancel(self, request: Request, plural: str) -> Response:
        pid = request.path_params["pid"]
        doc = self._get_run(plural, pid)
        if doc["status"] not in TERMINAL:
            self._cancel_requested.add(pid)
            event = self._done.get(pid)
            stopped = await self.pool.cancel(pid) if self.pool is not None else False
            if not stopped:
                # Not yet inside coglet (e.g. in the injected delay): stop the task itself.
                task = self._tasks.get(pid)
                if task is not None:
                    task.cancel()
            if event is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=10)
            doc = self._get_run(plural, pid)
        return JSONResponse(self._render_run(doc, self._base(request)))

    async def predictions_cancel(self, request: Request) -> Response:
        """POST /v1/predictions/{id}/cancel: stops the work inside the predictor."""
        return await self._cancel(request, "predictions")

    # ------------------------------------------------------------------ trainings

    async def trainings_create(self, request: Request) -> Response:
        """POST /v1/models/{owner}/{name}/versions/{id}/trainings."""
        p = request.path_params
        version = self._version(p["owner"], p["name"], p["vid"])
        body = await self._json(request)
        destination = body.get("destination")
        if not isinstance(destination, str) or destination.count("/") != 1:
            raise ApiError(422, "- destination is required\n", "Input validation failed")
        if self.store.get("models", destination) is None:
            raise ApiError(404, "The specified training destination does not exist")
        return await self._create_run(
            request, version, body, kind="training", destination=destination
        )

    async def trainings_get(self, request: Request) -> Response:
        """GET /v1/trainings/{id}."""
        doc = self._get_run("trainings", request.path_params["pid"])
        return JSONResponse(self._render_run(doc, self._base(request)))

    async def trainings_list(self, request: Request) -> Response:
        """GET /v1/trainings (newest first)."""
        base = self._base(request)
        return self._paginate(
            request, "trainings", lambda d: self._render_run(d, base), default_size=100
        )

    async def trainings_cancel(self, request: Request) -> Response:
        """POST /v1/trainings/{id}/cancel."""
        return await self._cancel(request, "trainings")

    # ------------------------------------------------------------------ deployments

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
        if hardware not in {h["sku"] for h in HARDWARE}:
            raise ApiError(
                422, f"- hardware: unknown SKU {hardware!r}\n", "Input validation failed"
            )
        for key, upper in (("min_instances", 5), ("max_instances", 20)):
            value = config.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= upper:
                raise ApiError(
                    422,
                    f"- {key}: must be an integer from 0 to {upper}\n",
                    "Input validation failed",
                )
        return {
            "number": number,
            "model": model,
            "version": version,
            "created_at": now_iso(),
            "created_by": self._account(),
            "configuration": {
                "hardware": hardware,
                "min_instances": config["min_instances"],
                "max_instances": config["max_instances"],
            },
        }

    async def deployments_create(self, request: Request) -> Response:
        """POST /v1/deployments (owner = the account)."""
        body = await self._json(request)
        fields = ("name", "model", "version", "hardware", "min_instances", "max_instances")
        missing = [k for k in fields if body.get(k) is None]
        if missing:
            raise ApiError(
                422, "".join(f"- {k} is required\n" for k in missing), "Input validation failed"
            )
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

    async def deployments_get(self, request: Request) -> Response:
        """GET /v1/deployments/{owner}/{name}."""
        p = request.path_params
        return JSONResponse(self._deployment(p["owner"], p["name"]))

    async def deployments_update(self, request: Request) -> Response:
        """PATCH /v1/deployments/{owner}/{name}: every update is a new release."""
        p = request.path_params
        body = await self._json(request)
        allowed = {"version", "hardware", "min_instances", "max_instances"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(
                422,
                "".join(f"- Additional property {k} is not allowed\n" for k in unknown),
                "Input validation failed",
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

    async def deployments_delete(self, request: Request) -> Response:
        """DELETE /v1/deployments/{owner}/{name}: 204."""
        p = request.path_params
        self._deployment(p["owner"], p["name"])
        self.store.delete("deployments", f"{p['owner']}/{p['name']}")
        return Response(status_code=204)

    async def deployments_list(self, request: Request) -> Response:
        """GET /v1/deployments (newest first)."""
        return self._paginate(request, "deployments", lambda d: d, default_size=100)

    async def deployment_predictions_create(self, request: Request) -> Response:
        """POST /v1/deployments/{owner}/{name}/predictions (the current release's version)."""
        p = request.path_params
        dep = self._deployment(p["owner"], p["name"])
        release = dep["current_release"]
        version = self.store.get("versions", f"{release['model']}:{release['version']}")
        if version is None:
            raise ApiError(422, "The deployment's version no longer exists", "Invalid version")
        return await self._create_run(
            request, version, await self._json(request), deployment=f"{p['owner']}/{p['name']}"
        )

    # ------------------------------------------------------------------ files

    def _render_file(self, doc: dict[str, Any], base: str) -> dict[str, Any]:
        out = dict(doc)
        out["urls"] = {"get": f"{base}/v1/files/{doc['id']}"}
        return out

    async def files_create(self, request: Request) -> Response:
        """POST /v1/files (multipart ``content``, optional ``metadata``/``filename``/``type``)."""
        async with request.form(max_part_size=100 * 1024 * 1024) as form:
            content = form.get("content")
            if content is None or isinstance(content, str):
                raise ApiError(422, "- content is required\n", "Input validation failed")
            data = await content.read()
            filename = str(form.get("filename") or content.filename or "file")
            ctype = str(
                form.get("type")
                or content.content_type
                or mimetypes.guess_type(filename)[0]
                or "application/octet-stream"
            )
            raw_meta = form.get("metadata")
        metadata: Any = {}
        if isinstance(raw_meta, str) and raw_meta.strip():
            try:
                metadata = json.loads(raw_meta)
            except ValueError as exc:
                raise ApiError(
                    422, "- metadata: must be a JSON object\n", "Input validation failed"
                ) from exc
        if len(data) > 100 * 1024 * 1024:
            raise ApiError(413, "Files must be less than 100MB in size")
        fid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        (self.state_dir / "files" / fid).write_bytes(data)
        created = datetime.now(UTC)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        doc = {
            "id": fid,
            "name": filename,
            "content_type": ctype,
            "size": len(data),
            "etag": md5,
            "checksums": {"sha256": hashlib.sha256(data).hexdigest(), "md5": md5},
            "metadata": metadata if isinstance(metadata, dict) else {},
            "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "expires_at": (created + timedelta(days=1))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        self.store.put("files", fid, doc)
        return JSONResponse(self._render_file(doc, self._base(request)), status_code=201)

    def _file(self, fid: str) -> dict[str, Any]:
        doc = self.store.get("files", fid)
        if doc is None:
            raise ApiError(404, NOT_FOUND)
        return doc

    async def files_get(self, request: Request) -> Response:
        """GET /v1/files/{id}."""
        doc = self._file(request.path_params["fid"])
        return JSONResponse(self._render_file(doc, self._base(request)))

    async def files_delete(self, request: Request) -> Response:
        """DELETE /v1/files/{id}: 204."""
        fid = request.path_params["fid"]
        self._file(fid)
        self.store.delete("files", fid)
        (self.state_dir / "files" / fid).unlink(missing_ok=True)
        return Response(status_code=204)

    async def files_list(self, request: Request) -> Response:
        """GET /v1/files (newest first)."""
        base = self._base(request)
        return self._paginate(
            request, "files", lambda d: self._render_file(d, base), default_size=100
        )

    async def files_download(self, request: Request) -> Response:
        """GET /v1/files/{id}/download: the bytes."""
        fid = request.path_params["fid"]
        doc = self._file(fid)
        data = (self.state_dir / "files" / fid).read_bytes()
        return Response(data, media_type=doc["content_type"])

    async def weights_download(self, request: Request) -> Response:
        """GET /v1/weights/{sha256}: a weights file produced by a training."""
        sha = request.path_params["sha"]
        path = self.state_dir / "weights" / sha
        if not re.fullmatch(r"[0-9a-f]{64}", sha) or not path.is_file():
            raise ApiError(404, NOT_FOUND)
        return Response(path.read_bytes(), media_type="application/octet-stream")


def _coglet_message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message in the wording coglet uses (JSON-quoted values)."""
    inst = json.dumps(err.instance, separators=(",", ":"))
    if err.validator == "enum":
        return f"{inst} is not one of {json.dumps(err.validator_value, separators=(',', ':'))}"
    if err.validator == "type":
        return f'{inst} is not of type "{err.validator_value}"'
    if err.validator == "pattern":
        return f'{inst} does not match "{err.validator_value}"'
    if err.validator == "maximum":
        return f"{inst} is greater than the maximum of {_num(err.validator_value)}"
    if err.validator == "minimum":
        return f"{inst} is less than the minimum of {_num(err.validator_value)}"
    return str(err.message)


def _num(value: Any) -> str:
    # Schemas may carry 4.0 where coglet (serde) prints 4.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _detail_text(detail: Any) -> str:
    """coglet's 422 ``detail`` list as one readable message."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", [])[2:]) or "input"
                lines.append(f"{loc}: {item.get('msg', item)}")
            else:
                lines.append(str(item))
        return "; ".join(lines)
    return str(detail)


def _redact_secrets(schema: dict[str, Any], component: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with Secret inputs masked: they reach coglet but never the state on disk."""
    props = schema.get("components", {}).get("schemas", {}).get(component, {}).get("properties")
    if not isinstance(props, dict):
        return data
    return {
        key: "**********"
        if isinstance(props.get(key), dict) and props[key].get("x-cog-secret") and value
        else value
        for key, value in data.items()
    }


def _is_iterator(schema: dict[str, Any]) -> bool:
    """Whether a version's Output is an iterator (what makes it streamable)."""
    output = schema.get("components", {}).get("schemas", {}).get("Output", {})
    return isinstance(output, dict) and output.get("x-cog-array-type") == "iterator"


def _sse_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)


def _decode_data_uri(text: str) -> bytes | None:
    if not text.startswith("data:") or "," not in text:
        return None
    header, _, payload = text.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload)
        from urllib.parse import unquote_to_bytes

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


def create_app(config: ServerConfig) -> tuple[LocalApi, ASGIApp]:
    """Build the server state and its ASGI application."""
    api = LocalApi(config)
    return api, api.asgi()
