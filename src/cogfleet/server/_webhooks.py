"""Webhook delivery for predictions and trainings, signed like Replicate's.

``webhook`` / ``webhook_events_filter`` (start, output, logs, completed; intermediate
events at most every 500 ms) and the legacy ``webhook_completed`` get the run's JSON,
signed with ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` using the
secret from ``GET /v1/webhooks/default/secret``. Each run's events are delivered in
order; only the terminal one is retried (with the same ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("cogfleet.server")

WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
# Message ids as Replicate's (Svix) have them: msg_ and 24 letters and digits.
_ID_CHARS = string.ascii_letters + string.digits


class Webhooks:
    """The signing secret of a state directory and the background deliveries."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.tasks: set[asyncio.Task[None]] = set()
        self._chain: dict[str, asyncio.Task[None]] = {}
        self._last: dict[str, float] = {}
        # One client for every delivery: building one per webhook costs ~10 ms of CPU.
        self._http: httpx.AsyncClient | None = None

    def key(self) -> str:
        """The ``whsec_…`` signing secret (created on first use, kept with the state)."""
        path = self.state_dir / "webhook_secret"
        if not path.exists():
            path.write_text("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
            path.chmod(0o600)
        return path.read_text().strip()

    def notify(
        self, doc: dict[str, Any], event: str, render: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Send ``event`` for run ``doc`` (rendered by ``render``) to its webhooks."""
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
            if now - self._last.get(doc["id"], -1.0) < 0.5:
                return
            self._last[doc["id"]] = now
        body = json.dumps(render(doc), separators=(",", ":"))
        previous = self._chain.get(doc["id"])
        retry = event == "completed"
        task = asyncio.create_task(self._deliver(previous, targets, body, retry=retry))
        self._chain[doc["id"]] = task
        self.track(task)
        if event == "completed":
            self._chain.pop(doc["id"], None)
            self._last.pop(doc["id"], None)

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a background task referenced until it ends (and cancel it on close)."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """Give pending deliveries a moment, then drop the rest."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _deliver(
        self, previous: asyncio.Task[None] | None, urls: list[str], body: str, *, retry: bool
    ) -> None:
        if previous is not None:
            # Deliver each run's events in order.
            await asyncio.gather(previous, return_exceptions=True)
        key = base64.b64decode(self.key().split("_", 1)[1])
        msg_id = "msg_" + "".join(secrets.choice(_ID_CHARS) for _ in range(24))
        stamp = str(int(datetime.now(UTC).timestamp()))
        mac = hmac.new(key, f"{msg_id}.{stamp}.{body}".encode(), hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        }
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10, follow_redirects=False)
        for url in urls:
            # Only the terminal event is retried, as on Replicate (same webhook-id).
            for attempt in range(4 if retry else 1):
                try:
                    resp = await self._http.post(url, content=body, headers=headers)
                    if resp.status_code < 400:
                        break
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    log.warning("webhook %s failed: %s", url, exc)
                if attempt < 3 and retry:
                    await asyncio.sleep(0.5 * 2**attempt)
