"""Built-in gate steps: schema lint and backwards compatibility with the live version."""

from __future__ import annotations

import contextlib
from typing import Any

from cogfleet import hookimpl
from cogfleet._errors import CheckFailed, CogfleetError
from cogfleet._steps import PushContext, Step, StepOutcome, passed, skipped

_INPUT_SCHEMAS = {"predict": "Input", "train": "TrainingInput"}


@hookimpl
def cogfleet_schema_lint(schema: dict[str, Any], kind: str) -> list[str]:
    """Every input that is not deprecated must have a description (as cog-safe-push)."""
    component = _INPUT_SCHEMAS[kind]
    props = schema.get("components", {}).get("schemas", {}).get(component, {}).get("properties", {})
    return [
        f"{component}.{name}: no description"
        for name, prop in props.items()
        if not prop.get("deprecated") and not str(prop.get("description") or "").strip()
    ]


async def schema_lint(ctx: PushContext) -> StepOutcome:
    kinds = ["predict"] + (
        ["train"] if "TrainingInput" in ctx.test_schema.get("components", {}).get("schemas", {})
        else []
    )
    problems: list[str] = []
    for kind in kinds:
        problems.extend(ctx.plugins.schema_lint(ctx.test_schema, kind))
    if problems:
        raise CheckFailed("; ".join(problems))
    return passed(f"{', '.join(kinds)} schema clean")


async def schema_compat(ctx: PushContext) -> StepOutcome:
    from cogfleet.schema import check_compatibility

    if ctx.live_version is None:
        return skipped(f"{ctx.model} has no version yet")
    from cogfleet.schema import schema_changes

    live_schema = ctx.live_version["openapi_schema"]
    # the table of every difference is for the reports, whether or not it is enforced
    if ctx.config.ignore_schema_compatibility:
        with contextlib.suppress(CogfleetError):  # not checked, so not a failure either
            ctx.result.schema_changes = schema_changes(live_schema, ctx.test_schema)
        return skipped("ignore_schema_compatibility is set")
    breaks = check_compatibility(live_schema, ctx.test_schema)
    ctx.result.schema_changes = schema_changes(live_schema, ctx.test_schema, breaks)
    if breaks:
        raise CheckFailed(
            f"not backwards compatible with {ctx.model}:{ctx.live_version['id'][:12]}: "
            + "; ".join(breaks)
        )
    return passed(f"compatible with {ctx.model}:{ctx.live_version['id'][:12]}")


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="schema-lint", phase="gate", run=schema_lint, order=10))
    register(Step(name="schema-compat", phase="gate", run=schema_compat, order=20))
