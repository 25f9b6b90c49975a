"""Built-in check step: compare the live and the test version's outputs.

The same inputs run on both versions at once, and the outputs are judged as
cog-safe-push judges them. They must have the same type and structure (an integer is
not a float; a file is not a value). Integers and booleans must be equal, floats
closer than 0.1, files of the same type (``.jpeg`` is ``.jpg``), images of the same
size; the content of files other than images is not compared (audio and video of an
unchanged model differ run to run). With a fixed ``seed`` input, strings must be
equal and images near-identical. Without a seed, strings and images that differ go to
the AI judge; with no judge configured the step fails and says why (never a silent
pass).
"""

from __future__ import annotations

import asyncio
from typing import Any

from cogfleet import hookimpl
from cogfleet._checks import OutputFile, iter_file_refs
from cogfleet._errors import CheckFailed, NetworkError
from cogfleet._result import CaseResult, Comparison, ErrorKind, FileComparison
from cogfleet._steps import PushContext, Step, StepOutcome, passed, skipped

FIXED_SEED = 42
FLOAT_TOLERANCE = 0.1  # floats closer than this are equal (cog-safe-push's tolerance)
# what failed a comparison, by how it was compared
_KIND_OF_MODE: dict[str, ErrorKind] = {"failed": "model", "judge": "judge"}
def _is_file_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("data:", "http://", "https://"))


def structure_difference(a: Any, b: Any, path: str = "output") -> str | None:
    """Where ``a`` and ``b`` differ in type or structure (``None`` when alike)."""
    if _is_file_ref(a) != _is_file_ref(b):
        return f"{path}: file vs value"
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            diff = structure_difference(x, y, f"{path}[{i}]")
            if diff:
                return diff
    if isinstance(a, dict):
        if set(a) != set(b):
            return f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            diff = structure_difference(a[key], b[key], f"{path}.{key}")
            if diff:
                return diff
    return None


def _files_match(x: OutputFile, y: OutputFile, path: str, *, seeded: bool) -> FileComparison:
    """Two output files: same type; images the same size (with a seed, near-identical).

    Images are the files with an image extension (as cog-safe-push tells them, so an
    SVG is compared as other files are), or without an extension, an image type.
    Without a seed, two same-sized images that are not byte-identical are not decided
    here: the answer's message is then :data:`_FOR_THE_JUDGE`.
    """
    from cogfleet._images import (
        DISTANCE_METRIC,
        IMAGE_EXTENSIONS,
        PIXEL_THRESHOLD,
        image_distance,
        image_info,
        normalize_extension,
    )

    ext_x, ext_y = normalize_extension(x.extension), normalize_extension(y.extension)
    if ext_x != ext_y:
        return FileComparison(path, False, f"file types differ: {x.extension} vs {y.extension}")
    image = ext_x in IMAGE_EXTENSIONS if ext_x else x.content_type.startswith("image/")
    if image:
        if seeded:
            ok, message, distance = image_distance(x.data, y.data)
            return FileComparison(
                path, ok, message, metric=DISTANCE_METRIC if distance is not None else None,
                value=distance, threshold=PIXEL_THRESHOLD if distance is not None else None,
            )
        if x.data == y.data:
            return FileComparison(path, True, "identical images")
        info_x, info_y = image_info(x.data), image_info(y.data)
        if info_x is not None and info_y is not None and info_x.size != info_y.size:
            return FileComparison(
                path, False, f"image sizes differ: {info_x.size} vs {info_y.size}"
            )
        return FileComparison(path, False, _FOR_THE_JUDGE)
    if x.data == y.data:
        return FileComparison(path, True, "identical files")
    # as in cog-safe-push: audio, video and other files of a generative model differ run
    # to run even when the model is unchanged, so only their type is compared
    return FileComparison(path, True, f"both are .{ext_x} files (content not compared)")


_FOR_THE_JUDGE = "left to the AI judge"


def output_difference(
    ctx: PushContext, a: Any, b: Any, path: str = "output", *,
    files: list[FileComparison] | None = None, undecided: list[str] | None = None,
) -> str | None:
    """Where two outputs of alike structure differ, or ``None``.

    With ``undecided`` ``None`` (a fixed seed), strings must be equal and images
    near-identical. With a list (no seed), the paths of strings and same-sized images
    that differ are appended to it for the judge instead. Each pair of files compared
    is appended to ``files`` (for the report).
    """
    if _is_file_ref(a):
        found = _files_match(ctx.files(a), ctx.files(b), path, seeded=undecided is None)
        if undecided is not None and found.message == _FOR_THE_JUDGE:
            undecided.append(path)
            return None
        if files is not None:
            files.append(found)
        return None if found.match else f"{path}: {found.message}"
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            diff = output_difference(ctx, x, y, f"{path}[{i}]", files=files, undecided=undecided)
            if diff:
                return diff
        return None
    if isinstance(a, dict):
        for key in a:
            diff = output_difference(
                ctx, a[key], b[key], f"{path}.{key}", files=files, undecided=undecided
            )
            if diff:
                return diff
        return None
    if isinstance(a, float):
        return None if abs(a - b) < FLOAT_TOLERANCE else f"{path}: {a} vs {b}"
    if isinstance(a, str) and undecided is not None and a != b:
        undecided.append(path)
        return None
    return None if a == b else f"{path}: {_shown(a)} vs {_shown(b)}"


def _shown(value: Any) -> str:
    return repr(value[:80]) if isinstance(value, str) else str(value)


def _seed_input(schema: dict[str, Any]) -> str | None:
    props = schema.get("components", {}).get("schemas", {}).get("Input", {}).get("properties", {})
    seed = props.get("seed")
    if seed is not None and seed.get("type") == "integer":
        return "seed"
    return None


def _inputs_without_cases(ctx: PushContext) -> dict[str, Any]:
    """Required inputs only, with the fuzz section's fixed inputs and without its
    disabled ones (as cog-safe-push compares outputs when there is no test case)."""
    from cogfleet.schema import input_properties, required_only_inputs

    inputs = required_only_inputs(ctx.test_schema)
    fuzz = ctx.config.predict.fuzz if ctx.config.predict else None
    if fuzz is None:
        return inputs
    known = input_properties(ctx.test_schema)
    inputs.update({k: v for k, v in fuzz.fixed_inputs.items() if k in known})
    for name in fuzz.disabled_inputs:
        inputs.pop(name, None)
    return inputs


async def compare_outputs(ctx: PushContext) -> StepOutcome:
    predict = ctx.config.predict
    if predict is None or not predict.compare_outputs:
        return skipped("compare_outputs is off")
    if ctx.live_version is None:
        return skipped(f"{ctx.model} has no version to compare with")
    assert ctx.test_version is not None
    checkers = ctx.plugins.checkers()
    usable = [  # a case that expects a failure is no basis for comparing outputs
        c for c in predict.test_cases
        if not (c.checker and checkers[c.checker[0]].expects_failure)
    ]
    if usable:
        inputs = dict(usable[0].inputs)
    else:  # the schema module's import (jsonschema) is not in the way of the first predictions
        inputs = _inputs_without_cases(ctx)
    seed_name = _seed_input(ctx.test_schema)
    if seed_name and seed_name not in inputs:
        inputs[seed_name] = FIXED_SEED
    seeded = seed_name is not None and seed_name in inputs
    ctx.plan_cases(1)
    problem = await ctx.unreachable(inputs)
    if problem is not None:  # no prediction is spent on inputs that cannot be fetched
        ctx.add_case(CaseResult(
            kind="compare-outputs", index=0, inputs=inputs, checker=None, status="failed",
            message=problem, error_kind="network",
        ))
        raise CheckFailed(problem)
    live, test = await asyncio.gather(
        ctx.predict(ctx.live_version["id"], inputs), ctx.predict(ctx.test_version["id"], inputs)
    )
    live_output, test_output = await asyncio.gather(ctx.kept_output(live), ctx.kept_output(test))
    files: list[FileComparison] = []

    def record(ok: bool, message: str, mode: Any, kind: ErrorKind | None = None) -> CaseResult:
        assert ctx.live_version is not None
        comparison = Comparison(
            live_version=ctx.live_version["id"], live_prediction_id=live.id,
            live_prediction_url=live.url, live_output=live_output, mode=mode,
            seed=inputs.get(seed_name) if seeded and seed_name else None, files=files,
        )
        return ctx.add_case(
            CaseResult(
                kind="compare-outputs", index=0, inputs=inputs, checker=None,
                status="passed" if ok else "failed", message=message,
                prediction_id=test.id, duration_s=max(live.duration_s, test.duration_s),
                output=test_output, error=test.error, prediction_url=test.url,
                started_s=ctx.since_start(min(live.started, test.started)),
                comparison=comparison,
                error_kind=None if ok else (kind or _KIND_OF_MODE.get(mode, "checker")),
            )
        )

    if not live.succeeded or not test.succeeded:
        which = "live" if not live.succeeded else "test"
        bad = live if which == "live" else test
        record(False, f"{which} prediction {bad.status}: {bad.error}", "failed")
        raise CheckFailed(f"{which} prediction {bad.status}: {bad.error}")
    diff = structure_difference(live.output, test.output)
    if diff:
        record(False, f"different output structure: {diff}", "structure")
        raise CheckFailed(f"outputs differ in type or structure: {diff}")
    if seeded:
        try:
            diff = await asyncio.to_thread(
                lambda: output_difference(ctx, live.output, test.output, files=files)
            )
        except NetworkError as exc:
            record(False, str(exc), "seeded", "network")
            raise CheckFailed(f"cannot compare the outputs: {exc}") from None
        if diff:
            record(False, f"seed {inputs[seed_name]}: {diff}", "seeded")  # type: ignore[index]
            raise CheckFailed(f"outputs differ with a fixed seed: {diff}")
        record(True, "outputs match with a fixed seed", "seeded")
        return passed(f"live {live.id} and test {test.id} match (seed {inputs[seed_name]})")  # type: ignore[index]
    if live.output == test.output:
        record(True, "outputs are equal", "equal")
        return passed("outputs are equal")
    undecided: list[str] = []
    try:
        diff = await asyncio.to_thread(
            lambda: output_difference(
                ctx, live.output, test.output, files=files, undecided=undecided
            )
        )
    except NetworkError as exc:
        record(False, str(exc), "values", "network")
        raise CheckFailed(f"cannot compare the outputs: {exc}") from None
    if diff:
        record(False, f"no seed: {diff}", "values")
        raise CheckFailed(f"outputs differ: {diff}")
    if not undecided:
        record(True, "outputs match (no text or image differs)", "values")
        return passed("outputs match (no text or image differs)")
    compare = getattr(await ctx.wait_judge(), "compare", None)
    if compare is None:
        message = (
            f"outputs differ at {', '.join(undecided[:3])} and the model has no seed input; "
            "the AI judge is not configured (set ANTHROPIC_API_KEY) to decide whether they match"
        )
        record(False, message, "judge")
        raise CheckFailed(message)
    try:
        live_files = [ctx.files(r) for r in iter_file_refs(live.output)]
        test_files = [ctx.files(r) for r in iter_file_refs(test.output)]
    except NetworkError as exc:
        record(False, str(exc), "judge", "network")
        raise CheckFailed(f"cannot compare the outputs: {exc}") from None
    verdict = await asyncio.to_thread(compare, live.output, test.output, live_files, test_files)
    record(verdict.passed, f"AI judge: {verdict.message}", "judge")
    if not verdict.passed:
        raise CheckFailed(f"AI judge says the outputs do not match: {verdict.message}")
    return passed(f"AI judge: {verdict.message}")


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="compare-outputs", phase="check", run=compare_outputs, order=10))
