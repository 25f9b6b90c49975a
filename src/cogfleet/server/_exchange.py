"""One prediction's exchange with its model server: the request, its webhooks, cancel.

:class:`Inflight` is what the pool knows of one prediction from ``run()`` entry to
its return (the intermediate states it is handed, its final ``completed`` state);
:class:`Exchange` sends it to a runner (:mod:`._runner_process`) over the pool's
HTTP client and turns what comes back into a final result. :mod:`._runner` decides
which runner and when (slots, start-up, retiring broken runners).

How this talks to coglet 0.23.1, and what a caller should know:

* **Requests.** Each prediction is one synchronous ``POST /predictions`` (or
  ``/trainings``) carrying our ``id``. Only a caller that wants intermediate states
  (``on_update``) gets a ``webhook`` pointing at the pool's loopback receiver
  (:mod:`._receiver`): coglet builds a new HTTP client for every request that names
  a webhook, about 10 ms of CPU, and measured under load that alone capped a runner
  at about 50 predictions a second whatever the concurrency. coglet posts ``start``
  (status ``processing``), ``logs`` (cumulative, throttled to about two a second)
  and ``output`` events there; they are handed to ``on_update`` in order. The
  synchronous answer is the final state, so updates that arrive after it are
  dropped. coglet answers a *failed* or *canceled* request with ``logs: ""``; they
  are taken from the ``completed`` webhook, or without a webhook from coglet's own
  log lines (JSON lines on its stdout naming the prediction id and the source
  stream). An intermediate ``output`` is always a list, even when the final output
  is a single value. ``started_at`` is when the ``start`` webhook arrived.
* **The Python server** (Cog <= 0.16) is sent ``Prefer: respond-async`` and always
  a webhook: its final state comes only from the ``completed`` webhook, with output
  files uploaded to the receiver and inlined back as ``data:`` URIs.
* **Errors.** An exception in ``run()``/``predict()`` is an ordinary response with
  ``status: failed`` and ``error: "Prediction failed: Prediction failed: <Type>: <msg>"``
  (no traceback). Invalid input is HTTP 422 and raises :class:`InvalidInput`.
  coglet validates only because ``.cog/openapi_schema.json`` exists in the build folder.
  An explicit ``null`` for an optional input is a 422 in coglet; omit the key instead.
  A 409 from a server that is no longer healthy (its worker died during another
  prediction) ends the prediction as failed; a 409 from a healthy one (a slot still
  finishing a canceled prediction) is retried for a few seconds.
* **Files.** File outputs come back from coglet as ``data:<mime>;base64,...`` URIs
  and are returned unchanged.
* **Cancel.** ``POST /predictions/{id}/cancel`` raises ``CancelationException`` in a
  sync predictor (``asyncio.CancelledError`` in an async one) and the request
  answers ``status: canceled``; the process stays usable. coglet may not have
  registered a request yet when the cancel arrives, so :meth:`Exchange.cancel`
  tries again (on the ``start`` webhook, or after a short pause) for up to 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from cogfleet._errors import RemoteError
from cogfleet.server._receiver import WebhookReceiver
from cogfleet.server._runner_process import (
    POLL_FIRST,
    POLL_MAX,
    InvalidInput,
    OnUpdate,
    Runner,
    logged_lines,
    utc_now,
)

__all__ = ["Exchange", "Inflight"]

log = logging.getLogger(__name__)

# "completed" duplicates the HTTP answer but is the only place coglet puts the logs
# of a failed or canceled prediction.
_EVENTS = ["start", "output", "logs", "completed"]
_TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# What of the Python server's final webhook (a whole PredictionResponse) is kept.
_RESULT_KEYS = ("id", "status", "output", "error", "logs", "metrics", "started_at")
# Upper bound on waiting for that webhook after the HTTP answer.
_COMPLETED_WAIT = 2.0
# How long a 409 (slot still busy with a canceled prediction) is retried.
_BUSY_RETRY = 10.0
# A prediction request has no overall limit, only one on connecting.
_PREDICT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10.0)
# How long cancel() keeps asking a model server that has not registered the request.
_CANCEL_WINDOW = 5.0


@dataclass
class Inflight:
    """One prediction known to the pool, from ``run()`` entry to its return."""

    prediction_id: str
    on_update: OnUpdate | None
    runner: Runner | None = None
    # Whether coglet was given a webhook (only when someone wants updates).
    hooked: bool = False
    # Size of the runner's log file when the request was sent.
    log_offset: int = 0
    sent: bool = False
    cancel_requested: bool = False
    finished: bool = False
    started_at: str | None = None
    saw_processing: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)
    completed: dict[str, Any] | None = None
    completed_event: asyncio.Event = field(default_factory=asyncio.Event)
    updates: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    consumer: asyncio.Task[None] | None = None

    async def deliver(self) -> None:
        """Hand webhook updates to ``on_update`` one at a time, in arrival order."""
        while True:
            update = await self.updates.get()
            if update is None:
                return
            await self._call(update)

    async def _call(self, update: dict[str, Any]) -> None:
        if update.get("status") == "processing":
            self.saw_processing = True
        if self.on_update is None:
            return
        try:
            result = self.on_update(update)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a broken callback must not break the prediction
            log.exception("on_update for %s failed", self.prediction_id)

    def receive(self, body: bytes, inline: Callable[[Any], Any]) -> None:
        """Take one webhook POST of the model server: queue an intermediate state for
        ``on_update``, or keep the final one (``inline`` turns uploaded-file URLs of
        an intermediate output into ``data:`` URIs)."""
        try:
            update = json.loads(body)
        except ValueError:
            return
        if not isinstance(update, dict):
            return
        if update.get("status") == "processing" and self.started_at is None:
            self.started_at = utc_now()
        self.started.set()
        if update.get("status") in _TERMINAL:
            # The final state is run()'s return value; keep it only for its logs.
            self.completed = update
            self.completed_event.set()
            return
        update["started_at"] = self.started_at
        if update.get("output") is not None:
            update["output"] = inline(update["output"])
        self.updates.put_nowait(update)

    async def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Deliver pending updates in order, then complete ``result``."""
        self.finished = True
        self.started.set()
        self.updates.put_nowait(None)
        if self.consumer is not None:
            await self.consumer
        if not self.saw_processing and result.get("started_at"):
            # Too fast for the start webhook to land: still report the running state once.
            await self._call(
                {
                    "id": self.prediction_id,
                    "status": "processing",
                    "logs": "",
                    "metrics": {},
                    "started_at": result["started_at"],
                }
            )
        for name in ("output", "error", "logs"):
            result.setdefault(name, None if name != "logs" else "")
        result.setdefault("metrics", {})
        result.setdefault("id", self.prediction_id)
        result["completed_at"] = utc_now()
        return result

    def canceled_before_start(self) -> dict[str, Any]:
        """The result of a prediction canceled while it waited for a slot."""
        return self._ended("canceled", None, None)

    def exited(self, why: object, started_at: str) -> dict[str, Any]:
        """The result of a prediction whose model server process went away."""
        return self._ended("failed", f"the model process exited unexpectedly: {why}", started_at)

    def _ended(self, status: str, error: str | None, started_at: str | None) -> dict[str, Any]:
        return {
            "id": self.prediction_id,
            "status": status,
            "output": None,
            "error": error,
            "logs": "",
            "metrics": {},
            "started_at": started_at,
        }


class Exchange:
    """Requests to the model servers over one HTTP client, with one loopback
    receiver for their webhooks; :meth:`close` closes both."""

    def __init__(self, dispatch: Callable[[str, bytes], None]) -> None:
        """``dispatch(prediction_id, body)`` gets every webhook POST the receiver takes.

        Create it inside the event loop that uses it, then :meth:`start` it.
        """
        # aiohttp rather than httpx here: one prediction is one request to coglet,
        # and httpx's pure-Python async stack cost ~2 ms of CPU per request, as much
        # as the rest of the server's work for that prediction. limit=0: the pool's
        # own slots bound the connections to each runner. keepalive_timeout: the Python
        # server of Cog <= 0.16 (uvicorn's default) closes a connection idle for 5 s, and
        # one reused just as it closes fails the prediction with a reset connection, so
        # an idle connection is dropped here first (coglet keeps them open).
        self.client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30.0),
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0),
        )
        self.receiver = WebhookReceiver(dispatch)

    async def start(self) -> None:
        await self.receiver.start()

    async def close(self) -> None:
        await self.receiver.close()
        await self.client.close()

    def inline_update(self, output: Any) -> Any:
        """An intermediate output with uploaded files as ``data:`` URIs (kept stored)."""
        return self.receiver.inline_files(output, keep=True)

    async def healthy(self, runner: Runner) -> bool:
        """Whether the runner's server is up and answers READY or BUSY."""
        if not runner.alive():
            return False
        return (await runner.health(self.client)).get("status") in ("READY", "BUSY")

    async def post(
        self, runner: Runner, inflight: Inflight, input: dict[str, Any]
    ) -> dict[str, Any]:
        """Run ``inflight`` on ``runner`` (a slot already held): the final state,
        with ``started_at``. Raises :class:`InvalidInput` on the server's 422."""
        body: dict[str, Any] = {"id": inflight.prediction_id, "input": input}
        legacy = runner.runtime.server == "legacy"
        # The Python server's final state comes only through its completed webhook.
        inflight.hooked = inflight.on_update is not None or legacy
        if inflight.hooked:
            body["webhook"] = self.receiver.url(inflight.prediction_id)
            body["webhook_events_filter"] = _EVENTS
        else:
            with contextlib.suppress(OSError):
                inflight.log_offset = runner.log_path.stat().st_size
        sent_at = utc_now()
        inflight.sent = True
        try:
            status, answer = await self._send(runner, body, respond_async=legacy)
        except aiohttp.ClientError as exc:
            if runner.alive():
                raise
            return inflight.exited(exc, inflight.started_at or sent_at)
        if status == 422:
            raise InvalidInput(_detail(answer))
        if status == 409 and not await self.healthy(runner):
            return {
                "id": inflight.prediction_id,
                "status": "failed",
                "output": None,
                "error": "Worker crashed (the model process stopped during another prediction)",
                "logs": "",
                "metrics": {},
                "started_at": sent_at,
            }
        if legacy and status == 202:
            return await self._await_completed(runner, inflight, sent_at)
        try:
            result = json.loads(answer) if status == 200 else None
        except ValueError:
            result = None
        if not isinstance(result, dict):
            raise RemoteError(
                f"{runner.runtime.server_name} answered HTTP {status} for "
                f"{runner.route}: {answer[:500].decode('utf-8', 'replace')}"
            )
        if result.get("status") != "succeeded":
            # coglet answers a failed or canceled request with empty logs, while its
            # "completed" webhook carries them (it is usually already here) and its
            # log lines name the prediction.
            if inflight.hooked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inflight.completed_event.wait(), _COMPLETED_WAIT)
                found = (inflight.completed or {}).get("logs") or ""
            else:
                found = await asyncio.to_thread(
                    logged_lines, runner.log_path, inflight.log_offset, inflight.prediction_id
                )
            if len(found) > len(result.get("logs") or ""):
                result["logs"] = found
        result.setdefault("started_at", inflight.started_at or sent_at)
        return result

    async def cancel(self, runner: Runner, inflight: Inflight) -> bool:
        """Ask the server to cancel ``inflight`` until it accepts, the run ends, or 5 s pass.

        coglet may not have registered the request yet: try again on its start event
        (with a webhook) or after a short pause (without one).
        """
        deadline = time.monotonic() + _CANCEL_WINDOW
        delay = POLL_FIRST
        while not await self._send_cancel(runner, inflight.prediction_id):
            ended = inflight.finished or inflight.completed_event.is_set()
            if ended or not runner.alive() or time.monotonic() > deadline:
                return False
            if inflight.started.is_set():
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inflight.started.wait(), timeout=delay)
            delay = min(delay * 2, POLL_MAX)
        return True

    async def _await_completed(
        self, runner: Runner, inflight: Inflight, sent_at: str
    ) -> dict[str, Any]:
        """The final state of an async prediction: its ``completed`` webhook.

        Ends early, as a failed prediction, when the server process dies first.
        """
        assert runner.proc is not None
        done = asyncio.ensure_future(inflight.completed_event.wait())
        exited = asyncio.ensure_future(runner.proc.wait())
        try:
            await asyncio.wait({done, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (done, exited):
                task.cancel()
        if inflight.completed is None:
            return inflight.exited("it stopped before the prediction finished", sent_at)
        final = inflight.completed
        result = {key: final.get(key) for key in _RESULT_KEYS if key in final}
        result["output"] = self.receiver.inline_files(final.get("output"))
        result.setdefault("started_at", inflight.started_at or sent_at)
        return result

    async def _send(
        self, runner: Runner, body: dict[str, Any], *, respond_async: bool = False
    ) -> tuple[int, bytes]:
        """POST ``body`` to the runner: its HTTP status and the answer's body."""
        delay = POLL_FIRST
        deadline = time.monotonic() + _BUSY_RETRY
        headers = {"Content-Type": "application/json"}
        if respond_async:
            headers["Prefer"] = "respond-async"
        data = json.dumps(body).encode()
        while True:
            # No read timeout: a prediction takes as long as it takes; cancel() stops it.
            async with self.client.post(
                f"{runner.base_url}/{runner.route}",
                data=data,
                headers=headers,
                timeout=_PREDICT_TIMEOUT,
            ) as resp:
                status, answer = resp.status, await resp.read()
            # 409 means coglet is still finishing a canceled prediction in the slot we
            # hold; it signals nothing when that ends, so retry briefly.
            if status != 409 or time.monotonic() > deadline:
                return status, answer
            if not await self.healthy(runner):
                return status, answer
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def _send_cancel(self, runner: Runner, prediction_id: str) -> bool:
        quoted = urllib.parse.quote(prediction_id, safe="")
        try:
            async with self.client.post(
                f"{runner.base_url}/{runner.route}/{quoted}/cancel"
            ) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def _detail(answer: bytes) -> list[Any]:
    """The ``detail`` list of a 422 answer (empty when there is none)."""
    try:
        found = json.loads(answer)
    except ValueError:
        return []
    detail = found.get("detail") if isinstance(found, dict) else None
    return detail if isinstance(detail, list) else []
