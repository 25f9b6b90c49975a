"""The step API: what the pipeline hands each step, and what a step answers.

Plugins register :class:`Step` objects (``cogfleet_register_steps``); each step's
``run(ctx)`` gets the variant's :class:`PushContext` and returns a
:class:`StepOutcome` (or raises :class:`cogfleet.CheckFailed`). The pipeline that
orders the steps is :mod:`cogfleet._pipeline`; the plugin manager is
:mod:`cogfleet._plugins`, which this module sees only through :class:`PluginHooks`
so that the contract (``hookspecs``) can speak of steps without an import circle.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from cogfleet._checks import CheckContext, Checker, Judge
from cogfleet._config import SafePushConfig, TestCase
from cogfleet._credentials import redact
from cogfleet._errors import CogfleetError, NetworkError
from cogfleet._predict import FileCache, Outcome, Predictions, input_urls, is_remote_url
from cogfleet._repo import Variant
from cogfleet._result import CaseResult, ErrorKind, RunResult, StepResult
from cogfleet._target_base import PushFlags, Target
from cogfleet.runtime import CogPin, EnvironmentKind, RuntimeOptions, installed_pin

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
    offline: bool = False  # URLs off this machine fail at once instead of being fetched
    environment: EnvironmentKind = "isolated"  # --env: the local target's environment
    python: str | None = None  # --python: fallback when python_version is not installed
    run_build_commands: bool = False  # --run-build-commands: run build.run locally


class PluginHooks(Protocol):
    """The plugin calls a step may make (:class:`cogfleet._plugins.Plugins` implements them)."""

    def checkers(self) -> dict[str, Checker]: ...

    def lint(
        self, variant: Variant, build_dir: Path, cog_pin: CogPin | None = None
    ) -> list[str]: ...

    def schema_lint(self, schema: dict[str, Any], kind: str) -> list[str]: ...

    def judge(self, ctx: PushContext) -> Judge | None: ...

    def fuzz_inputs(
        self,
        ctx: PushContext,
        schema: dict[str, Any],
        kind: str,
        count: int,
        fixed_inputs: dict[str, Any],
        disabled_inputs: list[str],
        prompt: str | None,
    ) -> list[dict[str, Any]]: ...

    def progress(self, event: ProgressEvent) -> None: ...


@dataclass
class PushContext:
    """Everything a step sees for one variant."""

    name: str
    config: SafePushConfig
    build_dir: Path
    repo_root: Path | None
    target: Target
    plugins: PluginHooks
    options: PushOptions
    result: RunResult
    predictions: Predictions
    files: FileCache
    variant: Variant | None = None
    cog_pin: CogPin | None = None
    # the config's inputs checked against the test version's schema once it is pushed
    # (raises ConfigError or UsageError; returns warnings): set when the schema could
    # not be known before the push
    check_inputs: Callable[[dict[str, Any]], list[str]] | None = None
    test_version: dict[str, Any] | None = None
    live_version: dict[str, Any] | None = None
    promoted_version: str | None = None
    cases_planned: int = 0
    interrupt: Interrupt = field(default_factory=Interrupt)
    running: list[str] = field(default_factory=list)  # steps in flight, for messages
    # steps that failed on bad input, not on the model: an answer no API gives, or a
    # plugin that broke its hook's contract. The run ends with exit 2, not as a failed check
    usage_errors: list[str] = field(default_factory=list)
    critical: bool = False  # promotion or release under way: never cancelled halfway
    t0: float = field(default_factory=time.monotonic)  # when the run started
    prefetched: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    # fuzz inputs proposed before the push, on the schema derived from the source: the
    # call's arguments and the answer, reused when the pushed schema is equal to it
    fuzz_proposals: dict[str, tuple[tuple[Any, ...], list[dict[str, Any]]]] = field(
        default_factory=dict)
    _judge: Judge | None = field(default=None, repr=False)
    _judge_loaded: bool = field(default=False, repr=False)
    _judge_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def cog_version(self) -> str:
        """The Cog version this variant is pinned to (the installed SDK by default)."""
        return (self.cog_pin or installed_pin()).version

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

    def propose_fuzz_inputs(
        self,
        schema: dict[str, Any],
        kind: str,
        count: int,
        fixed_inputs: dict[str, Any],
        disabled_inputs: list[str],
        prompt: str | None,
    ) -> list[dict[str, Any]]:
        """The fuzz-input plugins' proposals for ``kind`` (blocking: call it in a thread).

        A proposal made before the push for the same arguments (see
        :attr:`fuzz_proposals`) is used instead of asking the plugins again.
        """
        key = (schema, count, fixed_inputs, disabled_inputs, prompt)  # 4 == 4.0, as in JSON
        early = self.fuzz_proposals.get(kind)
        if early is not None and early[0] == key:
            return early[1]
        inputs = self.plugins.fuzz_inputs(
            ctx=self, schema=schema, kind=kind, count=count, fixed_inputs=fixed_inputs,
            disabled_inputs=disabled_inputs, prompt=prompt,
        )
        self.fuzz_proposals[kind] = (key, inputs)
        return inputs

    async def wait_judge(self) -> Judge | None:
        """:attr:`judge` for the event loop: waits in a thread while the judge is made."""
        if self._judge_loaded:
            return self._judge
        return await asyncio.to_thread(lambda: self.judge)

    # -- progress ----------------------------------------------------------------------

    def emit(self, kind: Any, **kwargs: Any) -> None:
        """Tell the progress plugins. One that raises never breaks off what the run is
        doing: its error is recorded (the run ends with exit 2 naming it) and the
        pipeline stops at its next step, before promotion if it has not begun."""
        try:
            self.plugins.progress(ProgressEvent(kind=kind, result=self.result, **kwargs))
        except CogfleetError as exc:
            if str(exc) not in self.usage_errors:
                self.usage_errors.append(str(exc))

    def plan_cases(self, count: int) -> None:
        self.cases_planned += count
        self.emit("cases-planned", planned=self.cases_planned)

    def add_case(self, case: CaseResult) -> CaseResult:
        # a checker's message may quote what it read (a plugin's, or a jq query of $ENV):
        # no credential of the environment reaches output or reports through it
        case.message = redact(case.message)
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
        outcome = await self.predictions.predict(version, prepared, timeout=limit)
        schema = next(
            (v.get("openapi_schema") for v in (self.test_version, self.live_version)
             if v is not None and v.get("id") == version),
            None,
        )
        return joined_text_output(outcome, schema)

    async def kept_output(self, outcome: Outcome) -> Any:
        """The output as reports keep it: file URLs embedded when a report shows outputs."""
        if not self.options.keep_outputs:
            return outcome.output
        return await asyncio.to_thread(self.files.embed, outcome.output)

    def since_start(self, moment: float) -> float:
        return max(0.0, moment - self.t0) if moment else 0.0

    async def unreachable(
        self, inputs: dict[str, Any], checker_key: str | None = None, expected: Any = None
    ) -> str | None:
        """Why a URL the case needs cannot be fetched, or ``None`` when all can.

        The URLs are the inputs' and, for a checker that fetches its value
        (``match_url``), that value. Each URL is tried once per run.
        """
        for name, url in input_urls(inputs):
            try:
                await asyncio.to_thread(self.files.probe, url)
            except NetworkError as exc:
                return f"input {name!r}: {exc}"
        checker = self.plugins.checkers().get(checker_key) if checker_key else None
        if checker is not None and checker.fetches_expected and is_remote_url(expected):
            try:
                await asyncio.to_thread(self.files, expected)
            except NetworkError as exc:
                return f"{checker_key}: {exc}"
        return None

    async def check_outcome(
        self, outcome: Outcome, inputs: dict[str, Any], checker_key: str | None, expected: Any
    ) -> tuple[bool, str]:
        """Apply a checker (or the default "must succeed") to a finished prediction."""
        ok, message, _ = await self.verdict(outcome, inputs, checker_key, expected)
        return ok, message

    async def verdict(
        self, outcome: Outcome, inputs: dict[str, Any], checker_key: str | None, expected: Any
    ) -> tuple[bool, str, ErrorKind | None]:
        """:meth:`check_outcome`, and what failed (``None`` when it passed)."""
        if outcome.timed_out:
            return False, outcome.error or "timed out", "model"
        checker = self.plugins.checkers().get(checker_key) if checker_key else None
        if checker is None:
            if outcome.succeeded:
                return True, "succeeded", None
            return False, f"prediction {outcome.status}: {outcome.error or ''}".strip(), "model"
        if not checker.expects_failure and not outcome.succeeded:
            return False, f"prediction {outcome.status}: {outcome.error or ''}".strip(), "model"
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
        except NetworkError as exc:
            return False, str(exc), "network"
        except CogfleetError:
            raise
        except Exception as exc:  # a checker crashing is a failed check, not a crash
            return False, f"checker {checker.name} raised {type(exc).__name__}: {exc}", "checker"
        if verdict.passed:
            return True, verdict.message, None
        kind: ErrorKind = "checker"
        if verdict.error_kind == "judge":
            kind = "judge"
        elif verdict.error_kind == "network":
            kind = "network"
        return False, verdict.message, kind

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
        # the URLs the config names (a fuzz case's fixed inputs were tried by the fuzz step)
        problem = None if kind == "fuzz" else await self.unreachable(inputs, key, expected)
        if problem is not None:  # no prediction is spent on a case that cannot run
            return self.add_case(
                CaseResult(
                    kind=kind, index=index, inputs=inputs, checker=key, status="failed",
                    message=problem, expected=expected, error_kind="network",
                    started_s=self.since_start(time.monotonic()),
                )
            )
        outcome = await self.predict(version, inputs, timeout=timeout)
        ok, message, error_kind = await self.verdict(outcome, inputs, key, expected)
        if kind == "fuzz" and ok and outcome.output in (None, "", [], {}):
            ok, message, error_kind = False, "empty output", "model"
        return self.add_case(
            CaseResult(
                kind=kind, index=index, inputs=inputs, checker=key,
                status="passed" if ok else "failed", message=message,
                prediction_id=outcome.id, duration_s=outcome.duration_s, expected=expected,
                output=await self.kept_output(outcome), error=outcome.error,
                prediction_url=outcome.url, started_s=self.since_start(outcome.started),
                error_kind=None if ok else error_kind,
            )
        )


def joined_text_output(outcome: Outcome, schema: dict[str, Any] | None) -> Outcome:
    """The outcome with a text iterator's pieces joined into one string.

    A predictor typed ``-> Iterator[str]`` or ``ConcatenateIterator[str]`` answers
    through the API with the list of the pieces it yielded; Replicate's client (and so
    cog-safe-push) joins them, and checkers and output comparison see the text. How a
    model splits its text between yields is not part of its output. Iterators of
    files (``format: uri`` items) stay lists.
    """
    if not isinstance(outcome.output, list) or not isinstance(schema, dict):
        return outcome
    output_schema = schema.get("components", {}).get("schemas", {}).get("Output", {})
    items = output_schema.get("items") if isinstance(output_schema, dict) else None
    if (
        output_schema.get("type") != "array"
        or output_schema.get("x-cog-array-type") != "iterator"
        or not isinstance(items, dict)
        or items.get("type") != "string"
        or "format" in items
        or not all(isinstance(piece, str) for piece in outcome.output)
    ):
        return outcome
    return replace(outcome, output="".join(outcome.output))


def runtime_options(ctx: PushContext) -> RuntimeOptions:
    """How the variant's version runs: its pinned Cog and the environment asked for."""
    return RuntimeOptions(
        cog_version=ctx.cog_version,
        environment=ctx.options.environment,
        python=ctx.options.python,
        run_build_commands=ctx.options.run_build_commands,
    )


def push_flags(ctx: PushContext) -> PushFlags:
    """The ``cog push`` flags of this run: from the config and the command line, and how
    the local target runs the version."""
    return PushFlags(
        dockerfile=ctx.config.dockerfile,
        use_cog_base_image=ctx.config.use_cog_base_image,
        fast=ctx.config.fast_push,
        separate_weights=ctx.options.separate_weights,
        secrets=list(ctx.options.secrets),
        runtime=runtime_options(ctx),
    )

