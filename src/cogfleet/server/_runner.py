"""Run real Cog predictors under their SDK's server (``python -m cog.server.http``), kept warm.

A :class:`RunnerPool` owns one coglet process per *key* (the caller's name for a
version + mode + environment). The first :meth:`RunnerPool.run` for a key starts
coglet in the build folder, waits for ``/health-check`` to report ``READY``, and
later calls reuse that process, so ``setup()`` runs once per process.

How this module talks to coglet 0.23.1, and what a caller should know:

* **Interpreter.** coglet starts its worker as plain ``python`` looked up on
  ``PATH`` (not ``sys.executable``); without the venv first on ``PATH`` the worker
  dies with ``No module named 'coglet'`` and ``/health-check`` stays ``STARTING``
  forever. The pool puts the folder of ``python`` first on ``PATH`` (or a small
  shim when that folder has no ``python``) and bounds start-up by ``setup_timeout``.
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
  and are returned unchanged.
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
* **Processes.** Each coglet runs in its own session / process group together
  with its worker; :meth:`RunnerPool.close` sends SIGTERM to the group, then
  SIGKILL after a grace period. On Linux the child also gets
  ``PR_SET_PDEATHSIG(SIGKILL)``, so it dies if the thread that started it (the
  event loop's thread) dies; coglet's worker exits on its own when coglet dies.
* **Runtimes.** Each call names a :class:`Runtime`: the interpreter (an isolated
  environment's ``bin/python``, or cogfleet's own) and which server its Cog SDK
  ships. Everything above is coglet (SDK >= 0.17). SDKs 0.7 - 0.16 ship the Python
  server (FastAPI + a worker process), driven the way Replicate drives it:
  ``POST /predictions`` with ``Prefer: respond-async`` (202 at once; a sync request
  re-validates its response and fails with 500 for ``int = Input(default=None)``
  under pydantic 2), the final state from the ``completed`` webhook, and
  ``--upload-url`` pointing at the receiver, which keeps each uploaded file and
  answers with its own URL; those URLs are turned back into ``data:`` URIs in the
  output, as coglet gives them. That server validates input with pydantic from the
  predictor's signature (422 with pydantic's ``detail``), reads ``COG_*_TYPE_STUB``
  (SDK >= 0.13; older ones read ``predict:``/``train:`` of cog.yaml), and exits
  when ``setup()`` fails or the worker dies (its setup logs are in the log file).
  Before 0.9.10 it has no ``--host`` and listens on every address.
  A runtime's environment is isolated: ``PYTHONPATH``, ``PYTHONHOME`` and the user
  site are not inherited.
* **Logs.** coglet's stdout/stderr go to ``<log_dir>/<key>.log`` (a private
  temporary folder, removed on close, when no ``log_dir`` is given). The child
  environment has no credentials (see :mod:`cogfleet._credentials`) and no
  ``COG_*`` settings of the parent; ``environment:`` from cog.yaml is added after.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import inspect
import json
import logging
import mimetypes
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import h11
import httpx

from cogfleet._credentials import without_credentials
from cogfleet._errors import ConfigError, RemoteError
from cogfleet._yaml import load_yaml_file

log = logging.getLogger(__name__)

Mode = Literal["predict", "train"]
OnUpdate = Callable[[dict[str, Any]], Awaitable[None] | None]
ServerKind = Literal["coglet", "legacy"]


@dataclass(frozen=True)
class Runtime:
    """What runs a version: an interpreter and the server its Cog SDK ships."""

    python: str = sys.executable
    server: ServerKind = "coglet"
    isolated: bool = False
    """True for an environment of its own (nothing of cogfleet's is inherited)."""
    host_flag: bool = True
    """The server takes ``--host`` (Cog < 0.9.10 has none and binds every address)."""

    @property
    def server_name(self) -> str:
        return "coglet" if self.server == "coglet" else "cog.server.http"

# Seconds between SIGTERM and SIGKILL when stopping a coglet process group.
STOP_GRACE = 5.0
# Health-check polling during start-up only: coglet has no readiness push.
_POLL_FIRST = 0.02
_POLL_MAX = 0.25
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
_PR_SET_PDEATHSIG = 1


class InvalidInput(Exception):
    """coglet rejected the input (HTTP 422). ``detail`` is coglet's ``detail`` list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        self.detail = detail
        parts = []
        for item in detail:
            loc = item.get("loc") or []
            name = str(loc[-1]) if loc else "input"
            parts.append(f"{name}: {item.get('msg', 'invalid')}")
        super().__init__("; ".join(parts) or "invalid input")


class SetupFailed(Exception):
    """The predictor's ``setup()`` failed or coglet exited before it was ready."""

    def __init__(self, message: str, logs: str) -> None:
        self.logs = logs
        super().__init__(message)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded before any fork so the child does not call dlopen between fork and exec.
_LIBC = _load_libc()


def _child_preexec(parent_pid: int) -> Callable[[], None]:
    """Make the child die with its parent (Linux ``PR_SET_PDEATHSIG``)."""

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl; the signal would never come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class _CogConfig:
    predict_ref: str | None
    train_ref: str | None
    max_concurrency: int
    environment: dict[str, str]


def _read_cog_yaml(build_dir: Path) -> _CogConfig:
    path = build_dir / "cog.yaml"
    if not path.is_file():
        raise ConfigError(path, "missing cog.yaml in the build folder")
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "cog.yaml must be a mapping")
    predict_ref = data.get("run") or data.get("predict")
    train_ref = data.get("train")
    for name, value in (("run/predict", predict_ref), ("train", train_ref)):
        if value is not None and (not isinstance(value, str) or ".py:" not in value):
            raise ConfigError(path, f"{name}: expected 'file.py:Name', got {value!r}")
    concurrency = data.get("concurrency") or {}
    if not isinstance(concurrency, dict):
        raise ConfigError(path, "concurrency: must be a mapping")
    max_c = concurrency.get("max", 1)
    if not isinstance(max_c, int) or isinstance(max_c, bool) or max_c < 1:
        raise ConfigError(path, f"concurrency.max: must be an integer >= 1, got {max_c!r}")
    environment: dict[str, str] = {}
    for entry in data.get("environment") or []:
        if not isinstance(entry, str) or "=" not in entry:
            raise ConfigError(path, f"environment: expected 'NAME=value', got {entry!r}")
        name, _, value = entry.partition("=")
        environment[name] = value
    return _CogConfig(predict_ref, train_ref, max_c, environment)


def _tail(path: Path, limit: int = 20_000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


@dataclass
class _Inflight:
    """One prediction known to the pool, from ``run()`` entry to its return."""

    prediction_id: str
    on_update: OnUpdate | None
    runner: _Runner | None = None
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


class _Runner:
    """One model server process (coglet or the SDK's Python server) for one key."""

    def __init__(
        self,
        key: str,
        build_dir: Path,
        mode: Mode,
        config: _CogConfig,
        log_path: Path,
        runtime: Runtime,
    ) -> None:
        self.key = key
        self.runtime = runtime
        self.build_dir = build_dir
        self.mode = mode
        self.config = config
        self.log_path = log_path
        self.slots = 1 if mode == "train" else config.max_concurrency
        self.in_flight = 0
        # run() calls holding this runner (waiting for start-up, a slot, or running).
        self.users = 0
        self.cond = asyncio.Condition()
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last_used = time.monotonic()
        self.stopping = False
        self.start_task: asyncio.Task[None] | None = None

    @property
    def route(self) -> str:
        return "trainings" if self.mode == "train" else "predictions"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL after ``STOP_GRACE`` seconds."""
        self.stopping = True
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):  # then it is killed below
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
        # Whatever is left in the group (the worker, or a hung leader) is killed outright.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


class _WebhookReceiver:
    """A loopback HTTP/1.1 server for the model servers' webhook POSTs and file PUTs.

    ``POST /<token>/<prediction id>`` is a webhook. ``PUT /<token>/upload/<name>``
    is an output file from the Python server's ``--upload-url``: it is kept in
    memory and answered with ``Location: <its own URL>``, which
    :meth:`inline_files` later turns into a ``data:`` URI.
    """

    def __init__(self, dispatch: Callable[[str, bytes], None]) -> None:
        self._dispatch = dispatch
        self._token = secrets.token_urlsafe(16)
        self._server: asyncio.Server | None = None
        self._files: dict[str, tuple[str, bytes]] = {}
        self.port = 0

    @property
    def upload_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self._token}/upload/"

    @property
    def _files_prefix(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self._token}/files/"

    def inline_files(self, value: Any, *, keep: bool = False) -> Any:
        """``value`` with every uploaded-file URL replaced by its ``data:`` URI.

        ``keep``: leave the files stored (an intermediate output); otherwise each
        one is dropped once inlined.
        """
        if isinstance(value, str) and value.startswith(self._files_prefix):
            file_id = value[len(self._files_prefix) :].split("/", 1)[0]
            found = self._files.get(file_id) if keep else self._files.pop(file_id, None)
            if found is None:
                return value
            mime, data = found
            return f"data:{mime};base64,{base64.b64encode(data).decode()}"
        if isinstance(value, list):
            return [self.inline_files(item, keep=keep) for item in value]
        if isinstance(value, dict):
            return {k: self.inline_files(v, keep=keep) for k, v in value.items()}
        return value

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, prediction_id: str) -> str:
        quoted = urllib.parse.quote(prediction_id, safe="")
        return f"http://127.0.0.1:{self.port}/{self._token}/{quoted}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        target = b""
        method = b""
        content_type = ""
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Request):
                    target, method, body = event.target, event.method, bytearray()
                    content_type = next(
                        (v.decode("latin-1") for k, v in event.headers if k == b"content-type"),
                        "",
                    )
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    status, location = self._route(method, target, content_type, bytes(body))
                    headers = [("content-length", "0")]
                    if location:
                        headers.append(("location", location))
                    response = h11.Response(status_code=status, headers=headers)
                    writer.write(conn.send(response) or b"")
                    writer.write(conn.send(h11.EndOfMessage()) or b"")
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                else:  # ConnectionClosed or PAUSED
                    return
        except (h11.ProtocolError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(
        self, method: bytes, target: bytes, content_type: str, body: bytes
    ) -> tuple[int, str | None]:
        parts = target.decode("latin-1").split("?", 1)[0].strip("/").split("/")
        if len(parts) < 2 or not secrets.compare_digest(parts[0], self._token):
            return 404, None
        if method == b"PUT" and len(parts) == 3 and parts[1] == "upload":
            name = urllib.parse.unquote(parts[2])
            mime = content_type.split(";")[0].strip() or (
                mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            file_id = secrets.token_hex(8)
            self._files[file_id] = (mime, body)
            return 201, f"{self._files_prefix}{file_id}/{urllib.parse.quote(name)}"
        if len(parts) != 2:
            return 404, None
        self._dispatch(urllib.parse.unquote(parts[1]), body)
        return 200, None


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
        self._runners: dict[str, _Runner] = {}
        self._stopping: set[_Runner] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._inflight: dict[str, _Inflight] = {}
        self._client: httpx.AsyncClient | None = None
        self._receiver: _WebhookReceiver | None = None
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
        # coglet may not have registered the request yet: try again on its start
        # event (with a webhook) or after a short pause (without one).
        deadline = time.monotonic() + 5.0
        delay = _POLL_FIRST
        while not await self._send_cancel(runner, prediction_id):
            if inflight.finished or time.monotonic() > deadline:
                return False
            if inflight.started.is_set():
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inflight.started.wait(), timeout=delay)
            delay = min(delay * 2, _POLL_MAX)
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
            await self._client.aclose()
            self._client = None
        if self._own_tmp is not None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)
            self._own_tmp = None

    def processes(self) -> list[int]:
        """PIDs of live coglet processes: each runner's server and its worker(s)."""
        runners = [*self._runners.values(), *self._stopping]
        leaders = {r.proc.pid for r in runners if r.proc is not None and r.alive()}
        return sorted(leaders | _group_members(leaders))

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

    async def _release_slot(self, runner: _Runner) -> None:
        async with runner.cond:
            runner.in_flight -= 1
            runner.cond.notify_all()

    async def _release_after_drop(self, runner: _Runner, inflight: _Inflight) -> None:
        try:
            if runner.alive():
                await self._send_cancel(runner, inflight.prediction_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inflight.completed_event.wait(), STOP_GRACE)
        finally:
            self._forget(inflight)
            await self._release_slot(runner)

    async def _healthy(self, runner: _Runner) -> bool:
        if self._client is None or not runner.alive():  # closed pool, or a dead process
            return False
        try:
            resp = await self._client.get(f"{runner.base_url}/health-check", timeout=5.0)
            return resp.json().get("status") in ("READY", "BUSY")
        except (httpx.TransportError, ValueError):
            return False

    def _retire(self, runner: _Runner) -> None:
        """Drop a broken runner from the pool and stop it in the background."""
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]
        task = asyncio.create_task(self._stop(runner))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stop(self, runner: _Runner) -> None:
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
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0), limits=httpx.Limits(max_keepalive_connections=20)
            )
        if self._receiver is None:
            self._receiver = _WebhookReceiver(self._on_webhook)
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
            inflight.started_at = _now()
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
    ) -> _Runner:
        assert self._lock is not None
        async with self._lock:
            runner = self._runners.get(key)
            if runner is not None and runner.ready.done() and not runner.alive():
                # The process died (crash, OOM, external kill): clear its group, start afresh.
                del self._runners[key]
                await self._stop(runner)
                runner = None
            if runner is None:
                config = _read_cog_yaml(build_dir)
                if (config.train_ref if mode == "train" else config.predict_ref) is None:
                    what = "train" if mode == "train" else "run (or predict)"
                    raise ConfigError(build_dir / "cog.yaml", f"{what}: not set")
                safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:120]
                self.log_dir.mkdir(parents=True, exist_ok=True)
                runner = _Runner(
                    key, build_dir, mode, config, self.log_dir / f"{safe}.log", runtime
                )
                self._runners[key] = runner
                runner.start_task = asyncio.create_task(self._start(runner, env))
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

    def _child_env(self, runner: _Runner, env: dict[str, str] | None) -> dict[str, str]:
        child = without_credentials(os.environ, drop_prefixes=("COG_",))
        if runner.runtime.isolated:
            # Nothing of cogfleet's own environment may leak into the model's imports.
            for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
                child.pop(name, None)
            child["PYTHONNOUSERSITE"] = "1"
            child["VIRTUAL_ENV"] = str(Path(runner.runtime.python).parent.parent)
        child.update(runner.config.environment)
        child.update(env or {})
        child["PORT"] = str(runner.port)
        child["COG_MAX_CONCURRENCY"] = str(runner.slots)
        child["PYTHONUNBUFFERED"] = "1"
        if runner.mode == "train":
            child["COG_TRAIN_TYPE_STUB"] = str(runner.config.train_ref)
            child.pop("COG_PREDICT_TYPE_STUB", None)
            if runner.runtime.server == "legacy" and runner.config.predict_ref:
                # The Python server loads the predictor's types even in train mode.
                child["COG_PREDICT_TYPE_STUB"] = runner.config.predict_ref
        else:
            child["COG_PREDICT_TYPE_STUB"] = str(runner.config.predict_ref)
            child.pop("COG_TRAIN_TYPE_STUB", None)
        python_dir = self._python_dir(runner.runtime.python)
        child["PATH"] = python_dir + os.pathsep + child.get("PATH", os.defpath)
        return child

    def _python_dir(self, python: str) -> str:
        """A folder whose ``python`` is ``python`` (coglet runs ``python`` from PATH)."""
        folder = Path(python).parent
        candidate = folder / "python"
        if candidate.exists() and os.path.samefile(candidate, python):
            return str(folder)
        if self._own_tmp is None:
            self._own_tmp = Path(tempfile.mkdtemp(prefix="cogfleet-runner-"))
        shim_dir = self._own_tmp / "bin" / hashlib.sha256(python.encode()).hexdigest()[:12]
        shim = shim_dir / "python"
        if not shim.exists():
            shim_dir.mkdir(parents=True, exist_ok=True)
            # A script (not a symlink) keeps the interpreter's own path, so venvs still work.
            shim.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n', encoding="utf-8")
            shim.chmod(0o755)
        return str(shim_dir)

    async def _start(self, runner: _Runner, env: dict[str, str] | None) -> None:
        try:
            await self._spawn_until_ready(runner, env)
        except BaseException as exc:
            if runner.proc is not None:
                await runner.stop()
            if isinstance(exc, SetupFailed):
                runner.ready.set_exception(exc)
            elif isinstance(exc, Exception):
                runner.ready.set_exception(
                    SetupFailed(
                        f"could not start {runner.runtime.server_name}: {exc}",
                        _tail(runner.log_path),
                    )
                )
            else:
                runner.ready.set_exception(SetupFailed("start-up interrupted", ""))
                raise
        else:
            runner.ready.set_result(None)
        finally:
            # Nobody may be awaiting the future any more (e.g. pool closing).
            if runner.ready.done() and not runner.ready.cancelled():
                runner.ready.exception()

    async def _spawn_until_ready(self, runner: _Runner, env: dict[str, str] | None) -> None:
        for _attempt in range(3):
            runner.port = _free_port()
            args = [runner.runtime.python, "-m", "cog.server.http"]
            if runner.runtime.host_flag:
                args += ["--host", "127.0.0.1"]
            if runner.mode == "train":
                args += ["--x-mode", "train"]
            if runner.runtime.server == "legacy":
                assert self._receiver is not None
                args += ["--upload-url", self._receiver.upload_url]
            with runner.log_path.open("ab") as log_file:
                runner.proc = await asyncio.create_subprocess_exec(
                    *args,
                    cwd=runner.build_dir,
                    env=self._child_env(runner, env),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,
                    preexec_fn=_child_preexec(os.getpid()),
                )
            if runner.stopping:
                raise SetupFailed("the runner pool is closing", "")
            try:
                await self._wait_ready(runner)
                return
            except _PortTaken:
                continue
        raise SetupFailed(
            f"{runner.runtime.server_name} could not bind a free port", _tail(runner.log_path)
        )

    async def _wait_ready(self, runner: _Runner) -> None:
        assert self._client is not None and runner.proc is not None
        deadline = time.monotonic() + self.setup_timeout
        delay = _POLL_FIRST
        while True:
            if runner.proc.returncode is not None:
                logs = _tail(runner.log_path)
                if "Address already in use" in logs or f"Port {runner.port} is already" in logs:
                    raise _PortTaken
                raise SetupFailed(
                    f"{runner.runtime.server_name} exited with code {runner.proc.returncode}", logs
                )
            try:
                resp = await self._client.get(f"{runner.base_url}/health-check", timeout=5.0)
                health = resp.json()
            except (httpx.TransportError, ValueError):
                health = {}
            status = health.get("status")
            if status in ("READY", "BUSY"):
                return
            if status in ("SETUP_FAILED", "DEFUNCT", "UNHEALTHY"):
                setup = health.get("setup") or {}
                logs = setup.get("logs") or _tail(runner.log_path)
                raise SetupFailed(f"setup failed ({status})", logs)
            if time.monotonic() > deadline:
                raise SetupFailed(
                    f"{runner.runtime.server_name} not ready after {self.setup_timeout:g}s",
                    _tail(runner.log_path),
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def _post(
        self, runner: _Runner, inflight: _Inflight, input: dict[str, Any]
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
        sent_at = _now()
        inflight.sent = True
        try:
            resp = await self._send(runner, body, respond_async=legacy)
        except httpx.TransportError as exc:
            if runner.alive():
                raise
            return _exited(inflight, exc, inflight.started_at or sent_at)
        if resp.status_code == 422:
            raise InvalidInput(resp.json().get("detail") or [])
        if resp.status_code == 409 and not await self._healthy(runner):
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
        if legacy and resp.status_code == 202:
            return await self._await_completed(runner, inflight, sent_at)
        if resp.status_code != 200:
            raise RemoteError(
                f"{runner.runtime.server_name} answered HTTP {resp.status_code} for "
                f"{runner.route}: {resp.text[:500]}"
            )
        result: dict[str, Any] = resp.json()
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
                    _logged_lines, runner.log_path, inflight.log_offset, inflight.prediction_id
                )
            if len(found) > len(result.get("logs") or ""):
                result["logs"] = found
        result.setdefault("started_at", inflight.started_at or sent_at)
        return result

    async def _await_completed(
        self, runner: _Runner, inflight: _Inflight, sent_at: str
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
        self, runner: _Runner, body: dict[str, Any], *, respond_async: bool = False
    ) -> httpx.Response:
        assert self._client is not None
        delay = _POLL_FIRST
        deadline = time.monotonic() + _BUSY_RETRY
        headers = {"Prefer": "respond-async"} if respond_async else None
        while True:
            # No read timeout: a prediction takes as long as it takes; cancel() stops it.
            resp = await self._client.post(
                f"{runner.base_url}/{runner.route}",
                json=body,
                headers=headers,
                timeout=httpx.Timeout(None, connect=10.0),
            )
            # 409 means coglet is still finishing a canceled prediction in the slot we
            # hold; it signals nothing when that ends, so retry briefly.
            if resp.status_code != 409 or time.monotonic() > deadline:
                return resp
            if not await self._healthy(runner):
                return resp
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

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
        result["completed_at"] = _now()
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

    async def _send_cancel(self, runner: _Runner, prediction_id: str) -> bool:
        assert self._client is not None
        quoted = urllib.parse.quote(prediction_id, safe="")
        try:
            resp = await self._client.post(f"{runner.base_url}/{runner.route}/{quoted}/cancel")
        except httpx.TransportError:
            return False
        return resp.status_code == 200


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


def _logged_lines(path: Path, offset: int, prediction_id: str) -> str:
    """What prediction ``prediction_id`` printed, from coglet's JSON log lines after ``offset``."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    lines = []
    for raw in data.splitlines():
        if prediction_id.encode() not in raw:
            continue
        try:
            fields = json.loads(raw).get("fields") or {}
        except (ValueError, AttributeError):
            continue
        if fields.get("prediction_id") == prediction_id and fields.get("source"):
            lines.append(f"{fields.get('message', '')}\n")
    return "".join(lines)


class _PortTaken(Exception):
    """coglet lost the race for the port we picked; try another."""


def _group_members(pgids: set[int]) -> set[int]:
    """Live (non-zombie) processes whose process group is one of ``pgids`` (Linux)."""
    found: set[int] = set()
    if not pgids or not os.path.isdir("/proc"):
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the ")" that closes the command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) in pgids:
            found.add(int(entry))
    return found
