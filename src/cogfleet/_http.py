"""An httpx transport that rides out transient API errors.

The official ``replicate`` client retries only idempotent requests. Creating a
prediction is a POST, so a single 429 or 503 would otherwise fail a check. This
transport sits under the client and retries every request on 429/500/502/503/504
and on connection errors, honouring ``Retry-After``, so a transient error that a
retry fixes never becomes a verdict. It also counts requests (for benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import threading
import time
from datetime import UTC, datetime

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRY_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ConnectTimeout)


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


class ResilientTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Retrying transport usable by both the sync and the async client."""

    def __init__(
        self, *, attempts: int = 8, base_delay: float = 0.2, max_delay: float = 20.0
    ) -> None:
        self._sync = httpx.HTTPTransport()
        self._async = httpx.AsyncHTTPTransport()
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0

    def _count(self, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            self.retries += int(retry)

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            hinted = retry_after_seconds(response.headers.get("retry-after"))
            if hinted is not None:
                return min(hinted, self.max_delay)
        backoff: float = self.base_delay * (2**attempt) * random.uniform(0.8, 1.2)
        return min(backoff, self.max_delay)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        for attempt in range(self.attempts):
            self._count(attempt > 0)
            try:
                response = self._sync.handle_request(request)
            except _RETRY_ERRORS:
                if attempt == self.attempts - 1:
                    raise
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code not in RETRY_STATUSES or attempt == self.attempts - 1:
                return response
            response.read()
            response.close()
            time.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        for attempt in range(self.attempts):
            self._count(attempt > 0)
            try:
                response = await self._async.handle_async_request(request)
            except _RETRY_ERRORS:
                if attempt == self.attempts - 1:
                    raise
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if response.status_code not in RETRY_STATUSES or attempt == self.attempts - 1:
                return response
            await response.aread()
            await response.aclose()
            await asyncio.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()
