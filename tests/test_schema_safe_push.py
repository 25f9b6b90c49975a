"""Schema lint and backwards compatibility as a safe push applies them, on concrete
documents: the parts of the model the config tests (as cog-safe-push: ``predict``,
``train`` or both), and what counts as a description."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cogfleet._config import SafePushConfig
from cogfleet._errors import CheckFailed
from cogfleet._plugins import Plugins
from cogfleet._predict import FileCache
from cogfleet._result import RunResult
from cogfleet._steps import PushContext, PushOptions, StepOutcome
from cogfleet.builtins.schema import schema_compat, schema_lint


def doc(inputs: dict[str, Any], training: dict[str, Any] | None = None) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Input": {"type": "object", "title": "Input", "properties": inputs},
        "Output": {"type": "string", "title": "Output"},
    }
    if training is not None:
        schemas["TrainingInput"] = {"type": "object", "title": "TrainingInput",
                                    "properties": training}
        schemas["TrainingOutput"] = {"type": "object", "title": "TrainingOutput",
                                     "properties": {"weights": {"type": "string"}}}
    return {"openapi": "3.0.2", "components": {"schemas": schemas}}


def context(tmp_path: Path, sections: dict[str, Any], test: dict[str, Any],
            live: dict[str, Any] | None = None) -> PushContext:
    config = SafePushConfig(model="acme/m", **sections)
    return PushContext(
        name="m", config=config, build_dir=tmp_path, repo_root=None,
        target=None,  # type: ignore[arg-type]
        plugins=Plugins(), options=PushOptions(),
        result=RunResult(variant="m", model="acme/m", test_model="acme/m-test", target="local"),
        predictions=None,  # type: ignore[arg-type]
        files=FileCache(None),
        test_version={"id": "t" * 32, "openapi_schema": test},
        live_version=None if live is None else {"id": "l" * 32, "openapi_schema": live},
    )


def verdict(step: Any, ctx: PushContext) -> str:
    try:
        outcome: StepOutcome = asyncio.run(step(ctx))
    except CheckFailed as exc:
        return f"failed: {exc}"
    return f"{outcome.status}: {outcome.message}"


DESCRIBED = {"prompt": {"type": "string", "description": "Prompt"}}
UNDESCRIBED_TRAINING = {"epochs": {"type": "integer", "default": 1}}


@pytest.mark.parametrize(("sections", "expected"), [
    ({"predict": {}}, "passed: predict schema clean"),
    ({}, "passed: predict schema clean"),
    ({"train": {}}, "failed: TrainingInput.epochs: no description"),
    ({"predict": {}, "train": {}}, "failed: TrainingInput.epochs: no description"),
])
def test_schema_lint_looks_at_the_parts_the_config_tests(tmp_path, sections, expected):
    # a trainer's inputs without descriptions fail only when the config tests training
    ctx = context(tmp_path, sections, doc(DESCRIBED, training=UNDESCRIBED_TRAINING))
    assert verdict(schema_lint, ctx) == expected


def test_schema_lint_train_section_without_a_trainer(tmp_path):
    ctx = context(tmp_path, {"train": {}}, doc(DESCRIBED))
    assert verdict(schema_lint, ctx) == (
        "failed: TrainingInput: missing (the config has a train section)")


@pytest.mark.parametrize(("prop", "expected"), [
    ({"type": "integer", "default": 25, "deprecated": True}, "passed: predict schema clean"),
    ({"type": "integer", "default": 25, "description": " "}, "passed: predict schema clean"),
    ({"type": "integer", "default": 25, "description": ""}, "failed: Input.steps: no description"),
    ({"type": "integer", "default": 25}, "failed: Input.steps: no description"),
])
def test_schema_lint_description_rule(tmp_path, prop, expected):
    ctx = context(tmp_path, {"predict": {}}, doc({**DESCRIBED, "steps": prop}))
    assert verdict(schema_lint, ctx) == expected


def test_schema_compat_compares_the_parts_the_config_tests(tmp_path):
    live = doc(DESCRIBED, training={"epochs": {"type": "integer", "default": 1}})
    test = doc(DESCRIBED, training={"epochs": {"type": "string", "default": "1"}})
    predict_only = context(tmp_path, {"predict": {}}, test, live)
    assert verdict(schema_compat, predict_only).startswith("passed: compatible with acme/m")
    with_train = context(tmp_path, {"predict": {}, "train": {}}, test, live)
    assert verdict(schema_compat, with_train) == (
        f"failed: not backwards compatible with acme/m:{'l' * 12}: "
        "TrainingInput.epochs: type changed from integer to string")
    # a trainer removed while the config tests training
    dropped = context(tmp_path, {"train": {}}, doc(DESCRIBED), live)
    assert "TrainingInput: removed" in verdict(schema_compat, dropped)


@pytest.mark.parametrize(("new_input", "required", "expected"), [
    # no default and not nullable: required as cog-safe-push reads it (Cog <= 0.16 writes
    # `str = Input(default=None)` this way; Cog 0.19 on lists it as required)
    ({"type": "string"}, [],
     ["input 'style': new input without a default (give it one, or make it Optional)"]),
    ({"type": "string"}, ["style"], ["input 'style': new required input"]),
    # Optional[str] = Input(default=None): nullable under Cog <= 0.16, a null default later
    ({"type": "string", "nullable": True}, [], []),
    ({"type": "string", "default": None, "nullable": True}, [], []),
    ({"type": "integer", "default": 3}, [], []),
])
def test_a_new_input_breaks_clients_when_it_has_no_default(new_input, required, expected):
    from cogfleet.schema import check_compatibility

    old = doc(DESCRIBED)
    new = doc({**DESCRIBED, "style": new_input})
    if required:
        new["components"]["schemas"]["Input"]["required"] = required
    assert check_compatibility(old, new) == expected
