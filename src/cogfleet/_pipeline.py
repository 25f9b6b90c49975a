"""The safe-push pipeline: the core orders steps; plugins do the work.

::

    lint -> push-test -> gate steps (one by one) -> check steps (concurrently)
         -> promote steps -> release steps

Any failure stops the run before promotion, so the model is never touched by a
build that did not pass every check.

An interrupt (:class:`Interrupt`) cancels the steps in flight, but never promotion
and release: those run as one critical section that either has not started when the
interrupt arrives (then nothing is promoted) or runs to its end (and the result says
so). Either way the result records exactly what happened on the target.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cogfleet._checks import CheckContext, Judge
from cogfleet._config import SafePushConfig, TestCase
from cogfleet._errors import CheckFailed, CogfleetError
from cogfleet._predict import FileCache, Outcome, Predictions
from cogfleet._result import CaseResult, RunResult, StepResult

if TYPE_CHECKING:
    from cogfleet._plugins import Plugins
    from cogfleet._repo import Variant
    from cogfleet._target import Target

Phase = Literal["gate", "check", "promote", "release"]
PHASES: tuple[Phase, ...] = ("gate", "check", "promote", "release")


class Interrupt:
    """An interrupt request shared by every pipeline of a run (set by a signal handler).

    ``request()`` is safe to call from a signal handler: it only sets a flag and calls
    the ``on_request`` callback (which schedules the cancellation on the event loop).
    """

    def __init__(self) -> None:
        self.requested = False
        self.on_request: Callable[[], None] | None = None

    def request(self) -> None:
        self.requested = True
        if self.on_request is not None:
            self.on_request()


class Interrupted(Exception):
    """Raised inside a pipeline when an interrupt stops it before promotion."""


@dataclass(frozen=True)
class StepOutcome:
    status: Literal["passed", "failed", "skipped"]
    message: str = ""


def passed(message: str = "") -> StepOutcome:
    return StepOutcome("passed", message)


def skipped(message: str) -> StepOutcome:
    return StepOutcome("skipped", message)


@dataclass(frozen=True)
class Step:
    """A pipeline step a plugin registers (see ``cogfleet_register_steps``)."""

    name: str
    phase: Phase
    run: Callable[[PushContext], Awaitable[StepOutcome]]
    order: int = 0
    # started with the run, while earlier steps work; its result is ctx.prefetched[name]
    prefetch: Callable[[PushContext], Awaitable[Any] | None] | None = None


@dataclass(frozen=True)
class ProgressEvent:
    kind: Literal["run-start", "step-start", "step-done", "cases-planned", "case-done", "run-done"]
    result: RunResult
    step: StepResult | None = None
    case: CaseResult | None = None
    planned: int = 0


@dataclass
class PushOptions:
    """What the command line asked for."""

    no_push: bool = False
    push_official_model: bool = False
    fuzz_seed: int = 0
    verbose: int = 0
    separate_weights: bool = False  # cog push --separate-weights (replicate target)
    secrets: list[str] = field(default_factory=list)  # cog push --secret id=...,src=...
    keep_outputs: bool = False  # a report shows outputs: embed output files in the results


@dataclass
class PushContext:
    """Everything a step sees for one variant."""

    name: str
    config: SafePushConfig
    build_dir: Path
    repo_root: Path | None
    target: Target
    plugins: Plugins
    options: PushOptions
    result: RunResult
    predictions: Predictions
    files: FileCache
    variant: Variant | None = None
    test_version: dict[str, Any] | None = None
    live_version: dict[str, Any] | None = None
    promoted_version: str | None = None
    cases_planned: int = 0
    interrupt: Interrupt = field(default_factory=Interrupt)
    running: list[str] = field(default_factory=list)  # steps in flight, for messages
    critical: bool = False  # promotion or release under way: never cancelled halfway
    t0: float = field(default_factory=time.monotonic)  # when the run started
    prefetched: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    _judge: Judge | None = field(default=None, repr=False)
    _judge_loaded: bool = field(default=False, repr=False)
    _judge_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def test_model(self) -> str:
        return self.config.effective_test_model

    @property
    def test_schema(self) -> dict[str, Any]:
        assert self.test_version is not None
        schema: dict[str, Any] = self.test_version["openapi_schema"]
        return schema

    @property
    def judge(self) -> Judge | None:
        """The AI judge (made once; a thread asking while it is being made waits for it).

        Code on the event loop uses :meth:`wait_judge` instead, which never blocks it.
        """
        with self._judge_lock:
            if not self._judge_loaded:
                self._judge = self.plugins.judge(self)
                self._judge_loaded = True
        return self._judge

    async def wait_judge(self) -> Judge | None:
        """:attr:`judge` for the event loop: waits in a thread while the judge is made."""
        if self._judge_loaded:
            return self._judge
        return await asyncio.to_thread(lambda: self.judge)

    # -- progress ----------------------------------------------------------------------

    def emit(self, kind: Any, **kwargs: Any) -> None:
        self.plugins.progress(ProgressEvent(kind=kind, result=self.result, **kwargs))

    def plan_cases(self, count: int) -> None:
        self.cases_planned += count
        self.emit("cases-planned", planned=self.cases_planned)

    def add_case(self, case: CaseResult) -> CaseResult:
        self.result.cases.append(case)
        self.emit("case-done", case=case, planned=self.cases_planned)
        return case

    # -- predictions and checks ----------------------------------------------------------

    def file_inputs(self, schema: dict[str, Any], kind: str = "predict") -> set[str]:
        """Names of inputs that take files (``format: uri``)."""
        name = "Input" if kind == "predict" else "TrainingInput"
        props = schema.get("components", {}).get("schemas", {}).get(name, {}).get("properties", {})
        return {k for k, v in props.items() if v.get("format") == "uri"}

    async def predict(
        self, version: str, inputs: dict[str, Any], *, timeout: float | None = None
    ) -> Outcome:
        prepared = await self.predictions.prepare_inputs(
            inputs, self.file_inputs(self.test_schema)
        )
        limit = timeout or (self.config.predict.predict_timeout if self.config.predict else 300)
        return await self.predictions.predict(version, prepared, timeout=limit)

    async def kept_output(self, outcome: Outcome) -> Any:
        """The output as reports keep it: file URLs embedded when a report shows outputs."""
        if not self.options.keep_outputs:
            return outcome.output
        return await asyncio.to_thread(self.files.embed, outcome.output)

    def since_start(self, moment: float) -> float:
        return max(0.0, moment - self.t0) if moment else 0.0

    async def check_outcome(
        self, outcome: Outcome, inputs: dict[str, Any], checker_key: str | None, expected: Any
    ) -> tuple[bool, str]:
        """Apply a checker (or the default "must succeed") to a finished prediction."""
        if outcome.timed_out:
            return False, outcome.error or "timed out"
        checker = self.plugins.checkers().get(checker_key) if checker_key else None
        if checker is None:
            if outcome.succeeded:
                return True, "succeeded"
            return False, f"prediction {outcome.status}: {outcome.error or ''}".strip()
        if not checker.expects_failure and not outcome.succeeded:
            return False, f"prediction {outcome.status}: {outcome.error or ''}".strip()
        check_ctx = CheckContext(
            expected=expected,
            inputs=inputs,
            output=outcome.output,
            error=outcome.error,
            status=outcome.status,
            prediction=outcome.prediction,
            read_file=self.files,
            judge=await self.wait_judge(),
            repo_root=self.repo_root,
        )
        try:
            verdict = await asyncio.to_thread(checker.check, check_ctx)
        except CogfleetError:
            raise
        except Exception as exc:  # a checker crashing is a failed check, not a crash
            return False, f"checker {checker.name} raised {type(exc).__name__}: {exc}"
        return verdict.passed, verdict.message

    async def run_case(
        self,
        kind: Literal["test-case", "fuzz", "train-case"],
        index: int,
        case: TestCase | dict[str, Any],
        *,
        version: str,
        timeout: float | None = None,
    ) -> CaseResult:
        """Predict on ``version`` with the case's inputs, check, and record the result."""
        if isinstance(case, TestCase):
            inputs, checker = case.inputs, case.checker
        else:
            inputs, checker = case, None
        key, expected = checker if checker else (None, None)
        outcome = await self.predict(version, inputs, timeout=timeout)
        ok, message = await self.check_outcome(outcome, inputs, key, expected)
        if kind == "fuzz" and ok and outcome.output in (None, "", [], {}):
            ok, message = False, "empty output"
        return self.add_case(
            CaseResult(
                kind=kind, index=index, inputs=inputs, checker=key,
                status="passed" if ok else "failed", message=message,
                prediction_id=outcome.id, duration_s=outcome.duration_s, expected=expected,
                output=await self.kept_output(outcome), error=outcome.error,
                prediction_url=outcome.url, started_s=self.since_start(outcome.started),
            )
        )


async def _timed(
    ctx: PushContext, name: str, body: Callable[[], Awaitable[StepOutcome]]
) -> StepResult:
    start = time.monotonic()
    step = StepResult(name=name, status="passed", started_s=ctx.since_start(start))
    ctx.emit("step-start", step=step)
    ctx.running.append(name)
    try:
        outcome = await body()
        step.status, step.message = outcome.status, outcome.message
    except CheckFailed as exc:
        step.status, step.message = "failed", str(exc)
    except CogfleetError as exc:
        step.status, step.message = "failed", str(exc)
    except asyncio.CancelledError:
        # cancelled by an interrupt: the step did not finish, it neither passed nor failed
        step.status, step.message = "skipped", "interrupted while running"
        step.duration_s = time.monotonic() - start
        ctx.result.steps.append(step)
        ctx.emit("step-done", step=step)
        raise
    finally:
        ctx.running.remove(name)
    step.duration_s = time.monotonic() - start
    ctx.result.steps.append(step)
    ctx.emit("step-done", step=step)
    return step


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a background task's error as seen: it matters only to the step awaiting it."""
    if not future.cancelled():
        future.exception()


def _skip_rest(ctx: PushContext, steps: list[Step], reason: str) -> None:
    for step in steps:
        if all(s.name != step.name for s in ctx.result.steps):
            skipped_step = StepResult(name=step.name, status="skipped", message=reason)
            ctx.result.steps.append(skipped_step)


async def run_pipeline(ctx: PushContext, steps: list[Step]) -> RunResult:
    """Run the whole safe push for one variant; never raises for a failed check.

    An interrupt (the task cancelled, or ``ctx.interrupt`` requested) stops the run
    before promotion and returns the result marked ``interrupted``; once promotion has
    started, promotion and release run to their end whatever arrives.
    """
    from cogfleet._target import lint_build, push_test

    result = ctx.result
    ctx.t0 = time.monotonic()
    result.started_at = datetime.now(UTC).isoformat(timespec="seconds")
    ctx.emit("run-start")
    by_phase = {phase: sorted((s for s in steps if s.phase == phase), key=lambda s: s.order)
                for phase in PHASES}
    remaining = [s for phase in PHASES for s in by_phase[phase]]
    # the judge (and its client import) is made while the run goes on, once; only a
    # check that needs it waits for it
    judge_ready = asyncio.ensure_future(ctx.wait_judge())
    judge_ready.add_done_callback(_retrieve)
    for step in remaining:  # look-ups of later steps overlap everything before them
        started = step.prefetch(ctx) if step.prefetch else None
        if started is not None:
            ctx.prefetched[step.name] = asyncio.ensure_future(started)
            ctx.prefetched[step.name].add_done_callback(_retrieve)

    def finish(outcome: Literal["passed", "failed"], reason: str = "") -> RunResult:
        result.result = outcome
        if reason:
            _skip_rest(ctx, remaining, reason)
        for pending in ctx.prefetched.values():
            pending.cancel()  # a look-up no step used any more
        result.duration_s = time.monotonic() - ctx.t0
        ctx.emit("run-done")
        return result

    try:
        if ctx.interrupt.requested:
            raise Interrupted
        core = [Step("lint", "gate", lint_build), Step("push-test", "gate", push_test)]
        for step in core + by_phase["gate"]:
            if (await _timed(ctx, step.name, partial(step.run, ctx))).status == "failed":
                await judge_ready
                return finish("failed", f"{step.name} failed")

        checks = await asyncio.gather(
            *(_timed(ctx, s.name, partial(s.run, ctx)) for s in by_phase["check"])
        )
        failed = [s.name for s in checks if s.status == "failed"]
        if failed:
            return finish("failed", f"{', '.join(failed)} failed")
        # Checked and entered in one go (no await between): an interrupt either came
        # before, and nothing is promoted, or it comes after, and promotion finishes.
        if ctx.interrupt.requested:
            raise Interrupted
        ctx.critical = True
    except (asyncio.CancelledError, Interrupted):
        judge_ready.cancel()
        result.interrupted = True
        return finish("failed", "interrupted")

    critical = asyncio.ensure_future(_promote_and_release(ctx, by_phase))
    while True:
        try:
            failed_step = await asyncio.shield(critical)
            break
        except asyncio.CancelledError:
            # promotion is never left halfway: wait for it, then say it was interrupted
            result.interrupted = True
            if critical.done():
                failed_step = critical.result()
                break
    ctx.critical = False
    if ctx.interrupt.requested:
        result.interrupted = True
    if failed_step is not None:
        return finish("failed", f"{failed_step} failed")
    return finish("passed")


async def _promote_and_release(ctx: PushContext, by_phase: dict[Phase, list[Step]]) -> str | None:
    """The critical section: promote, then release; the name of the step that failed."""
    for step in by_phase["promote"] + by_phase["release"]:
        if (await _timed(ctx, step.name, partial(step.run, ctx))).status == "failed":
            return step.name
    return None
