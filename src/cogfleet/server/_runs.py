"""The run execution core shared by predictions and trainings.

A *run* is a prediction or a training: created with its input validated against
the version's schema, executed by a real Cog predictor through
:class:`cogfleet.server._runner.RunnerPool`, updated as the runner reports output
and logs (webhooks and stream readers are woken), and completed with metrics. The
resource modules own the routes; this module owns the life of a run.

A run in flight lives in memory; SQLite gets it when it is created and when it
ends. Runs belong to the account whose token created them. ``Cancel-After`` on a
prediction's creation sets a deadline at which it is canceled, as on Replicate;
trainings.create takes no such header there, and none is read here.

As on Replicate, a training is also a prediction: ``GET /v1/predictions/{id}`` and
``POST /v1/predictions/{id}/cancel`` serve it too, and the answer to its creation
names those paths in ``urls``; ``/v1/trainings/…`` answers and its webhooks name
the trainings paths. The lists stay apart: ``GET /v1/predictions`` lists
predictions (Replicate documents no training in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cogfleet.server._core import (
    NOT_FOUND,
    TERMINAL,
    Account,
    ApiError,
    ServerConfig,
    base_url,
    new_id,
    now_iso,
    parse_iso,
    public,
)
from cogfleet.server._inputs import Inputs, detail_text, redact_secrets
from cogfleet.server._outputs import Outputs
from cogfleet.server._runtimes import Runtimes
from cogfleet.server._state import Condition, Store
from cogfleet.server._streams import chunks, encode, record, stream_position
from cogfleet.server._webhooks import WEBHOOK_EVENTS, Webhooks

log = logging.getLogger("cogfleet.server")

# Numbers as Replicate's (Go) parser reads them: float() would also take "5_0" and "1e1".
_PREFER_RE = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$", re.ASCII)
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$", re.ASCII)
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)", re.ASCII)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MIN_CANCEL_AFTER = 5.0
# Far beyond any run, and a deadline that dates and timers can still hold.
MAX_CANCEL_AFTER = 1_000_000 * 3600.0

Finish = Callable[[dict[str, Any]], None]


def parse_cancel_after(text: str) -> float:
    """``Cancel-After`` as seconds: ``30s``, ``5m``, ``1h30m45s`` or a bare number."""
    value = text.strip()
    if _NUMBER_RE.fullmatch(value):
        seconds = float(value)
    elif _DURATION_RE.match(value):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(value))
    else:
        raise ApiError(
            400,
            f"Cancel-After must be a duration like 30s, 5m or 1h30m45s, got {text!r}",
            "Bad request",
        )
    if not seconds >= MIN_CANCEL_AFTER:
        raise ApiError(
            400, f"Cancel-After must be at least {MIN_CANCEL_AFTER:g} seconds", "Bad request"
        )
    if seconds > MAX_CANCEL_AFTER:
        raise ApiError(
            400, f"Cancel-After must be at most {MAX_CANCEL_AFTER / 3600:g}h", "Bad request"
        )
    return seconds


class Runs:
    """Predictions and trainings in flight: create, execute, wake, cancel, complete."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        webhooks: Webhooks,
        inputs: Inputs,
        outputs: Outputs,
        runtimes: Runtimes,
    ) -> None:
        self.config = config
        self.runtimes = runtimes
        self.store = store
        self.webhooks = webhooks
        self.inputs = inputs
        self.outputs = outputs
        self.state_dir = config.state_dir
        self.pool: Any = None
        # Runs in flight, the one copy that changes: SQLite gets a run when it is
        # created and when it ends, not on every status, log or output update.
        self._live: dict[str, dict[str, Any]] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        self._cancel_requested: set[str] = set()
        self._changed: dict[str, asyncio.Condition] = {}
        self._generation: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    def recover(self) -> None:
        """Mark work that was in flight when the previous server stopped as failed."""
        for kind in ("predictions", "trainings"):
            for doc in self.store.unfinished(kind):
                doc["status"] = "failed"
                doc["error"] = "The local server stopped before this finished."
                doc["completed_at"] = now_iso()
                self.store.put(kind, doc["id"], doc)

    async def close(self) -> None:
        """Stop every run still in flight (they end as failed)."""
        for handle in self._deadlines.values():
            handle.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ reading

    def render(
        self, doc: dict[str, Any], base: str, *, inline: bool = False, plural: str | None = None
    ) -> dict[str, Any]:
        """A run as the API returns it: absolute ``urls``, file outputs as URLs (or inline).

        ``urls`` name ``plural`` (``predictions`` or ``trainings``; default: the run's
        own kind): a training is also a prediction, under both paths.
        """
        out = public(doc)
        out["output"] = self.outputs.render(
            doc.get("output"), doc.get("_files") or [], base, inline=inline
        )
        plural = plural or ("trainings" if doc.get("_kind") == "training" else "predictions")
        out["urls"] = {
            "get": f"{base}/v1/{plural}/{doc['id']}",
            "cancel": f"{base}/v1/{plural}/{doc['id']}/cancel",
            "web": f"{base}/p/{doc['id']}",
        }
        if doc.get("_stream"):
            # Only streamable versions get the key: the client rejects "stream": null.
            # The secret in the path lets a browser's EventSource in without a token.
            out["urls"]["stream"] = f"{base}/v1/streams/{doc['_key']}"
        return out

    def _render_own(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self.render(doc, doc.get("_base", ""))

    def get(self, plural: str, pid: str, account: Account) -> dict[str, Any]:
        """The run (its live state while in flight) if ``account`` created it, or 404.

        As on Replicate, a training is a prediction too: ``predictions`` finds both.
        """
        doc = self._live.get(pid) or self.store.get(plural, pid)
        if doc is None and plural == "predictions":
            doc = self.store.get("trainings", pid)
        if doc is None or (plural == "trainings" and doc.get("_kind") != "training"):
            raise ApiError(404, NOT_FOUND)
        if not account.permissive and doc.get("_account") != account.username:
            raise ApiError(404, NOT_FOUND)
        return doc

    def by_key(self, key: str) -> dict[str, Any]:
        """The prediction a stream key names (its id and secret), or 404."""
        pid, _, _ = key.partition("-")
        doc = self._live.get(pid) or self.store.get("predictions", pid)
        if doc is None or not secrets.compare_digest(str(doc.get("_key", "")), key):
            raise ApiError(404, NOT_FOUND)
        return doc

    def current(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A stored run replaced by its live state while it is in flight."""
        return self._live.get(doc["id"], doc)

    @staticmethod
    def owned_by(account: Account) -> list[list[Condition]]:
        """The store condition for the runs ``account`` may list."""
        return [] if account.permissive else [[("_account", "=", account.username)]]

    @staticmethod
    def _prefer_wait(request: Request) -> tuple[float, str] | None:
        """``Prefer: wait[=N]`` as (seconds, the preference applied), N clamped to 1..60.

        Preferences are read as RFC 7240 lists them: several in one header or in
        several headers (``respond-async, wait=5`` waits 5 s), parameters after ``;``
        aside. Any other preference is ignored, and so answered without waiting.
        """
        prefs = ",".join(request.headers.getlist("prefer")).split(",")
        match = next(filter(None, (_PREFER_RE.match(p.split(";")[0]) for p in prefs)), None)
        if not match:
            return None
        if match.group(1) is None:
            return 60.0, "wait"
        seconds = min(60, max(1, int(match.group(1))))
        return float(seconds), f"wait={seconds}"

    # ------------------------------------------------------------------ create

    async def create(
        self,
        request: Request,
        version: dict[str, Any],
        body: dict[str, Any],
        *,
        account: Account,
        kind: str = "prediction",
        deployment: str | None = None,
        destination: str | None = None,
        finish: Finish | None = None,
    ) -> Response:
        """Validate, store and start a run; answer 201 (waiting under ``Prefer: wait``)."""
        raw_input = body.get("input") or {}
        component = "TrainingInput" if kind == "training" else "Input"
        self.inputs.validate(version, component, raw_input)
        # Replicate's trainings.create takes no Cancel-After (nor Prefer) header.
        cancel_after = request.headers.get("cancel-after") if kind == "prediction" else None
        seconds = parse_cancel_after(cancel_after) if cancel_after is not None else None
        base = base_url(request)
        pid = new_id()
        model = version["_model"]
        owner = model.split("/", 1)[0]
        doc: dict[str, Any] = {
            "id": pid,
            "model": model,
            "version": version["id"],
            "input": redact_secrets(version["openapi_schema"], component, raw_input),
            "output": None,
            "logs": "",
            "error": None,
            "status": "starting",
            "data_removed": False,
            "source": "api",
            "created_at": now_iso(),
            "started_at": None,
            "completed_at": None,
            "metrics": {},
            "_kind": kind,
            "_base": base,
            "_key": f"{pid}-{secrets.token_urlsafe(18)}",
            "_account": account.username,
            "_by_owner": account.can_write(owner),
        }
        if seconds is not None:
            deadline = datetime.now(UTC) + timedelta(seconds=seconds)
            doc["deadline"] = deadline.isoformat(timespec="microseconds").replace("+00:00", "Z")
        if kind == "prediction" and _is_iterator(version["openapi_schema"]):
            doc["_stream"] = True
        if body.get("webhook") is not None:
            doc["_webhook"] = body["webhook"]
            doc["_webhook_events"] = body.get("webhook_events_filter")
        if isinstance(body.get("webhook_completed"), str):
            doc["_webhook_completed"] = body["webhook_completed"]
        if deployment:
            doc["deployment"] = deployment
        if destination:
            doc["destination"] = destination
        plural = "trainings" if kind == "training" else "predictions"
        self.store.put(plural, pid, doc)
        self._live[pid] = doc
        event = asyncio.Event()
        self._done[pid] = event
        self._changed[pid] = asyncio.Condition()
        self._generation[pid] = 0
        runner_input = self.inputs.for_runner(raw_input, account)
        # Replicate's trainings take no Prefer header: they are always answered at once.
        prefer = self._prefer_wait(request) if kind == "prediction" else None
        wait = prefer[0] if prefer else None
        # Intermediate states (when the model starts, logs, outputs) cost the runner a
        # webhook per prediction: only when someone can see them (a poller, a stream,
        # or a webhook that wants them).
        events = doc.get("_webhook_events") or WEBHOOK_EVENTS
        live = (
            wait is None
            or bool(doc.get("_stream"))
            or (bool(doc.get("_webhook")) and bool({"start", "output", "logs"} & set(events)))
        )
        self._tasks[pid] = asyncio.create_task(
            self._execute(plural, pid, version, runner_input, finish, live=live)
        )
        if seconds is not None:
            loop = asyncio.get_running_loop()
            self._deadlines[pid] = loop.call_later(seconds, self._expire, plural, pid)
        headers: dict[str, str] = {}
        if prefer is not None:
            headers["Preference-Applied"] = prefer[1]
            # Answer before the client's read timeout (N + 0.5 s) runs out.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=max(0.5, prefer[0] - 0.3))
        # The synchronous answer inlines file outputs as data: URIs, as Replicate does;
        # its answer to a training's creation names the predictions paths.
        rendered = self.render(doc, base, inline=wait is not None, plural="predictions")
        if doc["status"] not in TERMINAL:
            headers["Location"] = rendered["urls"]["get"]
            if wait is not None:
                # The 1.0.7 client's run() only polls after a "starting" answer (and a
                # starting prediction has not started).
                rendered["status"] = "starting"
                rendered["started_at"] = None
        return JSONResponse(rendered, status_code=201, headers=headers)

    def _expire(self, plural: str, pid: str) -> None:
        self._deadlines.pop(pid, None)
        if pid in self._live:
            log.info("%s %s reached its Cancel-After deadline", plural, pid)
            self.webhooks.track(asyncio.create_task(self._stop(pid)))

    # ------------------------------------------------------------------ execute

    def _keep_output(self, doc: dict[str, Any], output: Any) -> Any:
        files: list[str] = doc.setdefault("_files", [])
        return self.outputs.keep(doc["_key"], output, files)

    def _on_update(self, pid: str) -> Callable[[dict[str, Any]], None]:
        def update(partial: dict[str, Any]) -> None:
            doc = self._live.get(pid)
            if doc is None or doc["status"] in TERMINAL:
                return
            # Where the run was: a stream replays its events in this order (a late
            # point can let a live stream go on).
            late = bool(doc.get("_stream")) and record(doc, partial)
            if doc["status"] == "starting":
                # The runner's first word: the model runs (start-up and queue are over).
                self._started(doc, partial.get("started_at") or now_iso())
            changed = []
            # The runner's updates are cumulative, and one can overtake another on
            # the way here: an earlier state arriving late changes nothing.
            output, known = partial.get("output"), doc.get("output")
            if isinstance(output, list) and isinstance(known, list) and len(output) < len(known):
                output = None
            if output is not None:
                output = self._keep_output(doc, output)
                if output != known:
                    doc["output"] = output
                    changed.append("output")
            logs = partial.get("logs")
            if isinstance(logs, str) and len(logs) > len(doc.get("logs") or ""):
                doc["logs"] = logs
                changed.append("logs")
            if changed:
                self.webhooks.notify(doc, changed[0], self._render_own)
            if changed or late:
                self._wake(pid)

        return update

    def _started(self, doc: dict[str, Any], started_at: str) -> None:
        """The run is processing: its model runs (Replicate's ``start`` event)."""
        doc["status"] = "processing"
        doc["started_at"] = started_at
        self.webhooks.notify(doc, "start", self._render_own)

    async def _execute(
        self,
        plural: str,
        pid: str,
        version: dict[str, Any],
        runner_input: dict[str, Any],
        finish: Finish | None,
        *,
        live: bool,
    ) -> None:
        from cogfleet.server._runner import InvalidInput, SetupFailed

        doc = self._live[pid]
        try:
            if self.config.latency > 0:
                # Injected delay (--latency) so callers can test timeouts and waits.
                await asyncio.sleep(self.config.latency)
            if not live:
                # Nobody follows the run while it goes: processing from here on.
                self._started(doc, now_iso())
            env = {"COG_WEIGHTS": version["_weights"]} if version.get("_weights") else None
            mode = "train" if plural == "trainings" else "predict"
            build_dir = self.state_dir / "builds" / version["_build"]
            # One runner per build (and weights), whichever models have it as a version.
            weights = version.get("_weights") or ""
            tag = hashlib.sha256(weights.encode()).hexdigest()[:12] if weights else "base"
            key = f"{version['_build']}:{mode}:{tag}"
            # An environment removed from disk matters only to a runner yet to start.
            runtime = await self.runtimes.runtime_for(
                version, build_dir, check=not self.pool.running(key)
            )
            result = await self.pool.run(
                key,
                build_dir,
                mode=mode,
                prediction_id=pid,
                input=runner_input,
                env=env,
                on_update=self._on_update(pid) if live else None,
                runtime=runtime,
            )
            status = result.get("status", "failed")
            if status not in TERMINAL:
                status = "failed"
            doc["status"] = status
            if doc.get("_stream") and not isinstance(result.get("output"), list):
                # A failed or canceled run's answer drops the outputs it streamed:
                # its stream still replays them.
                doc["_streamed"] = doc.get("output")
            doc["output"] = result.get("output")
            doc["error"] = result.get("error")
            doc["logs"] = result.get("logs") or doc.get("logs") or ""
            # Without the runner's predict_time, _complete counts it from started_at: a
            # run that never started (canceled while it waited) has none.
            doc["metrics"] = dict(result.get("metrics") or {})
            if result.get("started_at"):
                doc["started_at"] = result["started_at"]
            if status == "succeeded" and finish is not None:
                finish(doc)
            doc["output"] = self._keep_output(doc, doc["output"])
        except InvalidInput as exc:
            doc["status"] = "failed"
            doc["error"] = detail_text(exc.detail)
        except SetupFailed as exc:
            doc["status"] = "failed"
            doc["error"] = "Setup failed"
            doc["logs"] = exc.logs
        except asyncio.CancelledError:
            doc["status"] = "canceled" if pid in self._cancel_requested else "failed"
            if doc["status"] == "failed":
                doc["error"] = "The local server stopped before this finished."
            self._complete(plural, doc)
            raise
        except Exception as exc:  # a runner crash must still end the prediction
            log.exception("prediction %s crashed", pid)
            doc["status"] = "failed"
            doc["error"] = f"{type(exc).__name__}: {exc}"
        self._complete(plural, doc)

    def _complete(self, plural: str, doc: dict[str, Any]) -> None:
        pid = doc["id"]
        if doc["status"] == "canceled" or pid in self._cancel_requested:
            if doc["status"] != "succeeded":
                doc["status"] = "canceled"
        completed = datetime.now(UTC)
        doc["completed_at"] = now_iso()
        metrics = doc.setdefault("metrics", {})
        metrics["total_time"] = (completed - parse_iso(doc["created_at"])).total_seconds()
        if doc.get("started_at") and "predict_time" not in metrics:
            metrics["predict_time"] = (completed - parse_iso(doc["started_at"])).total_seconds()
        self.store.put(plural, pid, doc)
        self._live.pop(pid, None)
        handle = self._deadlines.pop(pid, None)
        if handle is not None:
            handle.cancel()
        self.webhooks.notify(doc, "completed", self._render_own)
        self._wake(pid, final=True)
        self._cancel_requested.discard(pid)
        self._tasks.pop(pid, None)
        event = self._done.pop(pid, None)
        if event is not None:
            event.set()

    # ------------------------------------------------------------------ wake-ups and streams

    def _wake(self, pid: str, *, final: bool = False) -> None:
        # The generation counter makes waiting race-free: a stream only sleeps while
        # nothing changed since it last read the prediction.
        if final:
            self._generation.pop(pid, None)
        else:
            self._generation[pid] = self._generation.get(pid, 0) + 1
        cond = self._changed.pop(pid, None) if final else self._changed.get(pid)
        if cond is None:
            return

        async def notify() -> None:
            async with cond:
                cond.notify_all()

        self.webhooks.track(asyncio.create_task(notify()))

    def _changed_since(self, pid: str, seen: int) -> bool:
        """Whether run ``pid`` changed after generation ``seen`` (stream wake-up)."""
        return self._generation.get(pid, -1) != seen

    async def events(
        self, doc: dict[str, Any], base: str, resume: str | None = None
    ) -> AsyncIterator[bytes]:
        """Server-sent events of a streamable prediction until it ends, in the order
        they happened (see :mod:`._streams`).

        Each event's ``id`` is ``<prediction id>:<outputs sent>:<log characters sent>``
        after it (``:error`` / ``:done`` added to the last ones): a position, so
        ``resume`` (the ``Last-Event-ID`` a reconnecting client sends) picks up right
        after the event it names. Logs go out a whole line at a time.
        """
        pid = doc["id"]
        cond = self._changed.get(pid)
        sent_items, sent_logs, _ = stream_position(pid, resume)
        position = (sent_items, sent_logs)
        while True:
            seen = self._generation.get(pid, -1)
            current = self._live.get(pid) or self.store.get("predictions", pid) or doc
            shown = current.get("output")
            if not isinstance(shown, list):
                shown = current.get("_streamed")
            output = self.outputs.render(shown, current.get("_files") or [], base, inline=False)
            found, position = chunks(pid, current, output, position)
            for name, data, event_id in found:
                yield encode(name, data, event_id)
            if current["status"] in TERMINAL or cond is None:
                return
            async with cond:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        cond.wait_for(partial(self._changed_since, pid, seen)),
                        timeout=15,
                    )
            # A comment line keeps idle connections open through proxies.
            yield b": ping\n\n"

    # ------------------------------------------------------------------ cancel

    async def _stop(self, pid: str) -> None:
        """Stop a run in flight (inside the predictor when it got there) and wait for it."""
        if pid not in self._live:
            return
        self._cancel_requested.add(pid)
        event = self._done.get(pid)
        stopped = await self.pool.cancel(pid) if self.pool is not None else False
        if not stopped:
            # Not yet inside coglet (e.g. in the injected delay): stop the task itself.
            task = self._tasks.get(pid)
            if task is not None:
                task.cancel()
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=10)

    async def cancel(self, request: Request, plural: str, account: Account) -> Response:
        """POST …/{id}/cancel: stop the work inside the predictor; 200 with the run."""
        pid = request.path_params["pid"]
        doc = self.get(plural, pid, account)
        if doc["status"] not in TERMINAL:
            await self._stop(pid)
            doc = self.get(plural, pid, account)
        return JSONResponse(self.render(doc, base_url(request), plural=plural))


def _is_iterator(schema: dict[str, Any]) -> bool:
    """Whether a version's Output is an iterator (what makes it streamable)."""
    output = schema.get("components", {}).get("schemas", {}).get("Output", {})
    return isinstance(output, dict) and output.get("x-cog-array-type") == "iterator"
