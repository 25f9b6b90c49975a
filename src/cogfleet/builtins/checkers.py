"""The five test-case checkers of the cog-safe-push config format, as a plugin.

``exact_string``, ``match_url``, ``match_prompt``, ``jq_query`` and ``error_contains``
mean what they mean in cog-safe-push; this module registers them through
:func:`cogfleet_register_checkers` exactly as a third-party plugin would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jq

from cogfleet import _images, _judge_facts, hookimpl
from cogfleet._checks import (
    CheckContext,
    Checker,
    CheckResult,
    OutputFile,
    decode_data_uri,
    iter_file_refs,
)
from cogfleet._errors import RemoteError
from cogfleet.builtins import _jq_run

_SHOWN = 200


def _short(value: Any, limit: int = _SHOWN) -> str:
    """``value`` on one line, cut to ``limit`` characters; data URIs shown by type only."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text.startswith("data:"):
        return text.partition(",")[0] + ",…"
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unexpected_status(ctx: CheckContext) -> CheckResult | None:
    """A failure when a prediction that should succeed did not, else ``None``."""
    if ctx.status == "succeeded":
        return None
    if ctx.error:
        return CheckResult(False, f"prediction {ctx.status}: {_short(ctx.error, 500)}")
    return CheckResult(False, f"prediction {ctx.status}")


def _require_string(name: str) -> Callable[[Any], None]:
    def validate(value: Any) -> None:
        if not isinstance(value, str) or not value.strip():  # blank: nothing to check for
            raise ValueError(f"{name} must be a non-empty string, got {_short(value)}")

    return validate


# --- exact_string -----------------------------------------------------------------


def _validate_exact_string(value: Any) -> None:
    # As in cog-safe-push, the expected value is a string: YAML reads `exact_string: 42`
    # as a number, which a string output never equals.
    if not isinstance(value, str):
        scalar = isinstance(value, bool | int | float)
        hint = f' (write it quoted: "{json.dumps(value)}")' if scalar else ""
        raise ValueError(f"exact_string must be a string, got {_short(value)}{hint}")


def _check_exact_string(ctx: CheckContext) -> CheckResult:
    failed = _unexpected_status(ctx)
    if failed:
        return failed
    expected = str(ctx.expected)
    output = ctx.output
    # As in cog-safe-push, only a string output can match: a list (even of one string)
    # or a number is not the string it would print as. A text iterator's pieces arrive
    # joined (see cogfleet._steps.joined_text_output).
    if not isinstance(output, str):
        return CheckResult(False, f"expected the string {_short(expected)!r}, got {_short(output)}")
    if output != expected:
        return CheckResult(False, f"expected {_short(expected)!r}, got {_short(output)!r}")
    return CheckResult(True, f"output is {_short(expected)!r}")


# --- match_url --------------------------------------------------------------------


def _validate_match_url(value: Any) -> None:
    _require_string("match_url")(value)
    if value.startswith("data:") and not decode_data_uri(value).data:
        raise ValueError("match_url data URI holds no data")


def _output_file(ctx: CheckContext) -> tuple[OutputFile | None, str]:
    """The single file the output names (a URL, or a one-item list of one)."""
    out = ctx.output
    if isinstance(out, list) and len(out) == 1:
        out = out[0]
    if not isinstance(out, str) or not list(iter_file_refs(out)):
        return None, f"expected a file output, got {_short(ctx.output)}"
    # the reason is read only without a file (mutation testing: equivalent)
    return ctx.output_files()[0], ""  # pragma: no mutate


def _check_match_url(ctx: CheckContext) -> CheckResult:
    failed = _unexpected_status(ctx)
    if failed:
        return failed
    got, why = _output_file(ctx)
    if got is None:
        return CheckResult(False, why)
    try:
        expected = ctx.read_file(ctx.expected)
    except (OSError, ValueError) as exc:
        return CheckResult(False, f"cannot read the expected file {_short(ctx.expected)}: {exc}")
    ext_expected = _images.normalize_extension(expected.extension)
    ext_got = _images.normalize_extension(got.extension)
    if ext_expected != ext_got:
        return CheckResult(
            False,
            f"expected a .{ext_expected or '?'} file like {_short(ctx.expected)}, "
            f"got .{ext_got or '?'} ({got.name})",
        )
    if ext_expected in _images.IMAGE_EXTENSIONS:
        ok, message = _images.images_match(expected.data, got.data)
        return CheckResult(ok, message)
    if expected.data == got.data:
        return CheckResult(True, f"files are identical ({len(got.data)} bytes)")
    # cog-safe-push compares only the type of non-image files: audio and video of a
    # generative model differ run to run even when the model is unchanged.
    return CheckResult(True, f"both are .{ext_got} files (content of .{ext_got} is not compared)")


# --- match_prompt -----------------------------------------------------------------

JUDGE_NOT_CONFIGURED = "AI judge is not configured (set ANTHROPIC_API_KEY)"


def _check_match_prompt(ctx: CheckContext) -> CheckResult:
    failed = _unexpected_status(ctx)
    if failed:
        return failed
    prompt = str(ctx.expected)
    files = ctx.output_files()
    result, unverified = _judge_facts.check_facts(prompt, ctx.output, files)
    if result is not None and (not result.passed or not unverified):
        return result
    if ctx.judge is None:
        return CheckResult(False, JUDGE_NOT_CONFIGURED, error_kind="judge")
    try:
        verdict = ctx.judge(prompt, ctx.output, files)
    except RemoteError as exc:
        # As in cog-safe-push: a judge that cannot answer fails the case, it does not pass it.
        return CheckResult(False, str(exc), error_kind="judge")
    return verdict if verdict.passed else replace(verdict, error_kind="judge")


# --- jq_query ---------------------------------------------------------------------


def _jq_error(exc: ValueError | str) -> str:
    """jq's message on one line: its ``jq: error`` lines without the source excerpt."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line.removeprefix("jq: error: ") for line in lines if line.startswith("jq: error")]
    return _short("; ".join(errors) if errors else " ".join(lines), 300).rstrip(":")


def _validate_jq(value: Any) -> None:
    _require_string("jq_query")(value)
    if len(value) > _jq_run.MAX_QUERY:
        raise ValueError(f"jq_query is {len(value)} characters long; at most "
                         f"{_jq_run.MAX_QUERY} are read")
    try:
        jq.compile(value)
    except ValueError as exc:
        raise ValueError(f"jq_query {value!r} does not compile: {_jq_error(exc)}") from None


def _jq_truthy(value: Any) -> bool:
    # The result counts as Python reads it, as in cog-safe-push: false, null, 0, 0.0,
    # "", [] and {} fail, so `.images` on an empty list, `.caption` on "" and
    # `.count` on 0 fail as a reader would expect.
    return bool(value)


def _check_jq(ctx: CheckContext) -> CheckResult:
    failed = _unexpected_status(ctx)
    if failed:
        return failed
    data = ctx.output
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            return CheckResult(False, f"output is not JSON: {_short(ctx.output)}")
    query = str(ctx.expected)
    # Only the first result counts, as in cog-safe-push, and the results after it are
    # never computed: `.items[] | .score > 0.5` passes on its first item even when a
    # later item would make jq fail.
    answer = _jq_run.run_query(query, data)
    if answer.error is not None:
        return CheckResult(False, f"jq {query!r} failed: {_jq_error(answer.error)}")
    if not answer.found:
        return CheckResult(False, f"jq {query!r} produced no result on {_short(data)}")
    value = answer.value
    if not _jq_truthy(value):
        return CheckResult(False, f"jq {query!r} gave {_short(value)} on {_short(data)}")
    return CheckResult(True, f"jq {query!r} gave {_short(value)}")


# --- error_contains ---------------------------------------------------------------


def _check_error_contains(ctx: CheckContext) -> CheckResult:
    wanted = str(ctx.expected)
    if ctx.status == "succeeded":
        return CheckResult(
            False,
            f"expected the prediction to fail with {_short(wanted)!r}, but it succeeded "
            f"with {_short(ctx.output)}",
        )
    if ctx.status != "failed":
        return CheckResult(
            False,
            f"expected the prediction to fail with {_short(wanted)!r}, but it was {ctx.status}",
        )
    error = ctx.error or ""
    if wanted not in error:
        return CheckResult(
            False, f"expected the error to contain {_short(wanted)!r}, got {_short(error, 500)!r}"
        )
    return CheckResult(True, f"failed as expected: {_short(error)}")


CHECKERS: tuple[Checker, ...] = (
    Checker(
        name="exact_string",
        check=_check_exact_string,
        validate=_validate_exact_string,
        description="The output is a string equal to the value exactly.",
    ),
    Checker(
        name="match_url",
        check=_check_match_url,
        validate=_validate_match_url,
        fetches_expected=True,
        description=(
            "The output file has the extension of the file at the URL, data URI or repo path; "
            "images must have its size and near-identical pixels."
        ),
    ),
    Checker(
        name="match_prompt",
        check=_check_match_prompt,
        validate=_require_string("match_prompt"),
        description=(
            "The output matches a description: file type, size and count are verified "
            "directly, the rest by the AI judge (majority of votes)."
        ),
    ),
    Checker(
        name="jq_query",
        check=_check_jq,
        validate=_validate_jq,
        description="A jq query on the JSON output gives a result not false, null, 0 or empty.",
    ),
    Checker(
        name="error_contains",
        check=_check_error_contains,
        validate=_require_string("error_contains"),
        expects_failure=True,
        description="The prediction fails with an error containing the text.",
    ),
)


@hookimpl
def cogfleet_register_checkers(register: Callable[[Checker], None]) -> None:
    """Register the five built-in checkers."""
    for checker in CHECKERS:
        register(checker)
