"""Webhook delivery for predictions and trainings, signed like Replicate's.

``webhook`` / ``webhook_events_filter`` (start, output, logs, completed) and the
legacy ``webhook_completed`` get the run's JSON (what ``GET`` answers), signed with
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` using the secret
from ``GET /v1/webhooks/default/secret``, each event with its own ``webhook-id``.
Each run's events are delivered in order, one at a time. ``output`` and ``logs``
go out at most every 500 ms, as on Replicate: a change within that time is sent
when it ends (the run as it is then), unless the run has completed meanwhile.
Only the terminal event is retried, on a connection error or an HTTP status of 400
or more, with the same ``webhook-id`` and a new ``webhook-timestamp`` and signature
(each attempt is signed when it is sent, so a receiver's timestamp tolerance holds
for late retries too), backing off exponentially until about a
minute after the run ended (Replicate's schedule); retries still pending when the
server stops are dropped. Redirects are not followed.

Without ``webhook_events_filter`` every event is sent. Replicate's documents
disagree on that default (its API reference names new outputs and completion, an
announcement start and completion, its webhooks guide all four): sending all four
covers each reading, and a handler sees each kind of event it may get there.
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
# Seconds before each retry of a terminal event: the last one about a minute after.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# Intermediate events (output, logs) of a run at most this often.
THROTTLE = 0.5
# Message ids as Replicate's (Svix) have them: msg_ and 24 letters and digits.
_ID_CHARS = string.ascii_letters + string.digits


class Webhooks:
    """The signing secret of a state directory and the background deliveries."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.tasks: set[asyncio.Task[None]] = set()
        self._chain: dict[str, asyncio.Task[None]] = {}
        self._last: dict[str, float] = {}
        # Throttled intermediate events of a run, sent when the interval ends.
        self._held: dict[str, asyncio.TimerHandle] = {}
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
        pid = doc["id"]
        if event in ("logs", "output"):
            # Like Replicate: intermediate events at most every 500 ms; what changes
            # meanwhile goes out when the interval ends.
            loop = asyncio.get_running_loop()
            wait = self._last.get(pid, -THROTTLE) + THROTTLE - loop.time()
            if wait > 0:
                if pid not in self._held:
                    self._held[pid] = loop.call_later(wait, self._release, doc, targets, render)
                return
            self._last[pid] = loop.time()
        elif event == "completed":
            held = self._held.pop(pid, None)
            if held is not None:
                held.cancel()  # the completed event carries everything
        self._send(pid, targets, render(doc), retry=event == "completed")
        if event == "completed":
            self._chain.pop(pid, None)
            self._last.pop(pid, None)

    def _release(
        self,
        doc: dict[str, Any],
        targets: list[str],
        render: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        """Send a throttled intermediate event: the run as it is now."""
        pid = doc["id"]
        self._held.pop(pid, None)
        self._last[pid] = asyncio.get_running_loop().time()
        self._send(pid, targets, render(doc), retry=False)

    def _send(self, pid: str, targets: list[str], doc: dict[str, Any], *, retry: bool) -> None:
        body = json.dumps(doc, separators=(",", ":"))
        previous = self._chain.get(pid)
        task = asyncio.create_task(self._deliver(previous, targets, body, retry=retry))
        self._chain[pid] = task
        self.track(task)

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a background task referenced until it ends (and cancel it on close)."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        """Give pending deliveries a moment, then drop the rest."""
        for held in self._held.values():
            held.cancel()
        self._held.clear()
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
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10, follow_redirects=False)
        for url in urls:
            shown = url.split("?", 1)[0]  # a query may hold the receiver's secret
            # Only the terminal event is retried, as on Replicate: the same webhook-id,
            # signed again with the time of each attempt (the Standard Webhooks way).
            for delay in (*RETRY_DELAYS, None) if retry else (None,):
                try:
                    headers = _signed(key, msg_id, body)
                    resp = await self._http.post(url, content=body, headers=headers)
                    if resp.status_code < 400:
                        break
                    log.warning("webhook %s answered %d", shown, resp.status_code)
                except (httpx.HTTPError, httpx.InvalidURL) as exc:
                    log.warning("webhook %s failed: %s", shown, type(exc).__name__)
                if delay is not None:
                    await asyncio.sleep(delay)


def _signed(key: bytes, msg_id: str, body: str) -> dict[str, str]:
    """The headers of one delivery attempt, signed with the time it is sent."""
    stamp = str(int(datetime.now(UTC).timestamp()))
    mac = hmac.new(key, f"{msg_id}.{stamp}.{body}".encode(), hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
