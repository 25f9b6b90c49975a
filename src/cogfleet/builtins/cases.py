"""Built-in check step: the config's test cases, run concurrently on the test version."""

from __future__ import annotations

import asyncio
from typing import Any

from cogfleet import hookimpl
from cogfleet._errors import CheckFailed
from cogfleet._steps import PushContext, Step, StepOutcome, passed, skipped


async def test_cases(ctx: PushContext) -> StepOutcome:
    cases = ctx.config.predict.test_cases if ctx.config.predict else []
    if not cases:
        return skipped("no predict.test_cases")
    assert ctx.test_version is not None
    ctx.plan_cases(len(cases))
    results = await asyncio.gather(
        *(
            ctx.run_case("test-case", i, case, version=ctx.test_version["id"])
            for i, case in enumerate(cases)
        )
    )
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise CheckFailed(
            f"{len(failed)}/{len(results)} test cases failed: "
            + "; ".join(f"[{r.index}] {r.checker or 'succeeds'}: {r.message}" for r in failed[:5])
        )
    return passed(f"{len(results)} test cases passed")


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="test-cases", phase="check", run=test_cases, order=20))
