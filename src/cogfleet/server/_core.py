"""What every resource module of the local server shares.

Settings (:class:`ServerConfig`), the problem-JSON error (:class:`ApiError`,
:func:`problem`), ids and timestamps in Replicate's formats, request-body parsing,
cursor pagination, absolute URLs built from the request, and the Bearer-token
middleware.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cogfleet.server._state import Store

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
NOT_FOUND = "The requested resource could not be found."
INVALID = "Input validation failed"
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
HARDWARE_SKUS = frozenset(h["sku"] for h in HARDWARE)
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


@dataclass
class ServerConfig:
    """Settings of one server instance (the ``cogfleet serve`` flags)."""

    state_dir: Path
    token: str | None = None
    latency: float = 0.0
    request_latency: float = 0.0
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


def parse_iso(text: str) -> datetime:
    """A timestamp written by :func:`now_iso` (or any ISO 8601 text) as a datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_id() -> str:
    """A 26-character lowercase id like Replicate's prediction ids."""
    return "".join(_ID_ALPHABET[b % 32] for b in secrets.token_bytes(26))


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without its server-internal keys (those starting with ``_``)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def base_url(request: Request) -> str:
    """The scheme, host and port the client used: absolute URLs point back at it."""
    return str(request.base_url).rstrip("/")


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty); 400 when it is not one."""
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


def paginate(
    request: Request,
    store: Store,
    kind: str,
    render: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    size: int,
    parent: str | None = None,
) -> JSONResponse:
    """One newest-first page of ``kind`` with absolute ``next``/``previous`` cursor URLs."""
    offset = 0
    cursor = request.query_params.get("cursor")
    if cursor:
        try:
            decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
            offset = int(decoded.removeprefix("o="))
        except (ValueError, binascii.Error) as exc:
            raise ApiError(400, "Invalid cursor", "Bad request") from exc
    docs, more = store.page(kind, offset=offset, limit=size, parent=parent)
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
