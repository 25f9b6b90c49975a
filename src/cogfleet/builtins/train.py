"""Built-in check step: training (cog-safe-push's ``train`` section).

The test version is trained into the destination (default ``<test_model>-dest``);
each train test case checks a training's output; then the predict test cases run on
the trained version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from cogfleet import hookimpl
from cogfleet._config import TestCase
from cogfleet._errors import CheckFailed
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
    from cogfleet.schema import required_only_inputs

    assert ctx.test_version is not None
    destination = _destination(ctx)
    lookup = ctx.prefetched.get("train")
    if lookup is None or await lookup is None:  # missing (or not looked up yet): create it
        await ctx.target.ensure_model(
            destination, hardware=section.destination_hardware, visibility="private"
        )
    cases = section.test_cases or [
        TestCase(inputs=required_only_inputs(ctx.test_schema, kind="train"))
    ]
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
            trained = outcome.output.get("version")
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

    trainings = await asyncio.gather(*(one(i, c) for i, c in enumerate(cases)))
    failed = [r for r, _ in trainings if r.status == "failed"]
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
    results = await asyncio.gather(
        *(
            ctx.run_case("train-case", len(cases) + i, case, version=trained_version)
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
    return passed(
        f"{len(trainings)} trainings into {destination} passed; "
        f"{len(results)} test cases passed on {trained_version[:12]}"
    )


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="train", phase="check", run=train, order=40,
                  prefetch=_prefetch_destination))
