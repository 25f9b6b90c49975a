"""Run real Cog predictors under their SDK's server (``python -m cog.server.http``), kept warm.

A :class:`RunnerPool` owns one coglet process per *key* (the caller's name for a
version + mode + environment). The first :meth:`RunnerPool.run` for a key starts
coglet in the build folder, waits for ``/health-check`` to report ``READY``, and
later calls reuse that process, so ``setup()`` runs once per process.

How this module talks to coglet 0.23.1, and what a caller should know:

* **Requests.** Each prediction is one synchronous ``POST /predictions`` (or
  ``/trainings``) carrying our ``id``. Only a caller that wants intermediate states
  (``on_update``) gets a ``webhook`` pointing at a loopback receiver inside this
  process: coglet builds a new HTTP client for every request that names a webhook,
  about 10 ms of CPU, and measured under load that alone capped a runner at about
  50 predictions a second whatever the concurrency. coglet posts ``start`` (status
  ``processing``), ``logs`` (cumulative, throttled to about two a second) and ``output`` events
  there; they are handed to ``on_update`` in order. The synchronous answer is the
  final state, so updates that arrive after it are dropped. coglet answers a
  *failed* or *canceled* request with ``logs: ""``; the pool takes them from the
  ``completed`` webhook, or without a webhook from coglet's own log lines (JSON
  lines on its stdout naming the prediction id and the source stream). An
  intermediate ``output`` is always a list, even when the final output is a single
  value. ``started_at`` is when the ``start`` webhook arrived.
* **Errors.** An exception in ``run()``/``predict()`` is an ordinary response with
  ``status: failed`` and ``error: "Prediction failed: Prediction failed: <Type>: <msg>"``
  (no traceback). Invalid input is HTTP 422 and raises :class:`InvalidInput`.
  coglet validates only because ``.cog/openapi_schema.json`` exists in the build folder.
  An explicit ``null`` for an optional input is a 422 in coglet; omit the key instead.
* **Setup.** A failing ``setup()`` leaves coglet up with ``SETUP_FAILED``; the pool
  stops that process and raises :class:`SetupFailed` with coglet's setup logs. On
  failure coglet 0.23.1 keeps only one line, e.g. ``worker setup failed: ... Setup
  failed: setup failed: RuntimeError: weights missing``: what ``setup()`` printed and
  the traceback are lost (they are kept, prefixed ``[coglet::setup]``, when setup
  succeeds). The next call starts a fresh process.
* **Weights.** With ``env={"COG_WEIGHTS": value}`` coglet passes ``value`` unchanged,
  as a plain ``str``, to ``setup(weights=...)`` when ``setup`` has a ``weights``
  parameter (``cog.predictor.extract_setup_weights``: no download, no ``Path``); a
  ``setup()`` without that parameter is called with no arguments and can still read
  the environment variable. So pass a local file path (or a URL the predictor
  fetches itself). ``COG_*`` variables of this process are never inherited.
* **Files.** ``Path`` inputs accept ``data:`` URIs (and ``http(s)`` URLs, which are
  unreachable offline). File outputs come back as ``data:<mime>;base64,...`` URIs
  and are returned unchanged. Each runner's process has its own ``TMPDIR`` (unless
  cog.yaml's ``environment`` sets one), removed when the runner stops: the files a
  model writes with ``tempfile`` for its outputs do not pile up in the system's
  temporary folder.
* **Concurrency.** coglet's slot count comes only from ``COG_MAX_CONCURRENCY``,
  which the pool sets from ``concurrency.max`` in cog.yaml (1 in train mode, where
  ``train()`` is usually synchronous). Calls beyond that wait here for a free slot
  instead of getting coglet's 409.
* **Training.** A training runner is a separate ``--x-mode train`` server with only
  ``COG_TRAIN_TYPE_STUB`` set: a predict-mode server that also has the train stub
  exposes ``/trainings`` but then calls ``run()`` with the training inputs.
* **Cancel.** ``POST /predictions/{id}/cancel`` raises ``CancelationException`` in a
  sync predictor (``asyncio.CancelledError`` in an async one) and the request
  answers ``status: canceled``; the process stays usable. Dropping the synchronous
  request (a cancelled ``run()`` task) also cancels the work inside coglet, but
  coglet frees that slot only when the worker has stopped (a new request meanwhile
  gets 409), so the pool keeps the slot until coglet's ``completed`` webhook.
* **Crashes.** If the worker process dies (``os._exit``, OOM), coglet answers
  ``status: failed, error: "Worker crashed"``, reports ``UNHEALTHY`` and then gives
  409 to every request; the pool drops such a runner so the next call starts a new
  one. Predictions in flight when the pool closes also end as ``Worker crashed``.
* **Runtimes, processes, interpreter, environment**: see :mod:`._runner_process`.
  Each runner's output goes to ``<log_dir>/<key>.log`` (a private temporary
  folder, removed on close, when no ``log_dir`` is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cogfleet._errors import ConfigError, RemoteError
from cogfleet.server._receiver import WebhookReceiver
from cogfleet.server._runner_process import (
    POLL_FIRST,
    POLL_MAX,
    STOP_GRACE,
    InvalidInput,
    Mode,
    OnUpdate,
    Runner,
    Runtime,
    SetupFailed,
    StartWith,
    group_members,
    logged_lines,
    read_cog_yaml,
    utc_now,
)

__all__ = ["InvalidInput", "RunnerPool", "Runtime", "SetupFailed"]

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


@dataclass
class _Inflight:
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


class RunnerPool:
    """Warm model servers, one per key, with per-runner concurrency limits.

    Use inside one asyncio event loop; call :meth:`close` before the loop ends.
    """

    def __init__(
        self,
        *,
        idle_timeout: float = 300.0,
        python: str = sys.executable,
        log_dir: Path | None = None,
        setup_timeout: float = 600.0,
    ) -> None:
        """``idle_timeout``: seconds a runner may sit unused before it is stopped;
        ``python``: the default interpreter (with cog/coglet installed) for calls
        that name no :class:`Runtime`; ``log_dir``: where each runner's
        ``<key>.log`` goes; ``setup_timeout``: limit on reaching READY."""
        self.idle_timeout = idle_timeout
        self.default_runtime = Runtime(python=python)
        self.setup_timeout = setup_timeout
        self._own_tmp: Path | None = None
        if log_dir is None:
            self._own_tmp = Path(tempfile.mkdtemp(prefix="cogfleet-runner-"))
            log_dir = self._own_tmp
        self.log_dir = log_dir
        self._runners: dict[str, Runner] = {}
        self._stopping: set[Runner] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._inflight: dict[str, _Inflight] = {}
        self._client: aiohttp.ClientSession | None = None
        self._receiver: WebhookReceiver | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    # ------------------------------------------------------------------ public

    async def run(
        self,
        key: str,
        build_dir: Path,
        *,
        mode: Mode,
        prediction_id: str,
        input: dict[str, Any],
        env: dict[str, str] | None = None,
        on_update: OnUpdate | None = None,
        runtime: Runtime | None = None,
    ) -> dict[str, Any]:
        """Run one prediction (or training) on the runner for ``key``; return the
        server's final response plus ``started_at``/``completed_at``.

        Starts the runner on first use under ``runtime`` (default: the pool's
        interpreter with coglet; raises :class:`SetupFailed` if setup fails), waits
        for a free slot, and raises :class:`InvalidInput` on the server's 422.
        ``on_update`` gets intermediate states (``status: processing`` at least once);
        without it coglet is given no webhook, which keeps its per-request cost low.
        """
        if self._closed:
            raise RuntimeError("RunnerPool is closed")
        if prediction_id in self._inflight:
            raise ValueError(f"prediction {prediction_id!r} is already running")
        await self._ensure_started()
        inflight = _Inflight(prediction_id, on_update)
        self._inflight[prediction_id] = inflight
        handed_off = False
        inflight.consumer = asyncio.create_task(inflight.deliver())
        try:
            runner = await self._runner_for(
                key, build_dir, mode, env, runtime or self.default_runtime
            )
            inflight.runner = runner
            async with runner.cond:
                await runner.cond.wait_for(
                    lambda: inflight.cancel_requested or runner.in_flight < runner.slots
                )
                if not inflight.cancel_requested:
                    runner.in_flight += 1
            if inflight.cancel_requested:
                return await self._finish(inflight, self._canceled_before_start(inflight))
            try:
                result = await self._post(runner, inflight, input)
                if result.get("status") == "failed" and not await self._healthy(runner):
                    # e.g. the worker died ("Worker crashed"): coglet stays up but every
                    # later request gets 409, so the next call starts a fresh process.
                    self._retire(runner)
            except asyncio.CancelledError:
                # coglet cancels a dropped request but frees its slot only once the
                # worker has stopped: hold our slot (and the webhook route) until then.
                handed_off = True
                task = asyncio.create_task(self._release_after_drop(runner, inflight))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                raise
            finally:
                if not handed_off:
                    await self._release_slot(runner)
            return await self._finish(inflight, result)
        finally:
            if not handed_off:
                self._forget(inflight)

    async def cancel(self, prediction_id: str) -> bool:
        """Cancel a prediction this pool is running or has queued; ``True`` if it was."""
        inflight = self._inflight.get(prediction_id)
        if inflight is None or inflight.finished:
            return False
        inflight.cancel_requested = True
        runner = inflight.runner
        if runner is not None:
            async with runner.cond:
                runner.cond.notify_all()
        if not inflight.sent or runner is None:
            return True  # run() sees the flag before it sends anything to coglet
        return await self._cancel_in_coglet(runner, inflight)

    async def _cancel_in_coglet(self, runner: Runner, inflight: _Inflight) -> bool:
        """Ask coglet to cancel ``inflight`` until it accepts, the run ends, or 5 s pass.

        coglet may not have registered the request yet: try again on its start event
        (with a webhook) or after a short pause (without one).
        """
        deadline = time.monotonic() + 5.0
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

    async def stop_idle(self) -> None:
        """Stop runners with nothing in flight for longer than ``idle_timeout``."""
        cutoff = time.monotonic() - self.idle_timeout
        for key, runner in list(self._runners.items()):
            if runner.users == 0 and runner.ready.done() and runner.last_used <= cutoff:
                if self._runners.get(key) is runner:
                    del self._runners[key]
                log.info("stopping idle runner %s", key)
                await self._stop(runner)

    async def close(self) -> None:
        """Stop every coglet process (the whole process group) and the webhook receiver."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        runners = list(self._runners.values())
        self._runners.clear()
        for runner in runners:
            runner.stopping = True
            if runner.start_task is not None and not runner.start_task.done():
                runner.start_task.cancel()
        await asyncio.gather(
            *(r.start_task for r in runners if r.start_task is not None), return_exceptions=True
        )
        await asyncio.gather(*(self._stop(r) for r in runners), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._receiver is not None:
            await self._receiver.close()
            self._receiver = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._own_tmp is not None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)
            self._own_tmp = None

    def processes(self) -> list[int]:
        """PIDs of live coglet processes: each runner's server and its worker(s)."""
        runners = [*self._runners.values(), *self._stopping]
        leaders = {r.proc.pid for r in runners if r.proc is not None and r.alive()}
        return sorted(leaders | group_members(leaders))

    # ------------------------------------------------------------------ internals

    def _forget(self, inflight: _Inflight) -> None:
        inflight.finished = True
        runner = inflight.runner
        if runner is not None:
            runner.users -= 1
            runner.last_used = time.monotonic()
        if self._inflight.get(inflight.prediction_id) is inflight:
            del self._inflight[inflight.prediction_id]
        if inflight.consumer is not None and not inflight.consumer.done():
            inflight.consumer.cancel()

    async def _release_slot(self, runner: Runner) -> None:
        async with runner.cond:
            runner.in_flight -= 1
            runner.cond.notify_all()

    async def _release_after_drop(self, runner: Runner, inflight: _Inflight) -> None:
        try:
            if runner.alive():
                await self._cancel_in_coglet(runner, inflight)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inflight.completed_event.wait(), STOP_GRACE)
        finally:
            self._forget(inflight)
            await self._release_slot(runner)

    async def _healthy(self, runner: Runner) -> bool:
        if self._client is None or not runner.alive():  # closed pool, or a dead process
            return False
        return (await runner.health(self._client)).get("status") in ("READY", "BUSY")

    def _retire(self, runner: Runner) -> None:
        """Drop a broken runner from the pool and stop it in the background."""
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]
        task = asyncio.create_task(self._stop(runner))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stop(self, runner: Runner) -> None:
        # Still listed by processes() until the whole group is gone.
        self._stopping.add(runner)
        try:
            await runner.stop()
        finally:
            self._stopping.discard(runner)

    async def _ensure_started(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        if self._client is None:
            # aiohttp rather than httpx here: one prediction is one request to coglet,
            # and httpx's pure-Python async stack cost ~2 ms of CPU per request, as much
            # as the rest of the server's work for that prediction. limit=0: the pool's
            # own slots bound the connections to each runner.
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30.0),
                connector=aiohttp.TCPConnector(limit=0),
            )
        if self._receiver is None:
            self._receiver = WebhookReceiver(self._on_webhook)
            await self._receiver.start()
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        # A periodic timer: idleness is a deadline, not an event anyone signals.
        period = max(0.05, min(self.idle_timeout / 2, 30.0))
        while True:
            await asyncio.sleep(period)
            try:
                await self.stop_idle()
            except Exception:
                log.exception("stopping idle runners failed")

    def _scratch(self) -> Path:
        if self._own_tmp is None:
            self._own_tmp = Path(tempfile.mkdtemp(prefix="cogfleet-runner-"))
        return self._own_tmp

    def _start_with(self) -> StartWith:
        assert self._client is not None and self._receiver is not None
        return StartWith(self._client, self._receiver.upload_url, self.setup_timeout, self._scratch)

    def _on_webhook(self, prediction_id: str, body: bytes) -> None:
        inflight = self._inflight.get(prediction_id)
        if inflight is None or inflight.finished:
            return
        try:
            update = json.loads(body)
        except ValueError:
            return
        if not isinstance(update, dict):
            return
        if update.get("status") == "processing" and inflight.started_at is None:
            inflight.started_at = utc_now()
        inflight.started.set()
        if update.get("status") in _TERMINAL:
            # The final state is run()'s return value; keep it only for its logs.
            inflight.completed = update
            inflight.completed_event.set()
            return
        update["started_at"] = inflight.started_at
        if update.get("output") is not None and self._receiver is not None:
            update["output"] = self._receiver.inline_files(update["output"], keep=True)
        inflight.updates.put_nowait(update)

    async def _runner_for(
        self,
        key: str,
        build_dir: Path,
        mode: Mode,
        env: dict[str, str] | None,
        runtime: Runtime,
    ) -> Runner:
        assert self._lock is not None
        async with self._lock:
            runner = self._runners.get(key)
            if runner is not None and runner.ready.done() and not runner.alive():
                # The process died (crash, OOM, external kill): clear its group, start afresh.
                del self._runners[key]
                await self._stop(runner)
                runner = None
            if runner is None:
                config = read_cog_yaml(build_dir)
                if (config.train_ref if mode == "train" else config.predict_ref) is None:
                    what = "train" if mode == "train" else "run (or predict)"
                    raise ConfigError(build_dir / "cog.yaml", f"{what}: not set")
                safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:120]
                self.log_dir.mkdir(parents=True, exist_ok=True)
                runner = Runner(key, build_dir, mode, config, self.log_dir / f"{safe}.log", runtime)
                self._runners[key] = runner
                runner.start_task = asyncio.create_task(runner.start(env, self._start_with()))
            runner.users += 1
        try:
            await asyncio.shield(runner.ready)
        except BaseException:
            runner.users -= 1
            failed = runner.ready.done() and runner.ready.exception() is not None
            if failed and self._runners.get(key) is runner:
                del self._runners[key]
            raise
        return runner

    async def _post(
        self, runner: Runner, inflight: _Inflight, input: dict[str, Any]
    ) -> dict[str, Any]:
        assert self._client is not None and self._receiver is not None
        body: dict[str, Any] = {"id": inflight.prediction_id, "input": input}
        legacy = runner.runtime.server == "legacy"
        # The Python server's final state comes only through its completed webhook.
        inflight.hooked = inflight.on_update is not None or legacy
        if inflight.hooked:
            body["webhook"] = self._receiver.url(inflight.prediction_id)
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
            return _exited(inflight, exc, inflight.started_at or sent_at)
        if status == 422:
            raise InvalidInput(_detail(answer))
        if status == 409 and not await self._healthy(runner):
            self._retire(runner)
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

    async def _await_completed(
        self, runner: Runner, inflight: _Inflight, sent_at: str
    ) -> dict[str, Any]:
        """The final state of an async prediction: its ``completed`` webhook.

        Ends early, as a failed prediction, when the server process dies first.
        """
        assert runner.proc is not None and self._receiver is not None
        done = asyncio.ensure_future(inflight.completed_event.wait())
        exited = asyncio.ensure_future(runner.proc.wait())
        try:
            await asyncio.wait({done, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (done, exited):
                task.cancel()
        if inflight.completed is None:
            return _exited(inflight, "it stopped before the prediction finished", sent_at)
        final = inflight.completed
        result = {key: final.get(key) for key in _RESULT_KEYS if key in final}
        result["output"] = self._receiver.inline_files(final.get("output"))
        result.setdefault("started_at", inflight.started_at or sent_at)
        return result

    async def _send(
        self, runner: Runner, body: dict[str, Any], *, respond_async: bool = False
    ) -> tuple[int, bytes]:
        """POST ``body`` to the runner: its HTTP status and the answer's body."""
        assert self._client is not None
        delay = POLL_FIRST
        deadline = time.monotonic() + _BUSY_RETRY
        headers = {"Content-Type": "application/json"}
        if respond_async:
            headers["Prefer"] = "respond-async"
        data = json.dumps(body).encode()
        while True:
            # No read timeout: a prediction takes as long as it takes; cancel() stops it.
            async with self._client.post(
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
            if not await self._healthy(runner):
                return status, answer
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def _finish(self, inflight: _Inflight, result: dict[str, Any]) -> dict[str, Any]:
        """Deliver pending updates in order, then complete ``result``."""
        inflight.finished = True
        inflight.started.set()
        inflight.updates.put_nowait(None)
        if inflight.consumer is not None:
            await inflight.consumer
        if not inflight.saw_processing and result.get("started_at"):
            # Too fast for the start webhook to land: still report the running state once.
            await inflight._call(
                {
                    "id": inflight.prediction_id,
                    "status": "processing",
                    "logs": "",
                    "metrics": {},
                    "started_at": result["started_at"],
                }
            )
        for name in ("output", "error", "logs"):
            result.setdefault(name, None if name != "logs" else "")
        result.setdefault("metrics", {})
        result.setdefault("id", inflight.prediction_id)
        result["completed_at"] = utc_now()
        return result

    def _canceled_before_start(self, inflight: _Inflight) -> dict[str, Any]:
        return {
            "id": inflight.prediction_id,
            "status": "canceled",
            "output": None,
            "error": None,
            "logs": "",
            "metrics": {},
            "started_at": None,
        }

    async def _send_cancel(self, runner: Runner, prediction_id: str) -> bool:
        assert self._client is not None
        quoted = urllib.parse.quote(prediction_id, safe="")
        try:
            async with self._client.post(
                f"{runner.base_url}/{runner.route}/{quoted}/cancel"
            ) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def _exited(inflight: _Inflight, why: object, started_at: str) -> dict[str, Any]:
    return {
        "id": inflight.prediction_id,
        "status": "failed",
        "output": None,
        "error": f"the model process exited unexpectedly: {why}",
        "logs": "",
        "metrics": {},
        "started_at": started_at,
    }


def _detail(answer: bytes) -> list[Any]:
    """The ``detail`` list of a 422 answer (empty when there is none)."""
    try:
        found = json.loads(answer)
    except ValueError:
        return []
    detail = found.get("detail") if isinstance(found, dict) else None
    return detail if isinstance(detail, list) else []
