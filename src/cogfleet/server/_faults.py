"""Fault injection for the local server (``--fail-rate``, ``--rate-limit``,
``--request-latency``).

Lets callers exercise their retry and back-off paths against real HTTP:

* ``rate_limit=N``: more than N requests within one second are answered 429 with a
  ``Retry-After`` header (what the 1.0.7 client reads) and ``retry_after`` in the body.
* ``fail_rate=P``: that share of requests is answered 503 problem+json. The choice
  comes from ``random.Random(seed)``, so a fixed seed gives a reproducible sequence.

* ``request_latency=S``: every request waits S seconds before the app sees it, as if
  the API were S seconds away, and is logged with its start and end time
  (``cogfleet.server.requests``), so a caller's sequential round trips can be counted.

(``--latency`` is not a middleware: it delays each prediction's start, see ``_runs``.)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
import threading
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_log = logging.getLogger("cogfleet.server.requests")


class FaultInjection:
    """Pure ASGI middleware answering some requests with 429 or 503 before the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        fail_rate: float = 0.0,
        seed: int | None = None,
        rate_limit: float | None = None,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, not {fail_rate}")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError(f"rate_limit must be positive, not {rate_limit}")
        self.app = app
        self.fail_rate = fail_rate
        self.rate_limit = rate_limit
        self._rng = random.Random(seed)
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def _throttled(self) -> float | None:
        """Seconds until a slot frees up when over the limit, else None (and count it)."""
        if self.rate_limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return 1.0 - (now - self._recent[0])
            self._recent.append(now)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wait = self._throttled()
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            resp = JSONResponse(
                {
                    "title": "Too many requests",
                    "detail": f"Request was throttled. Your rate limit is {self.rate_limit:g} "
                    f"requests per second. Your rate limit resets in ~{seconds}s.",
                    "status": 429,
                    "retry_after": seconds,
                },
                status_code=429,
                media_type="application/problem+json",
                headers={"Retry-After": str(seconds)},
            )
            await resp(scope, receive, send)
            return
        if self.fail_rate and self._rng.random() < self.fail_rate:
            resp = JSONResponse(
                {
                    "title": "Service unavailable",
                    "detail": "Injected failure (cogfleet serve --fail-rate).",
                    "status": 503,
                },
                status_code=503,
                media_type="application/problem+json",
            )
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


class NetworkLatency:
    """Pure ASGI middleware: each HTTP request waits ``seconds`` first (a distant API).

    Each request is logged as ``request <METHOD> <path> <status> <start> <end>``
    (wall-clock seconds since the epoch, with milliseconds).
    """

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"request latency must not be negative, not {seconds}")
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.time()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await asyncio.sleep(self.seconds)
        try:
            await self.app(scope, receive, sending)
        finally:
            request_log.info(
                "request %s %s %d %.3f %.3f",
                scope.get("method", "?"), scope.get("path", "?"), status, start, time.time(),
            )
