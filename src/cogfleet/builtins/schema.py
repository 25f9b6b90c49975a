"""Built-in schema checks: what the source publishes under the pinned Cog (lint), schema
lint and backwards compatibility with the live version (gate steps)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogfleet import LintWarning, hookimpl
from cogfleet._errors import CheckFailed, CogfleetError
from cogfleet._repo import Variant
from cogfleet._steps import PushContext, Step, StepOutcome, passed, skipped
from cogfleet.builtins.lint import root_of

if TYPE_CHECKING:
    from cogfleet.runtime import CogPin

_INPUT_SCHEMAS = {"predict": "Input", "train": "TrainingInput"}


@hookimpl
def cogfleet_lint(variant: Variant, build_dir: Path, cog_pin: CogPin) -> list[str]:
    """Input(...) arguments the pinned Cog leaves out of the schema, by file:line.

    Under a Cog that drops them (0.17 on) they fail the lint: the published schema
    differs from the code. Under Cog <= 0.16 they are warnings: an upgrade drops them.
    A source whose schema cannot be made gives nothing here (the push reports it).
    """
    from cogfleet.schema import UnknownCogVersion, source_findings

    pin = f"Cog {cog_pin.describe()}" if cog_pin.source != "installed" else None
    try:
        findings = source_findings(build_dir, cog_pin.version, pin)
    except (CogfleetError, UnknownCogVersion):
        return []
    root = root_of(variant, build_dir)
    answers: list[str] = []
    for finding in findings:
        where, line = _source_position(variant, build_dir, root, finding.file, finding.line)
        text = f"{where}:{line}: {finding.message}" if line else f"{where}: {finding.message}"
        answers.append(text if finding.fails else LintWarning(text))
    return answers


def _source_position(
    variant: Variant, build_dir: Path, root: Path, rel: str, line: int | None
) -> tuple[str, int | None]:
    """Where the user wrote ``rel:line`` of the build folder (a template's line for .j2)."""
    plain = variant.family_dir / rel
    template = variant.family_dir / f"{rel}.j2"
    if plain.is_file():
        return _shown(plain, root, build_dir / rel), line
    if template.is_file() and line is not None:
        from cogfleet._ruff import template_lines

        rendered = (build_dir / rel).read_text(encoding="utf-8", errors="replace")
        mapping = template_lines(template.read_text(encoding="utf-8", errors="replace"), rendered)
        mapped = mapping[line - 1] if 1 <= line <= len(mapping) else None
        return _shown(template, root, build_dir / rel), mapped
    return _shown(build_dir / rel, root, build_dir / rel), line


def _shown(path: Path, root: Path, fallback: Path) -> str:
    for candidate in (path, fallback):
        with contextlib.suppress(ValueError):
            return candidate.resolve().relative_to(root.resolve()).as_posix()
    return path.as_posix()


@hookimpl
def cogfleet_schema_lint(schema: dict[str, Any], kind: str) -> list[str]:
    """Every input that is not deprecated must have a description (as cog-safe-push)."""
    component = _INPUT_SCHEMAS[kind]
    schemas = schema.get("components", {}).get("schemas", {})
    if component not in schemas:
        return [f"{component}: missing (the config has a {kind} section)"]
    props = schemas[component].get("properties", {})
    return [
        f"{component}.{name}: no description"
        for name, prop in props.items()
        if not prop.get("deprecated") and not prop.get("description")
    ]


def tested_parts(ctx: PushContext) -> list[str]:
    """The parts of the model the config tests, as in cog-safe-push: ``predict`` (when
    the config has a ``predict`` section, or no ``train`` one) and ``train`` (when it
    has a ``train`` section). Schema lint and compatibility look at those parts only."""
    config = ctx.config
    parts = ["predict"] if config.predict is not None or config.train is None else []
    return parts + (["train"] if config.train is not None else [])


async def schema_lint(ctx: PushContext) -> StepOutcome:
    kinds = tested_parts(ctx)
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
        breaks = []
        with contextlib.suppress(CogfleetError):  # not checked, so not a failure either
            breaks = check_compatibility(live_schema, ctx.test_schema, parts=tested_parts(ctx))
            ctx.result.schema_changes = schema_changes(live_schema, ctx.test_schema, breaks)
        ignored = (f"; ignored: not backwards compatible with "
                   f"{ctx.model}:{ctx.live_version['id'][:12]}: {'; '.join(breaks)}"
                   if breaks else "")
        return skipped(f"ignore_schema_compatibility is set{ignored}")
    breaks = check_compatibility(live_schema, ctx.test_schema, parts=tested_parts(ctx))
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
