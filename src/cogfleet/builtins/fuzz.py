"""Built-in check step: fuzzing, plus the two input proposers.

The built-in generator (``trylast``) needs no AI: boundaries first, then seeded
random values. With an AI judge that can propose (``ANTHROPIC_API_KEY``), Claude
proposes the whole batch in one request. Either way every input is validated
against the schema before a prediction is spent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cogfleet import hookimpl
from cogfleet._errors import CheckFailed, ConfigError, PluginError
from cogfleet._result import CaseResult
from cogfleet._steps import PushContext, Step, StepOutcome, passed, skipped


@hookimpl(trylast=True)
def cogfleet_fuzz_inputs(
    ctx: PushContext,
    schema: dict[str, Any],
    kind: str,
    count: int,
    fixed_inputs: dict[str, Any],
    disabled_inputs: list[str],
) -> list[dict[str, Any]]:
    """Boundaries first, then random values from a seeded generator (no AI)."""
    from cogfleet.schema import generate_inputs

    return generate_inputs(
        schema,
        iterations=count,
        fixed_inputs=fixed_inputs,
        disabled_inputs=disabled_inputs,
        seed=ctx.options.fuzz_seed,
        kind=kind,  # type: ignore[arg-type]
    )


async def fuzz(ctx: PushContext) -> StepOutcome:
    from cogfleet.schema import validate_inputs

    predict = ctx.config.predict
    settings = predict.fuzz if predict else None
    if settings is None:
        return skipped("no predict.fuzz section")
    if settings.iterations == 0:
        return skipped("fuzzing disabled (iterations: 0)")
    assert ctx.test_version is not None
    schema = ctx.test_schema
    problem = await ctx.unreachable(dict(settings.fixed_inputs))
    if problem is not None:  # every fuzz input would carry it: no prediction is spent
        ctx.plan_cases(1)
        ctx.add_case(CaseResult(
            kind="fuzz", index=0, inputs=dict(settings.fixed_inputs), checker=None,
            status="failed", message=f"fixed_inputs: {problem}", error_kind="network",
        ))
        raise CheckFailed(f"fixed_inputs: {problem}")
    # file inputs given as repo paths are uploaded once, so every input is schema-valid
    fixed = await ctx.predictions.prepare_inputs(
        dict(settings.fixed_inputs), ctx.file_inputs(schema)
    )
    try:
        inputs: list[dict[str, Any]] = await asyncio.to_thread(
            ctx.propose_fuzz_inputs, schema, "predict", settings.iterations, fixed,
            list(settings.disabled_inputs), settings.prompt,
        )
    except PluginError:
        raise  # a plugin that broke: a configuration error (exit 2), not a failed check
    except ConfigError as exc:
        raise CheckFailed(f"predict.{exc.message}") from None
    valid = [i for i in inputs if not validate_inputs(schema, i)][: settings.iterations]
    dropped = len(inputs) - len(valid)
    if not valid:
        raise CheckFailed("no fuzz input fits the schema")
    ctx.plan_cases(len(valid))
    results = await asyncio.gather(
        *(ctx.run_case("fuzz", i, case, version=ctx.test_version["id"])
          for i, case in enumerate(valid))
    )
    failed = [r for r in results if r.status == "failed"]
    note = f" ({dropped} invalid proposals dropped)" if dropped else ""
    if failed:
        raise CheckFailed(
            f"{len(failed)}/{len(results)} fuzz inputs failed{note}: "
            + "; ".join(f"[{r.index}] {r.message} inputs={r.inputs}" for r in failed[:3])
        )
    return passed(f"{len(results)} fuzz inputs passed{note}")


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="fuzz", phase="check", run=fuzz, order=30))
