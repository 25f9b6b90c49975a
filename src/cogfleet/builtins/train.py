"""Built-in check step: training (cog-safe-push's ``train`` section).

The test version is trained into the destination (default ``<test_model>-dest``);
each train test case checks a training's output, and with ``train.fuzz`` trainings
with generated inputs must succeed with an output (as cog-safe-push fuzzes them);
then the predict test cases' inputs run on the trained version, which must answer them
(or fail those that expect an error): their checkers judge the test version. A section
with neither test cases nor fuzzing trains nothing, as in cog-safe-push (its schema is
still linted and compared).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from cogfleet import hookimpl
from cogfleet._config import TestCase
from cogfleet._errors import CheckFailed, ConfigError, PluginError
from cogfleet._result import CaseResult
from cogfleet._steps import PushContext, Step, StepOutcome, passed, skipped
from cogfleet._target_base import split_model


def _destination(ctx: PushContext) -> str:
    section = ctx.config.train
    assert section is not None
    return section.destination or f"{ctx.test_model}-dest"


def _prefetch_destination(ctx: PushContext) -> Awaitable[Any] | None:
    """Look the destination model up while the build is pushed."""
    if ctx.config.train is None:
        return None
    return ctx.target.get_model(_destination(ctx))


async def train(ctx: PushContext) -> StepOutcome:
    section = ctx.config.train
    if section is None:
        return skipped("no train section")
    fuzzing = section.fuzz is not None and section.fuzz.iterations > 0
    if not section.test_cases and not fuzzing:
        return skipped("no train.test_cases and no train.fuzz: nothing is trained")
    assert ctx.test_version is not None
    destination = _destination(ctx)
    lookup = ctx.prefetched.get("train")
    if lookup is None or await lookup is None:  # missing (or not looked up yet): create it
        await ctx.target.ensure_model(
            destination, hardware=section.destination_hardware, visibility="private"
        )
    cases = section.test_cases
    owner, name = split_model(ctx.test_model)
    file_inputs = ctx.file_inputs(ctx.test_schema, "train")
    ctx.plan_cases(len(cases))

    async def one(index: int, case: TestCase) -> tuple[CaseResult, str | None]:
        key, expected = case.checker or (None, None)
        problem = await ctx.unreachable(case.inputs, key, expected)
        if problem is not None:  # no training is spent on a case that cannot run
            return ctx.add_case(CaseResult(
                kind="train-case", index=index, inputs=case.inputs, checker=key,
                status="failed", message=problem, expected=expected, error_kind="network",
            )), None
        inputs = await ctx.predictions.prepare_inputs(case.inputs, file_inputs)
        outcome = await ctx.predictions.train(
            f"{owner}/{name}", ctx.test_version["id"], destination, inputs,  # type: ignore[index]
            timeout=section.train_timeout,
        )
        ok, message, error_kind = await ctx.verdict(outcome, case.inputs, key, expected)
        trained = None
        if outcome.succeeded and isinstance(outcome.output, dict):
            made = outcome.output.get("version")  # Replicate's "<owner>/<name>:<id>"
            trained = made.rpartition(":")[2] if isinstance(made, str) else None
        record = ctx.add_case(
            CaseResult(
                kind="train-case", index=index, inputs=case.inputs, checker=key,
                status="passed" if ok else "failed", message=message,
                prediction_id=outcome.id, duration_s=outcome.duration_s, expected=expected,
                output=await ctx.kept_output(outcome), error=outcome.error,
                prediction_url=outcome.url, started_s=ctx.since_start(outcome.started),
                error_kind=None if ok else error_kind,
            )
        )
        return record, trained

    trainings, fuzzed = await asyncio.gather(
        asyncio.gather(*(one(i, c) for i, c in enumerate(cases))),
        _fuzz_trainings(ctx, f"{owner}/{name}", destination, file_inputs, first=len(cases)),
    )
    failed = [r for r, _ in trainings if r.status == "failed"]
    failed_fuzz = [r for r in fuzzed if r.status == "failed"]
    if failed_fuzz and not failed:
        raise CheckFailed(
            f"{len(failed_fuzz)}/{len(fuzzed)} fuzz trainings failed: "
            + "; ".join(f"[{r.index}] {r.message} inputs={r.inputs}" for r in failed_fuzz[:3])
        )
    if failed:
        raise CheckFailed(
            f"{len(failed)}/{len(trainings)} trainings failed: "
            + "; ".join(f"[{r.index}] {r.message}" for r in failed[:3])
        )
    trained_version = next((v for _, v in trainings if v), None)
    if trained_version is None:
        latest = await ctx.target.latest_version(destination)
        if latest is None:
            raise CheckFailed(f"training produced no version of {destination}")
        trained_version = latest["id"]
    predict_cases = ctx.config.predict.test_cases if ctx.config.predict else []
    ctx.plan_cases(len(predict_cases))
    # training changes what the model answers (that is its point), so the checkers, written
    # for the test version's outputs, judge that one; the trained version must answer (or
    # fail where the case expects an error)
    results = await asyncio.gather(
        *(
            ctx.run_case("train-case", len(cases) + len(fuzzed) + i,
                         case if _expects_error(case) else dict(case.inputs),
                         version=trained_version)
            for i, case in enumerate(predict_cases)
        )
    )
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise CheckFailed(
            f"{len(failed)}/{len(results)} test cases failed on the trained version "
            f"{destination}:{trained_version[:12]}: "
            + "; ".join(f"[{r.index}] {r.message}" for r in failed[:3])
        )
    fuzz_note = f" and {len(fuzzed)} fuzz trainings" if fuzzed else ""
    return passed(
        f"{len(trainings)} trainings{fuzz_note} into {destination} passed; "
        f"{len(results)} test cases passed on {trained_version[:12]}"
    )


async def _fuzz_trainings(
    ctx: PushContext, model: str, destination: str, file_inputs: set[str], *, first: int
) -> list[CaseResult]:
    """``train.fuzz``: trainings with generated inputs, each of which must succeed with an
    output that is not empty (numbered from ``first``, after the test-case trainings)."""
    section = ctx.config.train
    assert section is not None and ctx.test_version is not None
    settings = section.fuzz
    if settings is None or settings.iterations == 0:
        return []
    from cogfleet.schema import validate_inputs

    version = ctx.test_version["id"]
    fixed = await ctx.predictions.prepare_inputs(dict(settings.fixed_inputs), file_inputs)
    try:
        proposed: list[dict[str, Any]] = await asyncio.to_thread(
            ctx.propose_fuzz_inputs, ctx.test_schema, "train", settings.iterations, fixed,
            list(settings.disabled_inputs), settings.prompt,
        )
    except PluginError:
        raise  # a plugin that broke: a configuration error (exit 2), not a failed check
    except ConfigError as exc:
        raise CheckFailed(f"train.{exc.message}") from None
    inputs = [
        i for i in proposed if not validate_inputs(ctx.test_schema, i, kind="train")
    ][: settings.iterations]
    if not inputs:
        raise CheckFailed("no train fuzz input fits the schema")
    ctx.plan_cases(len(inputs))

    async def one(index: int, case_inputs: dict[str, Any]) -> CaseResult:
        outcome = await ctx.predictions.train(
            model, version, destination, case_inputs, timeout=section.train_timeout
        )
        ok, message, error_kind = await ctx.verdict(outcome, case_inputs, None, None)
        if ok and outcome.output in (None, "", [], {}):
            ok, message, error_kind = False, "empty output", "model"
        return ctx.add_case(CaseResult(
            kind="train-case", index=index, inputs=case_inputs, checker=None,
            status="passed" if ok else "failed", message=f"fuzz: {message}",
            prediction_id=outcome.id, duration_s=outcome.duration_s,
            output=await ctx.kept_output(outcome), error=outcome.error,
            prediction_url=outcome.url, started_s=ctx.since_start(outcome.started),
            error_kind=None if ok else error_kind,
        ))

    return list(await asyncio.gather(*(one(first + i, c) for i, c in enumerate(inputs))))


def _expects_error(case: TestCase) -> bool:
    return case.checker is not None and case.checker[0] == "error_contains"


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="train", phase="check", run=train, order=40,
                  prefetch=_prefetch_destination))
