"""Predictions: ``/v1/predictions…``, model predictions, and the SSE stream.

Predictions of versions whose Output is an iterator get ``urls.stream``, a
``text/event-stream`` of ``output`` / ``logs`` / ``error`` / ``done`` events (each
with an ``id:`` line, as the 1.0.7 client needs; ``done`` carries ``{}``, or
``{"reason": "error"}`` / ``{"reason": "canceled"}``). The stream URL carries a
per-prediction secret, so it works without an Authorization header (a browser's
``EventSource``), as Replicate's stream URLs do. A client that reconnects with
``Last-Event-ID`` (an ``EventSource`` does) gets what follows that event, and a
204 once the stream has ended, which stops an ``EventSource`` from reconnecting.
A page of any origin may read it (``Access-Control-Allow-Origin: *``): the URL is
the credential, and a web app's page is never on this server's origin.

``GET /v1/predictions`` takes Replicate's filters ``created_after``,
``created_before`` (ISO 8601) and ``source`` (``api`` or ``web``; every local
prediction is ``api``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cogfleet.server._core import (
    NOT_FOUND,
    ApiError,
    account_of,
    base_url,
    paginate,
    read_json,
)
from cogfleet.server._models import Models
from cogfleet.server._outputs import ANY_ORIGIN
from cogfleet.server._runs import Runs
from cogfleet.server._state import Condition
from cogfleet.server._streams import stream_position
from cogfleet.server._validation import MODEL_PREDICTION, PREDICTION, check_body, invalid


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
            Route("/v1/streams/{key}", self.stream, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        """POST /v1/predictions (``version``: id, ``owner/name:id``, official ``owner/name``)."""
        body = await read_json(request)
        check_body(body, PREDICTION)
        account = account_of(request)
        version = self.models.resolve_version_ref(body["version"], account)
        return await self.runs.create(request, version, body, account=account)

    async def create_for_model(self, request: Request) -> Response:
        """POST /v1/models/{owner}/{name}/predictions: official models only."""
        p = request.path_params
        body = await read_json(request)
        check_body(body, MODEL_PREDICTION)
        account = account_of(request)
        version = self.models.official_version(p["owner"], p["name"], account)
        return await self.runs.create(request, version, body, account=account)

    async def get(self, request: Request) -> Response:
        """GET /v1/predictions/{id} (a training's id too, as on Replicate)."""
        doc = self.runs.get("predictions", request.path_params["pid"], account_of(request))
        return JSONResponse(self.runs.render(doc, base_url(request), plural="predictions"))

    async def index(self, request: Request) -> Response:
        """GET /v1/predictions (newest first; ``created_after``/``created_before``/``source``)."""
        base = base_url(request)
        where = self.runs.owned_by(account_of(request)) + list_filters(request)
        return paginate(
            request,
            self.store,
            "predictions",
            lambda d: self.runs.render(self.runs.current(d), base),
            size=self.page_size,
            where=where,
        )

    async def cancel(self, request: Request) -> Response:
        """POST /v1/predictions/{id}/cancel: stops the work inside the predictor (a
        training's too)."""
        return await self.runs.cancel(request, "predictions", account_of(request))

    async def stream(self, request: Request) -> Response:
        """GET /v1/streams/{key}: server-sent events of a streamable prediction."""
        doc = self.runs.by_key(request.path_params["key"])
        if not doc.get("_stream"):
            raise ApiError(404, NOT_FOUND)
        resume = request.headers.get("last-event-id")
        if stream_position(doc["id"], resume)[2]:
            # Reconnected after ``done``: 204 tells an EventSource to stop reconnecting.
            return Response(status_code=204, headers=ANY_ORIGIN)
        return StreamingResponse(
            self.runs.events(doc, base_url(request), resume),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", **ANY_ORIGIN},
        )


def list_filters(request: Request) -> list[list[Condition]]:
    """Store conditions from ``created_after``, ``created_before`` and ``source``."""
    params = request.query_params
    where: list[list[Condition]] = []
    problems: list[tuple[str, str, str]] = []
    # "at or after" and "before", as Replicate documents them.
    for key, op, shift in (("created_after", ">", -_TICK), ("created_before", "<", timedelta(0))):
        text = params.get(key)
        if text is None:
            continue
        stamp = _timestamp(text, shift)
        if stamp is None:
            problems.append(("format", key, f"must be an ISO 8601 date-time, got {text!r}"))
        else:
            where.append([("created_at", op, stamp)])
    source = params.get("source")
    if source is not None:
        if source not in ("api", "web"):
            problems.append(("enum", "source", 'source must be one of the following: "web", "api"'))
        else:
            where.append([("source", "=", source)])
    if problems:
        raise invalid(problems)
    return where


# Stored times have microseconds: "after t - 1 µs" is "at or after t".
_TICK = timedelta(microseconds=1)


def _timestamp(text: str, shift: timedelta) -> str | None:
    """``text`` (ISO 8601) plus ``shift`` in the stored form (text order is time order)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC) + shift
    except OverflowError:
        # Before year 1 or after 9999 in UTC: before or after every stored time.
        return _BEFORE_ALL if value.year == 1 else _AFTER_ALL
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


# Texts that sort before and after every stored time (years 0001 to 9999).
_BEFORE_ALL = "0000"
_AFTER_ALL = "A"
