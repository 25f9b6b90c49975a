"""Run real Cog predictors under their SDK's server (``python -m cog.server.http``), kept warm.

A :class:`RunnerPool` owns one coglet process per *key* (the caller's name for a
version + mode + environment). The first :meth:`RunnerPool.run` for a key starts
coglet in the build folder, waits for ``/health-check`` to report ``READY``, and
later calls reuse that process, so ``setup()`` runs once per process. The pool
decides which runner serves a prediction and when (start-up, slots, retiring broken
runners, stopping idle ones); the exchange of one prediction with its runner (the
request, its webhooks, cancel) is :mod:`._exchange`, and one model server process
is :mod:`._runner_process`.

What a caller should know:

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
  unreachable offline). Each runner's process has its own ``TMPDIR`` (unless
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
* **Cancel.** A prediction canceled while it waits for a slot never reaches coglet.
  Dropping the synchronous request (a cancelled ``run()`` task) also cancels the
  work inside coglet, but coglet frees that slot only when the worker has stopped
  (a new request meanwhile gets 409), so the pool keeps the slot until coglet's
  ``completed`` webhook.
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
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cogfleet._errors import ConfigError
from cogfleet.server._exchange import Exchange, Inflight
from cogfleet.server._runner_process import (
    STOP_GRACE,
    InvalidInput,
    Mode,
    OnUpdate,
    Runner,
    Runtime,
    SetupFailed,
    StartWith,
    group_members,
    read_cog_yaml,
)

__all__ = ["InvalidInput", "RunnerPool", "Runtime", "SetupFailed"]

log = logging.getLogger(__name__)


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
        self._inflight: dict[str, Inflight] = {}
        self._exchange: Exchange | None = None
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
        exchange = self._exchange
        assert exchange is not None
        inflight = Inflight(prediction_id, on_update)
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
                return await inflight.finish(inflight.canceled_before_start())
            try:
                result = await exchange.post(runner, inflight, input)
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
            return await inflight.finish(result)
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
        if self._exchange is None:  # the pool has closed: the prediction is ending
            return False
        return await self._exchange.cancel(runner, inflight)

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
        if self._exchange is not None:
            await self._exchange.close()
            self._exchange = None
        if self._own_tmp is not None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)
            self._own_tmp = None

    def processes(self) -> list[int]:
        """PIDs of live coglet processes: each runner's server and its worker(s)."""
        runners = [*self._runners.values(), *self._stopping]
        leaders = {r.proc.pid for r in runners if r.proc is not None and r.alive()}
        return sorted(leaders | group_members(leaders))

    # ------------------------------------------------------------------ internals

    def _forget(self, inflight: Inflight) -> None:
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

    async def _release_after_drop(self, runner: Runner, inflight: Inflight) -> None:
        try:
            if runner.alive() and self._exchange is not None:
                await self._exchange.cancel(runner, inflight)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inflight.completed_event.wait(), STOP_GRACE)
        finally:
            self._forget(inflight)
            await self._release_slot(runner)

    async def _healthy(self, runner: Runner) -> bool:
        if self._exchange is None:  # a closed pool
            return False
        return await self._exchange.healthy(runner)

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
        if self._exchange is None:
            self._exchange = Exchange(self._on_webhook)
            await self._exchange.start()
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
        assert self._exchange is not None
        client, upload_url = self._exchange.client, self._exchange.receiver.upload_url
        return StartWith(client, upload_url, self.setup_timeout, self._scratch)

    def _on_webhook(self, prediction_id: str, body: bytes) -> None:
        inflight = self._inflight.get(prediction_id)
        if inflight is None or inflight.finished or self._exchange is None:
            return
        inflight.receive(body, self._exchange.inline_update)

    def running(self, key: str) -> bool:
        """Whether a runner for ``key`` is up (started and its process alive)."""
        runner = self._runners.get(key)
        return runner is not None and runner.ready.done() and runner.alive()

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
