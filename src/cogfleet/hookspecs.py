"""The contract between cogfleet and its plugins: every hook, grouped by phase.

Phases run in this order: discover -> configure -> render -> lint -> push -> check
-> promote -> report. Hooks are called with keyword arguments. A plugin implements
any subset of them with ``from cogfleet import hookimpl``.

Collection hooks take a ``register`` callback and return nothing; decision hooks are
``firstresult`` (the first non-``None`` answer wins); the rest collect a list of the
answers of every plugin. An implementation is a plain function: an ``async def`` or a
generator (without ``wrapper=True``) is an error when the plugin loads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogfleet import hookspec

if TYPE_CHECKING:  # annotations only: loading the plugin manager stays light
    from cogfleet._checks import Checker, Judge
    from cogfleet._repo import Variant
    from cogfleet._result import RunResult
    from cogfleet._steps import ProgressEvent, PushContext, Step
    from cogfleet.runtime import CogPin


# --- configure -------------------------------------------------------------------


@hookspec
def cogfleet_register_checkers(register: Callable[[Checker], None]) -> None:
    """Register test-case checkers.

    Call ``register(Checker(name=..., check=...))`` once per checker. The checker's
    name is the key a test case uses (``exact_string``, ``image_size``...). Two plugins
    registering the same name is an error naming both. Returns nothing.
    """


# --- render ----------------------------------------------------------------------


@hookspec
def cogfleet_template_variables(variant: Variant) -> dict[str, Any] | None:
    """Return extra Jinja variables for rendering ``variant``'s templates.

    Answers of all plugins are merged (later plugins win); the variant's own variables
    from ``variants.yaml`` win over every plugin. Return ``None`` to add nothing.
    """


@hookspec
def cogfleet_template_filters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register Jinja filters: ``register("slug", func)``. Returns nothing."""


# --- lint ------------------------------------------------------------------------


class LintWarning(str):
    """A lint answer that is shown, with the variant's name, but fails nothing.

    ``cogfleet_lint`` answers are strings; ``LintWarning("predict.py:3: ...")`` marks
    one as a warning (``from cogfleet import LintWarning``).
    """

    __slots__ = ()


@hookspec
def cogfleet_lint(variant: Variant, build_dir: Path, cog_pin: CogPin) -> list[str] | None:
    """Lint the rendered build folder of ``variant``, which builds with Cog ``cog_pin``.

    ``cog_pin`` is the variant's pinned Cog version (``cog_pin.version``) and where the
    pin is written (``cog_pin.describe()``). Return a list of problems, each one line
    that names the file (``predict.py:3: F401 unused import``), or ``None``/``[]``
    when clean. The answers of every plugin are collected; any problem fails the lint
    step, except a :class:`LintWarning`, which is shown and fails nothing.
    """


# --- push / check / promote ---------------------------------------------------------


@hookspec
def cogfleet_register_steps(register: Callable[[Step], None]) -> None:
    """Register safe-push pipeline steps: ``register(Step(name=..., phase=..., run=...))``.

    The core runs ``lint`` and ``push-test`` itself, then the registered steps by
    phase: ``gate`` steps one after another (schema lint, schema compatibility),
    ``check`` steps concurrently (output comparison, test cases, fuzzing, training),
    then ``promote`` and ``release`` steps (deployment, official model) one after
    another, only if every earlier step passed and the run may write to the model.
    ``Step.run`` is ``async def run(ctx: PushContext) -> StepOutcome``; raising
    :class:`cogfleet.CheckFailed` fails the step with its message. ``Step.prefetch``
    (optional) is called when the run starts and returns an awaitable (or ``None``):
    a look-up the step will need, which then runs while the earlier steps work; the
    step finds it in ``ctx.prefetched[name]``. A step the pipeline cannot run (a phase
    it does not have, a ``run`` that is not callable, the name ``lint`` or ``push-test``
    of the steps the core runs itself, a name another plugin registers) is an error at
    start-up naming the plugin. Returns nothing.
    """


@hookspec
def cogfleet_schema_lint(schema: dict[str, Any], kind: str) -> list[str] | None:
    """Lint the test version's OpenAPI ``schema``.

    ``kind`` is ``"predict"`` or ``"train"``. Return one line per problem (naming the
    input), or ``None``/``[]``. Every plugin's answer is collected; any problem fails
    the ``schema-lint`` step. Before the push it is also called on the schema cogfleet
    derives from the source (when it can), so that an implementation that raises or
    answers no list of str stops the run before anything is pushed (exit 2); only its
    answer on the pushed version's schema decides the step.
    """


@hookspec(firstresult=True)
def cogfleet_judge(ctx: PushContext) -> Judge | None:
    """Return the AI judge for ``match_prompt`` and seedless output comparison.

    ``firstresult``: the first non-``None`` answer wins; the built-in Anthropic judge
    is ``trylast`` and answers only when ``ANTHROPIC_API_KEY`` is set. Return ``None``
    to leave the choice to other plugins. Called once per variant, before the push: an
    implementation that raises stops the run there (exit 2 naming it).
    """


@hookspec(firstresult=True)
def cogfleet_fuzz_inputs(
    ctx: PushContext,
    schema: dict[str, Any],
    kind: str,
    count: int,
    fixed_inputs: dict[str, Any],
    disabled_inputs: list[str],
    prompt: str | None,
) -> list[dict[str, Any]] | None:
    """Propose ``count`` fuzz inputs for the ``kind`` (``predict``/``train``) schema.

    ``fixed_inputs`` must appear unchanged in every input (file inputs among them are
    already uploaded URLs), ``disabled_inputs`` never; ``prompt`` is the config's
    ``fuzz.prompt`` guidance for AI proposers.

    ``firstresult``: the first non-``None`` list wins. The built-in generator is
    ``trylast`` (boundaries first, then seeded random values); the AI proposer answers
    when an API key is set. Whatever is returned is validated against the schema
    before any prediction is spent; invalid inputs are dropped and reported. Called
    before the push on the schema cogfleet derives from the source (when it can, and
    when no ``fixed_inputs`` value is a repository file still to upload), so that an
    implementation that raises or answers no list of input mappings stops the run
    before anything is pushed (exit 2); that answer is used when the pushed version's
    schema is the same, else the hook is asked again.
    """


@hookspec
def cogfleet_progress(event: ProgressEvent) -> None:
    """Observe live progress: steps starting and ending, cases planned and done.

    ``event.kind`` is one of ``run-start``, ``step-start``, ``step-done``,
    ``cases-planned``, ``case-done``, ``run-done``; ``event.result`` is the variant's
    :class:`~cogfleet._result.RunResult` so far. Called for every plugin; returns
    nothing. Must be quick: it runs on the event loop. An implementation that raises
    never breaks off a step: the run stops at its next step (before promotion, if that
    has not begun; promotion under way finishes) and ends with exit 2 naming it.
    """


# --- report ----------------------------------------------------------------------


@hookspec
def cogfleet_report(results: list[RunResult], options: dict[str, Any]) -> None:
    """Write reports of finished runs.

    ``results`` holds one :class:`~cogfleet._result.RunResult` per variant.
    ``options`` holds the command's report options: ``report_json`` and
    ``junit_xml`` (paths or ``None``), ``markdown`` (path or ``None``; the
    ``$GITHUB_STEP_SUMMARY`` file when set), ``html`` (path or ``None``: the
    self-contained HTML page). Every implementation is called; returns nothing.
    Reports are written after the run, when a model may already be promoted: an
    implementation that raises does not stop the others; the command then ends with
    exit 2 and a last line naming the plugin and saying each variant's verdict and
    whether its model was promoted.
    """
