"""An httpx transport that rides out transient API errors.

The official ``replicate`` client retries only idempotent requests. Creating a
prediction is a POST, so a single 429 or 503 would otherwise fail a check. This
transport sits under the client and retries every request on 429/500/502/503/504
and on connection errors, honouring ``Retry-After``, so a transient error that a
retry fixes never becomes a verdict. It also counts requests (for benchmarks).

A request that has used up its retries says the target itself is failing (it drops
every connection, or answers 5xx or 429 to every try): the transport then records
that as :attr:`ResilientTransport.failure`, one line naming the origin, and sends
nothing more there. Every later request to that origin, and every retry still
waiting, fails at once with :class:`TargetDown`, so a run ends within one request's
retry budget instead of spending it again on each request that follows.

Reading the CA bundle for a TLS context takes about 0.1 s of CPU, and httpx reads it
for every transport it builds. The transports here are built on first use, one per
scheme: a plain ``http://`` API (the local server) never reads the bundle, and every
``https://`` transport of the process shares one context.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import random
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import httpx

from cogfleet._errors import BadAnswer

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# a connection refused, dropped or reset before the answer came (never a read timeout:
# a prediction may take long to answer)
_RETRY_ERRORS = (
    httpx.ConnectError, httpx.RemoteProtocolError, httpx.ConnectTimeout, httpx.ReadError,
    httpx.WriteError,
)


class TargetDown(httpx.TransportError):
    """A request not sent: an earlier request to its origin used up every retry.

    An ``httpx`` error, so every caller that handles a failed request handles it; the
    reason the run stops is the transport's :attr:`ResilientTransport.failure`.
    """


def origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of ``url`` (no credentials, path or query)."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    port = f":{url.port}" if url.port is not None and url.port != default else ""
    return f"{url.scheme}://{url.host}{port}"


def _dropped(exc: Exception) -> str:
    """What a connection error says about the target, in a few words."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "accepted no connection in time"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "closed every connection without an answer"
    text = str(exc).lower()
    if isinstance(exc, httpx.ConnectError) and "refused" in text:
        return "refused every connection"
    if "reset" in text:
        return "reset every connection"
    return f"dropped every connection ({type(exc).__name__}: {exc})"


def retry_after_seconds(value: str | None) -> float | None:
    """Parse ``Retry-After`` (seconds or an HTTP date)."""
    if not value:
        return None
    with contextlib.suppress(ValueError):  # not seconds: then an HTTP date
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one verifying TLS context (httpx's defaults: certifi's CA bundle)."""
    return httpx.create_ssl_context()


def _plain_context() -> ssl.SSLContext:
    """A context for transports that carry ``http://`` only: no CA read, verifies nothing
    it could be handed (an ``https://`` request goes to the TLS transport instead)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


_T = TypeVar("_T")


def _api_answer(request: httpx.Request, response: httpx.Response) -> bool:
    """True for a successful answer of the API itself that claims to be JSON or a page.

    Replicate's API answers every successful request under ``/v1/`` (other than an
    empty 204) with a JSON object; file downloads and event streams carry their own
    content types and are left alone.
    """
    if not request.url.path.startswith("/v1/") or not 200 <= response.status_code < 300:
        return False
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return response.status_code != 204 and (ctype.endswith("json") or ctype == "text/html")


def _broken(request: httpx.Request, why: str) -> BadAnswer:
    url = request.url.copy_with(username=None, password=None, query=None)
    return BadAnswer(f"{request.method} {url}: {why}; is this a Replicate API?")


def _check_answer(request: httpx.Request, response: httpx.Response) -> None:
    """A successful API answer is a JSON object: anything else is a :class:`BadAnswer`
    naming the request, instead of a decoding error deep in the client."""
    status = response.status_code
    if response.headers.get("content-type", "").lower().startswith("text/html"):
        raise _broken(request, f"{status} answer is an HTML page, not JSON")
    try:
        data = json.loads(response.content)
    except RecursionError:
        raise _broken(request, f"{status} answer is JSON nested too deeply") from None
    except ValueError:
        raise _broken(request, f"{status} answer is not JSON") from None
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", type(None): "null"}.get(type(data), "a number")
        raise _broken(request, f"{status} answer is {kind}, not a JSON object")


class ResilientTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Retrying transport usable by both the sync and the async client."""

    def __init__(
        self, *, attempts: int = 8, base_delay: float = 0.2, max_delay: float = 20.0
    ) -> None:
        self._sync: dict[bool, httpx.HTTPTransport] = {}  # by "is https"
        self._async: dict[bool, httpx.AsyncHTTPTransport] = {}
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self._down: dict[str, str] = {}  # origin -> why nothing more is sent there
        self.failure: str | None = None  # the first of those, naming its origin

    def _inner(self, built: dict[bool, _T], make: Callable[..., _T], url: httpx.URL) -> _T:
        """The inner transport for ``url``'s scheme, built on first use."""
        tls = url.scheme == "https"
        with self._lock:
            if tls not in built:
                built[tls] = make(verify=tls_context() if tls else _plain_context())
            return built[tls]

    def _count(self, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            self.retries += int(retry)

    def _refuse_if_down(self, request: httpx.Request) -> None:
        """Raise :class:`TargetDown` when ``request``'s origin failed every try before."""
        why = self._down.get(origin(request.url))
        if why is not None:
            raise TargetDown(f"not sent: {why}", request=request)

    def _give_up(self, request: httpx.Request, what: str, started: float) -> None:
        """``request`` used up its retries: the origin is failing; send nothing more there."""
        where = origin(request.url)
        why = (f"{where} {what} ({request.method} {request.url.path}: {self.attempts} tries "
               f"in {time.monotonic() - started:.0f} s)")
        with self._lock:
            self._down.setdefault(where, why)
            if self.failure is None:
                self.failure = why

    def _last_answer(self, request: httpx.Request, response: httpx.Response, started: float
                     ) -> None:  # fmt: skip
        if response.status_code in RETRY_STATUSES:
            phrase = httpx.codes.get_reason_phrase(response.status_code)
            self._give_up(request, f"answered {response.status_code} {phrase} to every try",
                          started)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            hinted = retry_after_seconds(response.headers.get("retry-after"))
            if hinted is not None:
                return min(hinted, self.max_delay)
        backoff: float = self.base_delay * (2**attempt) * random.uniform(0.8, 1.2)
        return min(backoff, self.max_delay)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        inner = self._inner(self._sync, httpx.HTTPTransport, request.url)
        started = time.monotonic()
        for attempt in range(self.attempts):
            self._refuse_if_down(request)
            self._count(attempt > 0)
            try:
                response = inner.handle_request(request)
            except _RETRY_ERRORS as exc:
                if attempt == self.attempts - 1:
                    self._give_up(request, _dropped(exc), started)
                    raise
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code not in RETRY_STATUSES or attempt == self.attempts - 1:
                self._last_answer(request, response, started)
                if _api_answer(request, response):
                    try:
                        response.read()
                    except httpx.HTTPError as exc:
                        raise _broken(request, f"the answer broke off ({exc})") from None
                    _check_answer(request, response)
                return response
            response.read()
            response.close()
            time.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        inner = self._inner(self._async, httpx.AsyncHTTPTransport, request.url)
        started = time.monotonic()
        for attempt in range(self.attempts):
            self._refuse_if_down(request)
            self._count(attempt > 0)
            try:
                response = await inner.handle_async_request(request)
            except _RETRY_ERRORS as exc:
                if attempt == self.attempts - 1:
                    self._give_up(request, _dropped(exc), started)
                    raise
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if response.status_code not in RETRY_STATUSES or attempt == self.attempts - 1:
                self._last_answer(request, response, started)
                if _api_answer(request, response):
                    try:
                        await response.aread()
                    except httpx.HTTPError as exc:
                        raise _broken(request, f"the answer broke off ({exc})") from None
                    _check_answer(request, response)
                return response
            await response.aread()
            await response.aclose()
            await asyncio.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            built = list(self._sync.values())
        for inner in built:
            inner.close()

    async def aclose(self) -> None:
        with self._lock:
            built = list(self._async.values())
        for inner in built:
            await inner.aclose()
