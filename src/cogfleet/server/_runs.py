"""The run execution core shared by predictions and trainings.

A *run* is a prediction or a training: created with its input validated against
the version's schema, executed by a real Cog predictor through
:class:`cogfleet.server._runner.RunnerPool`, updated as coglet reports output and
logs (webhooks and stream readers are woken), and completed with metrics. The
resource modules own the routes; this module owns the life of a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cogfleet.server._core import (
    INVALID,
    NOT_FOUND,
    TERMINAL,
    ApiError,
    ServerConfig,
    base_url,
    new_id,
    now_iso,
    parse_iso,
    public,
)
from cogfleet.server._files import local_file_as_data_uri
from cogfleet.server._runtimes import Runtimes
from cogfleet.server._state import Store
from cogfleet.server._webhooks import WEBHOOK_EVENTS, Webhooks

log = logging.getLogger("cogfleet.server")

_PREFER_RE = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$")

Finish = Callable[[dict[str, Any]], None]


class Runs:
    """Predictions and trainings in flight: create, execute, wake, cancel, complete."""

    def __init__(
        self, config: ServerConfig, store: Store, webhooks: Webhooks, runtimes: Runtimes
    ) -> None:
        self.config = config
        self.runtimes = runtimes
        self.state_dir = Path(config.state_dir)
        self.store = store
        self.webhooks = webhooks
        self.pool: Any = None
        # Runs in flight, the one copy that changes: SQLite gets a run when it is
        # created and when it ends, not on every status, log or output update.
        self._live: dict[str, dict[str, Any]] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._validators: dict[tuple[str, str], jsonschema.Draft7Validator | None] = {}
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
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ rendering

    @staticmethod
    def render(doc: dict[str, Any], base: str) -> dict[str, Any]:
        """A run as the API returns it, with absolute ``urls``."""
        out = public(doc)
        plural = "trainings" if doc.get("_kind") == "training" else "predictions"
        out["urls"] = {
            "get": f"{base}/v1/{plural}/{doc['id']}",
            "cancel": f"{base}/v1/{plural}/{doc['id']}/cancel",
            "web": f"{base}/p/{doc['id']}",
        }
        if doc.get("_stream"):
            # Only streamable versions get the key: the client rejects "stream": null.
            out["urls"]["stream"] = f"{base}/v1/streams/{doc['id']}"
        return out

    def _render_own(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self.render(doc, doc.get("_base", ""))

    def get(self, plural: str, pid: str) -> dict[str, Any]:
        """The run (its live state while in flight), or 404."""
        doc = self._live.get(pid) or self.store.get(plural, pid)
        if doc is None or (doc.get("_kind") == "training") != (plural == "trainings"):
            raise ApiError(404, NOT_FOUND)
        return doc

    def current(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A stored run replaced by its live state while it is in flight."""
        return self._live.get(doc["id"], doc)

    # ------------------------------------------------------------------ input

    def _validator(
        self, version: dict[str, Any], component: str
    ) -> jsonschema.Draft7Validator | None:
        # Building a validator costs more than validating; versions are immutable.
        key = (version["id"], component)
        if key not in self._validators:
            schema = version["openapi_schema"]
            components = schema.get("components", {})
            input_schema = components.get("schemas", {}).get(component)
            self._validators[key] = (
                jsonschema.Draft7Validator({**input_schema, "components": components})
                if isinstance(input_schema, dict)
                else None
            )
        return self._validators[key]

    def validate_input(self, version: dict[str, Any], component: str, data: Any) -> None:
        """422 with coglet-style messages when ``data`` does not fit the schema's input."""
        if not isinstance(data, dict):
            raise ApiError(422, "- input: must be an object\n", INVALID)
        validator = self._validator(version, component)
        if validator is None:
            return
        problems: list[tuple[str, str, str]] = []
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
            if err.validator == "required" and not err.path:
                missing = str(err.message).split("'")[1] if "'" in err.message else err.message
                problems.append(("input", f"{missing} is required", "required"))
                continue
            field = ".".join(str(p) for p in err.path) or "input"
            problems.append((f"input.{field}", _coglet_message(err), str(err.validator)))
        if problems:
            raise ApiError(
                422,
                "".join(f"- {field}: {msg}\n" for field, msg, _ in problems),
                INVALID,
                invalid_fields=[
                    {"type": kind, "field": field, "description": msg}
                    for field, msg, kind in problems
                ],
            )

    def _coglet_input(self, value: Any) -> Any:
        # Our own file URLs become data: URIs: coglet offline only reads data: URIs.
        if isinstance(value, str):
            return local_file_as_data_uri(self.store, self.state_dir / "files", value)
        if isinstance(value, list):
            return [self._coglet_input(v) for v in value]
        if isinstance(value, dict):
            return {k: self._coglet_input(v) for k, v in value.items()}
        return value

    @staticmethod
    def _prefer_wait(request: Request) -> float | None:
        header = request.headers.get("prefer")
        if header is None:
            return None
        match = _PREFER_RE.match(header)
        if not match:
            return None
        return float(min(60, max(1, int(match.group(1) or 60))))

    # ------------------------------------------------------------------ create

    async def create(
        self,
        request: Request,
        version: dict[str, Any],
        body: dict[str, Any],
        *,
        kind: str = "prediction",
        deployment: str | None = None,
        destination: str | None = None,
        finish: Finish | None = None,
    ) -> Response:
        """Validate, store and start a run; answer 201 (waiting under ``Prefer: wait``)."""
        raw_input = body.get("input", {})
        if raw_input is None:
            raw_input = {}
        component = "TrainingInput" if kind == "training" else "Input"
        self.validate_input(version, component, raw_input)
        base = base_url(request)
        pid = new_id()
        model = version["_model"]
        doc: dict[str, Any] = {
            "id": pid,
            "model": model,
            "version": version["id"],
            "input": _redact_secrets(version["openapi_schema"], component, raw_input),
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
        }
        if kind == "prediction" and _is_iterator(version["openapi_schema"]):
            doc["_stream"] = True
        webhook = body.get("webhook")
        if webhook is not None:
            events = body.get("webhook_events_filter")
            if not isinstance(webhook, str) or not webhook.startswith(("http://", "https://")):
                raise ApiError(422, "- webhook: must be an http(s) URL\n", INVALID)
            if events is not None and (
                not isinstance(events, list) or not set(events) <= set(WEBHOOK_EVENTS)
            ):
                raise ApiError(
                    422,
                    "- webhook_events_filter: items must be start, output, logs or completed\n",
                    INVALID,
                )
            doc["_webhook"] = webhook
            doc["_webhook_events"] = events
        if isinstance(body.get("webhook_completed"), str):
            doc["_webhook_completed"] = body["webhook_completed"]
        if deployment:
            doc["deployment"] = deployment
        if destination:
            doc["destination"] = destination
        plural = "trainings" if kind == "training" else "predictions"
        with self.store.transaction():
            self.store.put(plural, pid, doc)
            model_doc = self.store.get("models", model)
            if model_doc is not None:
                model_doc["run_count"] = int(model_doc.get("run_count", 0)) + 1
                self.store.put("models", model, model_doc)
        self._live[pid] = doc
        event = asyncio.Event()
        self._done[pid] = event
        self._changed[pid] = asyncio.Condition()
        self._generation[pid] = 0
        coglet_input = self._coglet_input(raw_input)
        wait = self._prefer_wait(request)
        # Intermediate logs and outputs cost the runner a webhook per prediction: only
        # when someone can see them (a poller, a stream, or a webhook that wants them).
        events = doc.get("_webhook_events") or WEBHOOK_EVENTS
        live = (
            wait is None
            or bool(doc.get("_stream"))
            or (bool(doc.get("_webhook")) and bool({"output", "logs"} & set(events)))
        )
        self._tasks[pid] = asyncio.create_task(
            self._execute(plural, pid, version, coglet_input, finish, live=live)
        )
        headers: dict[str, str] = {}
        if wait is not None:
            headers["Preference-Applied"] = request.headers["prefer"].strip()
            # Answer before the client's read timeout (N + 0.5 s) runs out.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=max(0.5, wait - 0.3))
        current = self._live.get(pid) or self.store.get(plural, pid) or doc
        rendered = self.render(current, base)
        if current["status"] not in TERMINAL:
            headers["Location"] = rendered["urls"]["get"]
            if wait is not None:
                # The 1.0.7 client's run() only polls after a "starting" answer.
                rendered["status"] = "starting"
        return JSONResponse(rendered, status_code=201, headers=headers)

    # ------------------------------------------------------------------ execute

    def _on_update(self, plural: str, pid: str) -> Callable[[dict[str, Any]], None]:
        def update(partial: dict[str, Any]) -> None:
            doc = self._live.get(pid)
            if doc is None or doc["status"] in TERMINAL:
                return
            changed = [
                key
                for key in ("output", "logs")
                if partial.get(key) is not None and partial[key] != doc.get(key)
            ]
            for key in changed:
                doc[key] = partial[key]
            if changed:
                self.webhooks.notify(doc, changed[0], self._render_own)
                self._wake(pid)

        return update

    async def _execute(
        self,
        plural: str,
        pid: str,
        version: dict[str, Any],
        coglet_input: dict[str, Any],
        finish: Finish | None,
        *,
        live: bool,
    ) -> None:
        from cogfleet.server._runner import InvalidInput, SetupFailed

        doc = self._live[pid]
        started = datetime.now(UTC)
        try:
            if self.config.latency > 0:
                # Injected delay (--latency) so callers can test timeouts and waits.
                await asyncio.sleep(self.config.latency)
            doc["status"] = "processing"
            doc["started_at"] = now_iso()
            self.webhooks.notify(doc, "start", self._render_own)
            env = {"COG_WEIGHTS": version["_weights"]} if version.get("_weights") else None
            mode = "train" if plural == "trainings" else "predict"
            build_dir = self.state_dir / "builds" / version["_build"]
            runtime = await self.runtimes.runtime_for(version, build_dir)
            result = await self.pool.run(
                f"{version['id']}:{mode}",
                build_dir,
                mode=mode,
                prediction_id=pid,
                input=coglet_input,
                env=env,
                on_update=self._on_update(plural, pid) if live else None,
                runtime=runtime,
            )
            status = result.get("status", "failed")
            if status not in TERMINAL:
                status = "failed"
            doc["status"] = status
            doc["output"] = result.get("output")
            doc["error"] = result.get("error")
            doc["logs"] = result.get("logs") or doc.get("logs") or ""
            predict_time = (result.get("metrics") or {}).get("predict_time")
            doc["metrics"] = {k: v for k, v in (result.get("metrics") or {}).items()}
            if predict_time is None:
                doc["metrics"]["predict_time"] = (datetime.now(UTC) - started).total_seconds()
            if result.get("started_at"):
                doc["started_at"] = result["started_at"]
            if status == "succeeded" and finish is not None:
                finish(doc)
        except InvalidInput as exc:
            doc["status"] = "failed"
            doc["error"] = _detail_text(exc.detail)
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

    async def events(self, pid: str, doc: dict[str, Any]) -> AsyncIterator[bytes]:
        """Server-sent events of a streamable prediction until it ends."""
        cond = self._changed.get(pid)
        sent_items = 0
        sent_logs = 0
        seq = 0
        while True:
            seen = self._generation.get(pid, -1)
            current = self._live.get(pid) or self.store.get("predictions", pid) or doc
            chunks: list[tuple[str, str]] = []
            output = current.get("output")
            if isinstance(output, list):
                chunks += [("output", _sse_text(item)) for item in output[sent_items:]]
                sent_items = max(sent_items, len(output))
            logs = current.get("logs") or ""
            if len(logs) > sent_logs:
                chunks += [("logs", line) for line in logs[sent_logs:].splitlines()]
                sent_logs = len(logs)
            terminal = current["status"] in TERMINAL
            if terminal:
                if current["status"] == "failed":
                    detail = json.dumps({"detail": current.get("error") or "failed"})
                    chunks.append(("error", detail))
                reason = {"succeeded": {}, "failed": {"reason": "error"}}.get(
                    current["status"], {"reason": "canceled"}
                )
                chunks.append(("done", json.dumps(reason)))
            for name, data in chunks:
                lines = "".join(f"data: {part}\n" for part in data.split("\n"))
                yield f"event: {name}\nid: {pid}:{seq}\n{lines}\n".encode()
                seq += 1
            if terminal or cond is None:
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

    async def cancel(self, request: Request, plural: str) -> Response:
        """POST …/{id}/cancel: stop the work inside the predictor; 200 with the run."""
        pid = request.path_params["pid"]
        doc = self.get(plural, pid)
        if doc["status"] not in TERMINAL:
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
            doc = self.get(plural, pid)
        return JSONResponse(self.render(doc, base_url(request)))


def _coglet_message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message in the wording coglet uses (JSON-quoted values)."""
    inst = json.dumps(err.instance, separators=(",", ":"))
    if err.validator == "enum":
        return f"{inst} is not one of {json.dumps(err.validator_value, separators=(',', ':'))}"
    if err.validator == "type":
        return f'{inst} is not of type "{err.validator_value}"'
    if err.validator == "pattern":
        return f'{inst} does not match "{err.validator_value}"'
    if err.validator == "maximum":
        return f"{inst} is greater than the maximum of {_num(err.validator_value)}"
    if err.validator == "minimum":
        return f"{inst} is less than the minimum of {_num(err.validator_value)}"
    return str(err.message)


def _num(value: Any) -> str:
    # Schemas may carry 4.0 where coglet (serde) prints 4.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _detail_text(detail: Any) -> str:
    """coglet's 422 ``detail`` list as one readable message."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", [])[2:]) or "input"
                lines.append(f"{loc}: {item.get('msg', item)}")
            else:
                lines.append(str(item))
        return "; ".join(lines)
    return str(detail)


def _redact_secrets(schema: dict[str, Any], component: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with Secret inputs masked: they reach coglet but never the state on disk."""
    props = schema.get("components", {}).get("schemas", {}).get(component, {}).get("properties")
    if not isinstance(props, dict):
        return data
    return {
        key: "**********"
        if isinstance(props.get(key), dict) and props[key].get("x-cog-secret") and value
        else value
        for key, value in data.items()
    }


def _is_iterator(schema: dict[str, Any]) -> bool:
    """Whether a version's Output is an iterator (what makes it streamable)."""
    output = schema.get("components", {}).get("schemas", {}).get("Output", {})
    return isinstance(output, dict) and output.get("x-cog-array-type") == "iterator"


def _sse_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)
