"""The safe-push pipeline: the core orders steps; plugins do the work.

::

    lint -> push-test -> gate steps (one by one) -> check steps (concurrently)
         -> promote steps -> release steps

Any failure stops the run before promotion, so the model is never touched by a
build that did not pass every check.

An interrupt (:class:`~cogfleet._steps.Interrupt`) cancels the steps in flight, but
never promotion and release: those run as one critical section that either has not
started when the interrupt arrives (then nothing is promoted) or runs to its end (and
the result says so). Either way the result records exactly what happened on the target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from cogfleet._credentials import redact
from cogfleet._errors import (
    BadAnswer,
    CheckFailed,
    CogfleetError,
    ConfigError,
    PluginError,
    UsageError,
)
from cogfleet._result import RunResult, StepResult
from cogfleet._ruff import ruff_problems
from cogfleet._steps import (
    PHASES,
    Interrupted,
    Phase,
    PushContext,
    Step,
    StepOutcome,
    passed,
    push_flags,
)
from cogfleet._target_base import live_version


def _unreadable_answer(exc: BaseException) -> bool:
    """Whether ``exc`` is the API client failing to read an answer: a body that is not
    JSON (a redirect's empty one) or JSON that is not the object the client expects."""
    import json

    return isinstance(exc, json.JSONDecodeError) or (
        type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic")
    )


async def _timed(
    ctx: PushContext, name: str, body: Callable[[], Awaitable[StepOutcome]]
) -> StepResult:
    start = time.monotonic()
    step = StepResult(name=name, status="passed", started_s=ctx.since_start(start))
    errors = len(ctx.usage_errors)
    ctx.emit("step-start", step=step)
    if len(ctx.usage_errors) > errors:  # a progress plugin failed: the step is not run
        step.status, step.message = "skipped", "not run: a plugin failed"
        ctx.result.steps.append(step)
        return step
    ctx.running.append(name)
    try:
        outcome = await body()
        step.status, step.message = outcome.status, outcome.message
    except CheckFailed as exc:  # its text may quote a tool's output: no credential shown
        step.status, step.message = "failed", redact(str(exc))
        _target_failed(ctx, name, exc)
    except BadAnswer as exc:  # the target answered what no API answers: not a verdict
        step.status, step.message = "failed", str(exc)
        ctx.usage_errors.append(f"{ctx.name}: {step.name}: {exc}")
    except PluginError as exc:  # a plugin broke its hook's contract: a configuration error
        step.status, step.message = "failed", str(exc)
        ctx.usage_errors.append(str(exc))
    except CogfleetError as exc:
        step.status, step.message = "failed", str(exc)
        _target_failed(ctx, name, exc)
    except Exception as exc:  # noqa: BLE001 - a step that crashes fails, it never passes
        step.status, step.message = "failed", redact(
            f"step {name} raised {type(exc).__name__}: {exc}"
        )
        if not _target_failed(ctx, name, exc) and _unreadable_answer(exc):
            # the client could not read what the target sent
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            ctx.usage_errors.append(redact(
                f"{ctx.name}: {name}: the target's answer could not be read "
                f"({type(exc).__name__}: {first}); is this a Replicate API?"
            ))
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


def _target_failed(ctx: PushContext, step: str, exc: BaseException) -> bool:
    """Record a step's failure as the target's, not the model's, when it is: the target
    failed every try of a request (it drops every connection, or answers 5xx or 429),
    or it refused the token (401) or the request (403). Such a run ends with exit 2."""
    failure = getattr(getattr(ctx.target, "transport", None), "failure", None)
    status = getattr(exc, "status", None)  # a RemoteError's, or the API client's error's
    if failure is not None:  # the whole target, whichever run's request found it out
        ctx.usage_errors.append(failure)
        return True
    if status == 401:
        problem = (f"{ctx.target.url} answered 401 Unauthorized: it refused the token "
                   f"({ctx.target.token_source})")
    elif status == 403:
        problem = f"{ctx.target.url} answered 403 Forbidden ({redact(str(exc))})"
    else:
        return False
    ctx.usage_errors.append(f"{ctx.name}: {step}: {problem}")
    return True


_STOPPED = "stopped: a plugin failed"


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

    # finish() without a reason runs after every step ran: nothing is left to skip
    # (mutation testing: another default is equivalent)
    def finish(
        outcome: Literal["passed", "failed"], reason: str = ""  # pragma: no mutate
    ) -> RunResult:
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
        if ctx.usage_errors:  # a progress plugin failed on the run's start
            return finish("failed", _STOPPED)
        core = [Step("lint", "gate", lint_build), Step("push-test", "gate", push_test)]
        for step in core + by_phase["gate"]:
            if (await _timed(ctx, step.name, partial(step.run, ctx))).status == "failed":
                await asyncio.wait([judge_ready])  # ended, whether it raised or not
                return finish("failed", f"{step.name} failed")
            if ctx.usage_errors:
                return finish("failed", _STOPPED)

        checks = await asyncio.gather(
            *(_timed(ctx, s.name, partial(s.run, ctx)) for s in by_phase["check"])
        )
        failed = [s.name for s in checks if s.status == "failed"]
        if failed:
            return finish("failed", f"{', '.join(failed)} failed")
        if ctx.usage_errors:
            return finish("failed", _STOPPED)
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
        return finish("failed", failed_step)
    return finish("passed")


async def _promote_and_release(ctx: PushContext, by_phase: dict[Phase, list[Step]]) -> str | None:
    """The critical section: promote, then release; why it stopped (``None``: it did
    not). A plugin that failed meanwhile stops it between two steps, never inside one."""
    for step in by_phase["promote"] + by_phase["release"]:
        if ctx.usage_errors:
            return _STOPPED
        if (await _timed(ctx, step.name, partial(step.run, ctx))).status == "failed":
            return f"{step.name} failed"
    return None


# --- the two steps the core runs itself -------------------------------------------------


async def lint_build(ctx: PushContext) -> StepOutcome:
    """Ruff and lint plugins on the build folder (cog.yaml and config were validated).

    Warnings (:class:`~cogfleet.LintWarning`) are in the step's message and fail nothing.
    """
    from cogfleet import LintWarning

    if ctx.variant is None:
        from cogfleet._cogyaml import validate_cog_yaml

        validate_cog_yaml(ctx.build_dir / "cog.yaml", ctx.build_dir, cog_version=ctx.cog_version)
        answers = await asyncio.to_thread(ruff_problems, ctx.build_dir, "")
        answers += await asyncio.to_thread(_schema_answers, ctx)
    else:
        answers = await asyncio.to_thread(
            ctx.plugins.lint, ctx.variant, ctx.build_dir, ctx.cog_pin
        )
    problems = [a for a in answers if not isinstance(a, LintWarning)]
    warnings = [f"warning: {a}" for a in answers if isinstance(a, LintWarning)]
    # the plugins a push would call, on what is known before it: a judge or schema-lint
    # plugin that raises (or answers what its hook does not) stops the run here
    await ctx.wait_judge()
    await asyncio.to_thread(_lint_local_schema, ctx)
    if problems:
        raise CheckFailed("; ".join([*problems[:10], *warnings]))
    return passed("; ".join(["ruff, cog.yaml and config are clean", *warnings]))


_NOT_UPLOADED = ("data:", "http://", "https://")  # file inputs passed on as they are


def _lint_local_schema(ctx: PushContext) -> None:
    """Call the schema-lint and fuzz-input plugins on the schema cogfleet derives from
    the source, so that one that raises does before anything is pushed. The schema-lint
    verdict is the ``schema-lint`` step's, on the pushed version's own schema; the fuzz
    inputs proposed here are used when that schema is the same."""
    from cogfleet.schema import UnknownCogVersion, generate_schema

    try:
        schema = generate_schema(ctx.build_dir, ctx.cog_version)
    except (CogfleetError, UnknownCogVersion):
        return  # only the SDK can write it (or the push reports the source): the step lints
    config = ctx.config
    kinds = ["predict"] if config.predict is not None or config.train is None else []
    for kind in kinds + (["train"] if config.train is not None else []):
        ctx.plugins.schema_lint(schema, kind)
    for kind, section in (("predict", config.predict), ("train", config.train)):
        settings = section.fuzz if section is not None else None
        if settings is None or settings.iterations <= 0:
            continue
        fixed = dict(settings.fixed_inputs)
        if any(isinstance(fixed[name], str) and not fixed[name].startswith(_NOT_UPLOADED)
               for name in ctx.file_inputs(schema, kind) & set(fixed)):
            continue  # a repository file the step uploads first: the hook sees its URL
        try:
            ctx.propose_fuzz_inputs(schema, kind, settings.iterations, fixed,
                                    list(settings.disabled_inputs), settings.prompt)
        except PluginError:
            raise
        except ConfigError:
            continue  # the fuzz step reports it, as a failed check


def _schema_answers(ctx: PushContext) -> list[str]:
    """One Cog folder (no variant, so no lint plugins): what the pinned Cog leaves out."""
    from cogfleet import LintWarning
    from cogfleet.schema import UnknownCogVersion, source_findings

    pin = ctx.cog_pin
    label = f"Cog {pin.describe()}" if pin is not None and pin.source != "installed" else None
    try:
        findings = source_findings(ctx.build_dir, ctx.cog_version, label)
    except (CogfleetError, UnknownCogVersion):
        return []  # the push reports a source Cog cannot read
    return [str(f) if f.fails else LintWarning(str(f)) for f in findings]


async def push_test(ctx: PushContext) -> StepOutcome:
    """Push the build to the test model (created if missing) once the live model is found.

    The model's look-up also carries the live version to compare with. As in
    cog-safe-push, a model that does not exist stops the run before anything is created
    or pushed. On the embedded local server, which makes a missing model itself, the
    look-up and the upload of the build run at once.
    """
    target = ctx.target
    notes: list[str] = []
    lookup = asyncio.ensure_future(target.get_model(ctx.model))
    known: list[Any] = []

    async def live_model() -> Any:
        if known:
            return known[0]
        found = await asyncio.shield(lookup)
        if found is None:
            if not target.create_models:  # the config names a model the target lacks
                missing = f"model {ctx.model} does not exist on {target.name}; create it first"
                ctx.usage_errors.append(f"{ctx.name}: push-test: {missing}")
                raise CheckFailed(missing)
            # the embedded server starts empty: its models are made on first use
            await target.ensure_model(
                ctx.model, hardware=ctx.config.test_hardware, visibility="public"
            )
            notes.append(f"created {ctx.model} on the embedded local server")
            found = await target.get_model(ctx.model)
        known.append(found)
        return found

    try:
        if not target.create_models:  # a model it cannot make: no test push without it
            await live_model()
        version, created = await target.push_creating(
            ctx.build_dir, ctx.test_model, push_flags(ctx),
            hardware=ctx.config.test_hardware, may_create=live_model,
        )
        model = await live_model()
    finally:
        if not lookup.done():
            lookup.cancel()  # the push failed first: its error is the one to report
        elif not lookup.cancelled():
            lookup.exception()  # retrieved (raised above, or moot after the push failed)
    if created:
        notes.append(f"created private {ctx.test_model} ({ctx.config.test_hardware})")
    ctx.test_version = version
    ctx.result.test_version = version["id"]
    ctx.live_version = live_version(model)
    ctx.result.live_version = ctx.live_version["id"] if ctx.live_version else None
    pushed = f"pushed {ctx.test_model}:{version['id'][:12]}"
    runtime = target.runtime_summary(version["id"])
    notes.append(f"{pushed} ({runtime})" if runtime else f"{pushed} (Cog {ctx.cog_version})")
    if ctx.check_inputs is not None:  # the schema exists now: inputs checked as before a push
        try:
            notes += [f"warning: {w}" for w in ctx.check_inputs(ctx.test_schema)]
        except (ConfigError, UsageError) as exc:  # bad input, not a failed check: exit 2
            ctx.usage_errors.append(str(exc))
            raise CheckFailed(
                f"{exc} (against the schema of {ctx.test_model}:{version['id'][:12]}; "
                "nothing else runs)"
            ) from None
    return passed("; ".join(notes))
