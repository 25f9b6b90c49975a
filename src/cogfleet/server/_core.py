"""What every resource module of the local server shares.

Settings (:class:`ServerConfig`), the problem-JSON error (:class:`ApiError`,
:func:`problem`), ids and timestamps in Replicate's formats, request-body parsing,
positional cursor pagination, absolute URLs built from the request, and the Bearer-token
middleware.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cogfleet.server._state import Condition, Order, Store

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
_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Deeper JSON is refused (400): nothing in the API nests this far, and parsers of
# the model servers recurse on it.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Account:
    """Who a token acts as: an account and the organizations it may write to.

    ``permissive``: may write under any owner and see every model (the server
    without ``--token``, and a bare ``token`` given to :class:`LocalServer`).
    """

    username: str
    orgs: tuple[str, ...] = ()
    permissive: bool = False

    @property
    def owners(self) -> frozenset[str]:
        """The account and its organizations."""
        return frozenset((self.username, *self.orgs))

    def can_write(self, owner: str) -> bool:
        """Whether models may be created, changed or deleted under ``owner``."""
        return self.permissive or owner in self.owners

    def can_see(self, model: dict[str, Any]) -> bool:
        """Public models, and private ones under the account or its organizations."""
        return model.get("visibility") == "public" or self.can_write(str(model.get("owner")))

    def doc(self) -> dict[str, Any]:
        """The account as ``GET /v1/account`` returns it."""
        if self.permissive and self.username == ACCOUNT_NAME:
            return {
                "type": "organization",
                "username": ACCOUNT_NAME,
                "name": "cogfleet local server",
                "github_url": None,
            }
        return {
            "type": "user",
            "username": self.username,
            "name": self.username,
            "github_url": None,
        }


PERMISSIVE = Account(ACCOUNT_NAME, permissive=True)
# A request without a token to an endpoint that needs none: sees public models only.
ANONYMOUS = Account("")


def parse_token_spec(spec: str) -> tuple[str, Account]:
    """``TOKEN=ACCOUNT[,ORG...]`` (the ``--token`` syntax) as (token, account)."""
    token, sep, who = spec.partition("=")
    names = [n.strip() for n in who.split(",")] if sep else []
    if not token.strip() or not names or not all(_OWNER_RE.match(n) for n in names):
        raise ValueError(f"expected TOKEN=ACCOUNT[,ORG...], got {_masked(spec)!r}")
    return token.strip(), Account(names[0], tuple(dict.fromkeys(names[1:])))


def _masked(spec: str) -> str:
    token, sep, rest = spec.partition("=")
    return ("*" * min(len(token), 8)) + sep + rest


@dataclass
class ServerConfig:
    """Settings of one server instance (the ``cogfleet serve`` flags).

    ``tokens`` maps each accepted token to its :class:`Account`; without any, every
    non-empty token is accepted and may write everywhere (permissive mode). A lone
    ``token`` is the one accepted token of a permissive account.
    """

    state_dir: Path
    token: str | None = None
    latency: float = 0.0
    request_latency: float = 0.0
    fail_rate: float = 0.0
    fail_seed: int | None = None
    rate_limit: float | None = None
    idle_timeout: float = 300.0
    page_size: int | None = None
    tokens: dict[str, Account] = field(default_factory=dict)
    official: frozenset[str] = frozenset()
    collections: list[dict[str, Any]] = field(default_factory=list)
    max_json_bytes: int = 5 * 1024 * 1024
    max_upload_bytes: int = 100 * 1024 * 1024

    def accounts(self) -> dict[str, Account]:
        """Token -> account; empty in permissive mode."""
        if self.tokens:
            return dict(self.tokens)
        if self.token:
            return {self.token: PERMISSIVE}
        return {}

    @property
    def permissive(self) -> bool:
        """True when no token is configured: any token, any owner."""
        return not self.tokens and not self.token


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
    body = parse_json(raw, "Request body")
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object", "Bad request")
    return body


def parse_json(raw: bytes | str, what: str) -> Any:
    """Strict JSON as Replicate's (Go) parser reads it; 400 naming ``what`` otherwise.

    ``NaN``, ``Infinity`` and numbers out of a double's range are not JSON (and
    would poison the store); nesting deeper than :data:`MAX_JSON_DEPTH` is refused;
    an escaped lone UTF-16 surrogate (``"\\ud800"``) and bytes that are not UTF-8
    become U+FFFD, as Go does.
    """
    if isinstance(raw, bytes):
        # Go's decoder reads bytes that are not UTF-8 as U+FFFD (inside strings; outside
        # them that is no JSON anyway).
        raw = raw.decode("utf-8", "replace")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        too_deep = True
    except ValueError as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}", "Bad request") from exc
    else:
        too_deep = _depth_exceeds(value, MAX_JSON_DEPTH)
    if too_deep:
        raise ApiError(
            400, f"{what} is nested more than {MAX_JSON_DEPTH} levels deep", "Bad request"
        )
    if _SURROGATE_ESCAPE.search(raw):
        value = _without_lone_surrogates(value)
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def paginate(
    request: Request,
    store: Store,
    kind: str,
    render: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    size: int,
    parent: str | None = None,
    where: Sequence[Sequence[Condition]] = (),
    order: Order = "created",
    ascending: bool = False,
) -> JSONResponse:
    """One page of ``kind`` (newest first unless ``ascending``) with absolute
    ``next``/``previous`` cursor URLs.

    Cursors are positions, as Replicate's are (``p=<position>``, ``r=1`` to read
    backwards, base64): the next page starts after the last item shown, so an item
    created or deleted while a client pages neither repeats nor skips an item.
    """
    after, backward = _cursor(request)
    docs, positions, more = store.window(
        kind,
        limit=size,
        after=after,
        backward=backward,
        parent=parent,
        where=where,
        order=order,
        ascending=ascending,
    )
    results = [render(d) for d in docs]
    return _page_response(request, results, positions, after, backward, more)


def paginate_list(request: Request, items: Sequence[dict[str, Any]], *, size: int) -> JSONResponse:
    """One page of a list that does not change while the server runs, with the same
    cursors as :func:`paginate` (an item's position is its index)."""
    after, backward = _cursor(request)
    if backward:
        end = len(items) if after is None else min(after, len(items))
        start = max(0, end - size)
        more = start > 0
    else:
        start = 0 if after is None else after + 1
        end = min(len(items), start + size)
        more = end < len(items)
    positions = list(range(start, end))
    return _page_response(request, list(items[start:end]), positions, after, backward, more)


def _cursor(request: Request) -> tuple[int | None, bool]:
    """The cursor's position and whether it reads backwards (``[r=1&]p=<position>``,
    base64); no position without a cursor."""
    cursor = request.query_params.get("cursor")
    if not cursor:
        return None, False
    try:
        decoded = base64.urlsafe_b64decode(cursor.encode()).decode()
        fields = dict(part.split("=", 1) for part in decoded.split("&"))
        position = int(fields["p"])
        backward = {"0": False, "1": True}[fields.get("r", "0")]
    except (ValueError, KeyError, binascii.Error) as exc:
        raise ApiError(400, "Invalid cursor", "Bad request") from exc
    if not 0 <= position < 2**62:
        raise ApiError(400, "Invalid cursor", "Bad request")
    return position, backward


def _page_response(
    request: Request,
    results: list[dict[str, Any]],
    positions: list[int],
    after: int | None,
    backward: bool,
    more: bool,
) -> JSONResponse:
    # The filters of the request (everything but the cursor) carry over to every page.
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]

    def link(position: int | None, back: bool = False) -> str:
        query = list(kept)
        if position is not None:
            fields = [("r", "1")] if back else []
            fields.append(("p", str(position)))
            token = base64.urlsafe_b64encode(urlencode(fields).encode()).decode()
            query.append(("cursor", token))
        return str(request.url.replace(query=urlencode(query)))

    if backward:
        # Read back from a later page: that page follows; nothing before the
        # start means this is the first page.
        has_next, has_previous = True, more
    else:
        has_next, has_previous = more, after is not None
    nxt = prev = None
    if results:
        nxt = link(positions[-1]) if has_next else None
        prev = link(positions[0], back=True) if has_previous else None
    elif backward:
        nxt = link(None)  # nothing precedes the position: the listing starts here
    return JSONResponse({"next": nxt, "previous": prev, "results": results})


# Reached without a token, like Replicate's stream and file-delivery hosts (the
# unguessable part of the URL is the credential) and its search (public models).
PUBLIC_PREFIXES = ("/v1/streams/", "/delivery/", "/v1/search")


class AuthMiddleware:
    """401 problem+json unless the request carries an accepted token.

    The token's :class:`Account` is put in ``scope["state"]["account"]``.
    """

    def __init__(self, app: ASGIApp, accounts: dict[str, Account]) -> None:
        self.app = app
        self.accounts = {token.encode(): account for token, account in accounts.items()}

    def _account(self, header: str) -> Account | None:
        scheme, _, given = header.partition(" ")
        token = given.strip().encode()
        if scheme.lower() not in ("bearer", "token") or not token:
            return None
        if not self.accounts:
            return PERMISSIVE
        found = None
        for known, account in self.accounts.items():
            if secrets.compare_digest(token, known):
                found = account
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = ""
        for key, value in scope["headers"]:
            if key == b"authorization":
                header = value.decode("latin-1")
        account = self._account(header)
        if account is None and not scope["path"].startswith(PUBLIC_PREFIXES):
            resp = problem(401, "You did not pass a valid authentication token", "Unauthenticated")
            await resp(scope, receive, send)
            return
        scope.setdefault("state", {})["account"] = account or ANONYMOUS
        await self.app(scope, receive, send)


def account_of(request: Request) -> Account:
    """The account of the request's token (set by :class:`AuthMiddleware`)."""
    account = request.scope.get("state", {}).get("account")
    return account if isinstance(account, Account) else PERMISSIVE


class BodyLimit:
    """413 problem+json for bodies over the limit (uploads get a larger one).

    The declared ``Content-Length`` is checked before anything is read; a body sent
    without one is counted as the app reads it (an ``HTTPException`` the app's
    handlers answer).
    """

    def __init__(self, app: ASGIApp, *, json_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes

    def _limit(self, scope: Scope) -> int:
        path = scope["path"]
        if scope["method"] == "POST" and (path == "/v1/files" or path.endswith("/versions")):
            return self.upload_bytes
        return self.json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(scope, receive, send, limit)
                return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large(limit, scope["path"]))
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        resp = problem(413, _too_large(limit, scope["path"]), "Request too large")
        await resp(scope, receive, send)


# Replicate's answer to files.create over its limit.
FILE_TOO_LARGE = "Files must be less than 100MB in size"


def _too_large(limit: int, path: str = "") -> str:
    if path == "/v1/files":
        return FILE_TOO_LARGE
    return f"Request body must be at most {limit / (1024 * 1024):g} MiB"
