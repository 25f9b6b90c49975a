"""Tests for cogfleet.schema._compat: schema backwards compatibility and schema file loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cogfleet._errors import ConfigError
from cogfleet.schema._compat import check_compatibility, load_schema_file, resolve_refs

EXAMPLE = Path(__file__).parent / "fixtures" / "schema" / "example-openapi-schema.json"


def make_doc(
    props: dict[str, Any],
    required: list[str] | None = None,
    output: dict[str, Any] | None = None,
    enums: dict[str, dict[str, Any]] | None = None,
    training: tuple[dict[str, Any], list[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Cog-shaped OpenAPI document with the given Input properties."""
    schemas: dict[str, Any] = {
        "Input": {"title": "Input", "type": "object", "properties": props},
        "Output": output if output is not None else {"title": "Output", "type": "string"},
    }
    if required:
        schemas["Input"]["required"] = required
    for name, enum in (enums or {}).items():
        schemas[name] = {"title": name, "description": "An enumeration.", **enum}
    if training is not None:
        train_props, train_required, train_output = training
        schemas["TrainingInput"] = {
            "title": "TrainingInput",
            "type": "object",
            "properties": train_props,
            "required": train_required,
        }
        schemas["TrainingOutput"] = {"title": "Output", **train_output}
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.22.0"},
        "paths": {},
        "components": {"schemas": schemas},
    }


def choice(name: str, order: int = 0, default: Any = None) -> dict[str, Any]:
    prop: dict[str, Any] = {
        "allOf": [{"$ref": f"#/components/schemas/{name}"}],
        "x-order": order,
    }
    if default is not None:
        prop["default"] = default
    return prop


STEPS = {"type": "integer", "title": "Steps", "default": 20, "minimum": 1, "maximum": 50}
PROMPT = {"type": "string", "title": "Prompt"}


def breaks(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return check_compatibility(old, new)


# ------------------------------------------------------------------ whole documents


def test_example_document_is_compatible_with_itself() -> None:
    doc = json.loads(EXAMPLE.read_text())
    assert check_compatibility(doc, copy.deepcopy(doc)) == []


def test_example_document_with_lowered_maximum_breaks() -> None:
    old = json.loads(EXAMPLE.read_text())
    new = copy.deepcopy(old)
    new["components"]["schemas"]["Input"]["properties"]["steps"]["maximum"] = 4
    assert check_compatibility(old, new) == ["input 'steps': maximum lowered from 50 to 4"]


def test_example_document_with_removed_scheduler_choice_breaks() -> None:
    old = json.loads(EXAMPLE.read_text())
    new = copy.deepcopy(old)
    new["components"]["schemas"]["scheduler"]["enum"] = ["euler"]
    assert check_compatibility(old, new) == ['input \'scheduler\': choices removed: "ddim", "dpm"']


def test_missing_input_component_is_a_config_error() -> None:
    doc = make_doc({"prompt": PROMPT})
    with pytest.raises(
        ConfigError, match="new schema has neither components.schemas.Input nor TrainingInput"
    ):
        check_compatibility(doc, {"openapi": "3.0.2", "components": {"schemas": {}}})


def test_unresolvable_ref_is_a_config_error() -> None:
    doc = make_doc({"scheduler": choice("scheduler")})
    with pytest.raises(ConfigError, match="does not resolve"):
        check_compatibility(doc, doc)


# -------------------------------------------------------------------- breaking inputs


def test_removed_input_breaks() -> None:
    old = make_doc({"prompt": PROMPT, "steps": STEPS}, ["prompt"])
    new = make_doc({"prompt": PROMPT}, ["prompt"])
    assert breaks(old, new) == ["input 'steps': removed"]


def test_changed_type_breaks() -> None:
    old = make_doc({"steps": STEPS})
    new = make_doc({"steps": {**STEPS, "type": "number"}})
    assert breaks(old, new) == ["input 'steps': type changed from integer to number"]


def test_added_minimum_breaks() -> None:
    old = make_doc({"n": {"type": "integer", "default": 3}})
    new = make_doc({"n": {"type": "integer", "default": 3, "minimum": 1}})
    assert breaks(old, new) == ["input 'n': minimum added (1)"]


def test_raised_minimum_breaks() -> None:
    old = make_doc({"steps": STEPS})
    new = make_doc({"steps": {**STEPS, "minimum": 2}})
    assert breaks(old, new) == ["input 'steps': minimum raised from 1 to 2"]


def test_added_maximum_breaks() -> None:
    old = make_doc({"n": {"type": "number", "default": 3}})
    new = make_doc({"n": {"type": "number", "default": 3, "maximum": 10.5}})
    assert breaks(old, new) == ["input 'n': maximum added (10.5)"]


def test_lowered_maximum_breaks() -> None:
    old = make_doc({"steps": STEPS})
    new = make_doc({"steps": {**STEPS, "maximum": 4}})
    assert breaks(old, new) == ["input 'steps': maximum lowered from 50 to 4"]


def test_float_bounds_print_like_integers() -> None:
    old = make_doc({"steps": {**STEPS, "maximum": 50.0}})
    new = make_doc({"steps": {**STEPS, "maximum": 4.0}})
    assert breaks(old, new) == ["input 'steps': maximum lowered from 50 to 4"]


def test_added_and_raised_min_length_break() -> None:
    old = make_doc({"a": {"type": "string"}, "b": {"type": "string", "minLength": 1}})
    new = make_doc(
        {"a": {"type": "string", "minLength": 3}, "b": {"type": "string", "minLength": 5}}
    )
    assert breaks(old, new) == [
        "input 'a': minLength added (3)",
        "input 'b': minLength raised from 1 to 5",
    ]


def test_added_and_lowered_max_length_break() -> None:
    old = make_doc({"a": {"type": "string"}, "b": {"type": "string", "maxLength": 100}})
    new = make_doc(
        {"a": {"type": "string", "maxLength": 30}, "b": {"type": "string", "maxLength": 77}}
    )
    assert breaks(old, new) == [
        "input 'a': maxLength added (30)",
        "input 'b': maxLength lowered from 100 to 77",
    ]


def test_changed_format_breaks() -> None:
    old = make_doc({"image": {"type": "string", "format": "uri"}}, ["image"])
    new = make_doc({"image": {"type": "string"}}, ["image"])
    assert breaks(old, new) == ["input 'image': format changed from uri to none"]


def test_removed_choices_are_listed() -> None:
    old = make_doc(
        {"scheduler": choice("scheduler", default="euler")},
        enums={"scheduler": {"type": "string", "enum": ["euler", "ddim", "dpm"]}},
    )
    new = make_doc(
        {"scheduler": choice("scheduler", default="euler")},
        enums={"scheduler": {"type": "string", "enum": ["euler", "dpm"]}},
    )
    assert breaks(old, new) == ["input 'scheduler': choices removed: \"ddim\""]


def test_changed_choice_type_breaks() -> None:
    old = make_doc(
        {"size": choice("size", default="512")},
        enums={"size": {"type": "string", "enum": ["512", "1024"]}},
    )
    new = make_doc(
        {"size": choice("size", default=512)},
        enums={"size": {"type": "integer", "enum": [512, 1024]}},
    )
    assert breaks(old, new) == ["input 'size': choice type changed from string to integer"]


def test_free_input_restricted_to_choices_breaks() -> None:
    old = make_doc({"mode": {"type": "string", "default": "fast"}})
    new = make_doc(
        {"mode": choice("mode", default="fast")},
        enums={"mode": {"type": "string", "enum": ["fast", "slow"]}},
    )
    assert breaks(old, new) == ['input \'mode\': now restricted to choices "fast", "slow"']


def test_new_required_input_breaks() -> None:
    old = make_doc({"prompt": PROMPT}, ["prompt"])
    new = make_doc(
        {"prompt": PROMPT, "image": {"type": "string", "format": "uri"}}, ["prompt", "image"]
    )
    assert breaks(old, new) == ["input 'image': new required input"]


def test_optional_input_made_required_breaks() -> None:
    old = make_doc({"seed": {"type": "integer", "nullable": True}})
    new = make_doc({"seed": {"type": "integer"}}, ["seed"])
    assert breaks(old, new) == [
        "input 'seed': optional input made required",
        "input 'seed': no longer accepts null",
    ]


def test_array_item_type_change_breaks() -> None:
    old = make_doc({"tags": {"type": "array", "items": {"type": "string"}, "default": []}})
    new = make_doc({"tags": {"type": "array", "items": {"type": "integer"}, "default": []}})
    assert breaks(old, new) == ["input 'tags' items: type changed from string to integer"]


def test_list_input_becoming_single_value_breaks() -> None:
    old = make_doc({"tags": {"type": "array", "items": {"type": "string"}, "default": []}})
    new = make_doc({"tags": {"type": "string", "default": ""}})
    assert breaks(old, new) == ["input 'tags': type changed from array of string to string"]


def test_pattern_added_breaks() -> None:
    old = make_doc({"code": {"type": "string", "default": "ab"}})
    new = make_doc({"code": {"type": "string", "default": "ab", "pattern": "^[a-z]+$"}})
    assert breaks(old, new) == ["input 'code': pattern added (^[a-z]+$)"]


def test_pattern_changed_breaks() -> None:
    old = make_doc({"code": {"type": "string", "pattern": "^[a-z]+$"}})
    new = make_doc({"code": {"type": "string", "pattern": "^[a-f]+$"}})
    assert breaks(old, new) == ["input 'code': pattern changed from ^[a-z]+$ to ^[a-f]+$"]


def test_union_input_losing_a_variant_breaks() -> None:
    old = make_doc({"x": {"anyOf": [{"type": "string"}, {"type": "integer"}]}})
    new = make_doc({"x": {"anyOf": [{"type": "string"}]}})
    assert breaks(old, new) == ["input 'x': type changed from string | integer to string"]


def test_every_problem_is_reported_at_once() -> None:
    old = make_doc({"prompt": PROMPT, "steps": STEPS, "gone": {"type": "boolean"}}, ["prompt"])
    new = make_doc(
        {"prompt": {**PROMPT, "maxLength": 10}, "steps": {**STEPS, "minimum": 5}}, ["prompt"]
    )
    assert breaks(old, new) == [
        "input 'prompt': maxLength added (10)",
        "input 'steps': minimum raised from 1 to 5",
        "input 'gone': removed",
    ]


# ------------------------------------------------------------------ compatible inputs


def test_changed_default_description_title_and_order_are_compatible() -> None:
    old = make_doc({"steps": {**STEPS, "description": "Steps", "x-order": 0}})
    new = make_doc(
        {"steps": {**STEPS, "default": 4, "description": "How many", "title": "N", "x-order": 3}}
    )
    assert breaks(old, new) == []


def test_added_optional_inputs_are_compatible() -> None:
    old = make_doc({"prompt": PROMPT}, ["prompt"])
    new = make_doc(
        {
            "prompt": PROMPT,
            "steps": STEPS,
            "mask": {"type": "string", "format": "uri", "nullable": True},
        },
        ["prompt"],
    )
    assert breaks(old, new) == []


def test_added_choices_are_compatible() -> None:
    old = make_doc(
        {"scheduler": choice("scheduler", default="euler")},
        enums={"scheduler": {"type": "string", "enum": ["euler"]}},
    )
    new = make_doc(
        {"scheduler": choice("scheduler", default="euler")},
        enums={"scheduler": {"type": "string", "enum": ["euler", "ddim"]}},
    )
    assert breaks(old, new) == []


def test_choices_dropped_entirely_widen_the_input() -> None:
    old = make_doc(
        {"mode": choice("mode", default="fast")},
        enums={"mode": {"type": "string", "enum": ["fast", "slow"]}},
    )
    new = make_doc({"mode": {"type": "string", "default": "fast"}})
    assert breaks(old, new) == []


def test_widened_range_is_compatible() -> None:
    old = make_doc({"steps": STEPS, "s": {"type": "string", "minLength": 2, "maxLength": 9}})
    new = make_doc(
        {
            "steps": {**STEPS, "minimum": 0, "maximum": 100},
            "s": {"type": "string", "minLength": 1, "maxLength": 90},
        }
    )
    assert breaks(old, new) == []


def test_removed_bounds_are_compatible() -> None:
    old = make_doc({"steps": STEPS, "s": {"type": "string", "minLength": 2, "pattern": "^a"}})
    new = make_doc({"steps": {"type": "integer", "default": 20}, "s": {"type": "string"}})
    assert breaks(old, new) == []


def test_required_input_made_optional_is_compatible() -> None:
    old = make_doc({"prompt": PROMPT}, ["prompt"])
    new = make_doc({"prompt": {**PROMPT, "default": "a cat"}})
    assert breaks(old, new) == []


def test_union_input_gaining_a_variant_is_compatible() -> None:
    old = make_doc({"x": {"anyOf": [{"type": "string"}]}})
    new = make_doc({"x": {"anyOf": [{"type": "string"}, {"type": "integer"}]}})
    assert breaks(old, new) == []


def test_enum_component_renamed_with_same_values_is_compatible() -> None:
    old = make_doc(
        {"mode": choice("mode", default="a")},
        enums={"mode": {"type": "string", "enum": ["a", "b"]}},
    )
    new = make_doc(
        {"mode": choice("Mode2", default="a")},
        enums={"Mode2": {"type": "string", "enum": ["b", "a"]}},
    )
    assert breaks(old, new) == []


# --------------------------------------------------------------------------- outputs


def out(schema: dict[str, Any]) -> dict[str, Any]:
    return make_doc({"prompt": PROMPT}, ["prompt"], output={"title": "Output", **schema})


STR_LIST = {"type": "array", "items": {"type": "string"}}
FILE = {"type": "string", "format": "uri"}


def test_output_single_to_list_breaks() -> None:
    assert breaks(out(FILE), out({"type": "array", "items": FILE})) == [
        "Output: type changed from string (uri) to array of string (uri)"
    ]


def test_output_item_type_change_breaks() -> None:
    old = out({"type": "array", "items": FILE})
    new = out(STR_LIST)
    assert breaks(old, new) == ["Output items: format changed from uri to none"]


def test_output_list_and_iterator_are_compatible() -> None:
    iterator = {**STR_LIST, "x-cog-array-type": "iterator"}
    concatenate = {**iterator, "x-cog-array-display": "concatenate"}
    assert breaks(out(STR_LIST), out(iterator)) == []
    assert breaks(out(iterator), out(STR_LIST)) == []
    assert breaks(out(iterator), out(concatenate)) == []


def test_output_object_field_removed_or_retyped_breaks() -> None:
    old = out(
        {
            "type": "object",
            "properties": {
                "image": {**FILE, "title": "Image"},
                "caption": {"type": "string", "title": "Caption"},
                "score": {"type": "number", "title": "Score"},
            },
            "required": ["image", "caption", "score"],
        }
    )
    new = out(
        {
            "type": "object",
            "properties": {
                "image": {**FILE, "title": "Image"},
                "score": {"type": "string", "title": "Score"},
                "extra": {"type": "integer", "title": "Extra"},
            },
            "required": ["image", "score"],
        }
    )
    assert breaks(old, new) == [
        "Output.caption: removed",
        "Output.score: type changed from number to string",
    ]


def test_output_object_field_made_optional_or_nullable_breaks() -> None:
    old = out({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})
    new = out({"type": "object", "properties": {"a": {"type": "string", "nullable": True}}})
    assert breaks(old, new) == ["Output.a: no longer always present", "Output.a: may now be null"]


def test_output_object_field_added_is_compatible() -> None:
    old = out({"type": "object", "properties": {"a": {"type": "string"}}})
    new = out({"type": "object", "properties": {"a": {"type": "string"}, "b": FILE}})
    assert breaks(old, new) == []


def test_output_dict_value_type_change_breaks() -> None:
    old = out({"type": "object", "additionalProperties": {"type": "number"}})
    new = out({"type": "object", "additionalProperties": {"type": "string"}})
    assert breaks(old, new) == ["Output values: type changed from number to string"]


def test_output_title_change_is_compatible() -> None:
    assert breaks(out({"type": "string"}), out({"type": "string", "title": "Result"})) == []


# -------------------------------------------------------------------------- training


TRAIN_OUT = {"type": "object", "properties": {"weights": FILE}, "required": ["weights"]}


def trained(props: dict[str, Any], required: list[str], output: dict[str, Any]) -> dict:
    return make_doc({"prompt": PROMPT}, ["prompt"], training=(props, required, output))


def test_training_removed_breaks() -> None:
    old = trained({"epochs": {"type": "integer", "default": 1}}, [], TRAIN_OUT)
    new = make_doc({"prompt": PROMPT}, ["prompt"])
    assert breaks(old, new) == ["TrainingInput: removed (the new version cannot be trained)"]


def test_training_added_is_compatible() -> None:
    old = make_doc({"prompt": PROMPT}, ["prompt"])
    new = trained({"epochs": {"type": "integer", "default": 1}}, [], TRAIN_OUT)
    assert breaks(old, new) == []


def test_training_input_and_output_changes_break() -> None:
    old = trained(
        {"epochs": {"type": "integer", "default": 1, "maximum": 100}, "lr": {"type": "number"}},
        [],
        TRAIN_OUT,
    )
    new = trained(
        {"epochs": {"type": "integer", "default": 1, "maximum": 10}, "data": FILE},
        ["data"],
        {"type": "object", "properties": {}},
    )
    assert breaks(old, new) == [
        "TrainingInput.epochs: maximum lowered from 100 to 10",
        "TrainingInput.lr: removed",
        "TrainingInput.data: new required input",
        "TrainingOutput.weights: removed",
    ]


# ------------------------------------------------------------------------ resolve_refs


def test_resolve_refs_inlines_choice_enum_and_keeps_input_description() -> None:
    doc = json.loads(EXAMPLE.read_text())
    prop = doc["components"]["schemas"]["Input"]["properties"]["scheduler"]
    assert resolve_refs(prop, doc) == {
        "type": "string",
        "enum": ["euler", "ddim", "dpm"],
        "default": "euler",
        "description": "Scheduler",
        "x-order": 4,
    }


def test_resolve_refs_cuts_cycles() -> None:
    doc = make_doc({})
    doc["components"]["schemas"]["Node"] = {
        "type": "object",
        "properties": {"child": {"$ref": "#/components/schemas/Node"}},
    }
    resolved = resolve_refs({"$ref": "#/components/schemas/Node"}, doc)
    assert resolved == {
        "type": "object",
        "properties": {"child": {"type": "object"}},
    }


# -------------------------------------------------------------------- load_schema_file


def test_load_schema_file_reads_an_openapi_document(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(EXAMPLE.read_text())
    assert load_schema_file(path) == json.loads(EXAMPLE.read_text())


def test_load_schema_file_accepts_a_version_object(tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE.read_text())
    path = tmp_path / "version.json"
    path.write_text(json.dumps({"id": "abc", "cog_version": "0.22.0", "openapi_schema": doc}))
    assert load_schema_file(path) == doc


def test_load_schema_file_accepts_a_model_object(tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE.read_text())
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"owner": "acme", "latest_version": {"openapi_schema": doc}}))
    assert load_schema_file(path) == doc


def test_load_schema_file_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as info:
        load_schema_file(path)
    assert str(info.value) == f"{path}: cannot read schema file: No such file or directory"


def test_load_schema_file_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "openapi": "3.0.2",\n  oops\n}\n')
    with pytest.raises(ConfigError) as info:
        load_schema_file(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: not valid JSON: ")


def test_load_schema_file_rejects_a_non_cog_document(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"openapi": "3.0.2", "components": {"schemas": {}}}))
    with pytest.raises(ConfigError, match="has neither Input nor TrainingInput"):
        load_schema_file(path)


def test_load_schema_file_rejects_a_json_array(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_schema_file(path)


def test_load_schema_file_rejects_a_version_without_schema(tmp_path: Path) -> None:
    path = tmp_path / "version.json"
    path.write_text(json.dumps({"id": "abc", "openapi_schema": None}))
    with pytest.raises(ConfigError, match="openapi_schema is empty"):
        load_schema_file(path)


def test_load_schema_file_rejects_a_broken_ref(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(make_doc({"mode": choice("mode")})))
    with pytest.raises(ConfigError) as info:
        load_schema_file(path)
    assert str(info.value) == (f"{path}: schema: $ref '#/components/schemas/mode' does not resolve")


# ------------------------------------------------- schemas generated from real predictors


PREDICTOR = """
from typing import Iterator, Optional

from cog import BasePredictor, Input, Path


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="Prompt"),
        steps: int = Input(default=2, ge=1, le={le}),
        scheduler: str = Input(default="euler", choices={choices}),
        {extra}
    ) -> {output}:  # only the schema is generated; never run
        ...
"""


def generated(tmp_path: Path, name: str, **parts: str) -> dict[str, Any]:
    from cogfleet.schema import generate_schema

    build = tmp_path / name
    build.mkdir()
    values = {"le": "50", "choices": '["euler", "ddim", "dpm"]', "extra": "", "output": "str"}
    values.update(parts)
    (build / "predict.py").write_text(PREDICTOR.format(**values))
    (build / "cog.yaml").write_text(
        'build:\n  python_version: "3.11"\nrun: "predict.py:Predictor"\n'
    )
    return generate_schema(build)


def test_generated_schemas_compare_as_expected(tmp_path: Path) -> None:
    old = generated(tmp_path, "old")
    same = generated(tmp_path, "same", extra="seed: Optional[int] = Input(default=None),")
    assert check_compatibility(old, same) == []
    new = generated(
        tmp_path,
        "new",
        le="4",
        choices='["euler", "dpm"]',
        extra="image: Path = Input(description='Image'),",
        output="Iterator[Path]",
    )
    assert check_compatibility(old, new) == [
        "input 'steps': maximum lowered from 50 to 4",
        "input 'scheduler': choices removed: \"ddim\"",
        "input 'image': new required input",
        "Output: type changed from string to array of string (uri)",
    ]


# --------------------------------------------------------------------------- train-only documents

CORPUS = Path(__file__).parent / "fixtures" / "schema" / "corpus"


def test_train_only_documents_are_compared(tmp_path: Path) -> None:
    old = json.loads((CORPUS / "train_function" / "openapi.json").read_text())
    assert "Input" not in old["components"]["schemas"]
    assert check_compatibility(old, old) == []
    new = copy.deepcopy(old)
    props = new["components"]["schemas"]["TrainingInput"]["properties"]
    props["steps"]["maximum"] = 100
    del props["trigger_word"]
    assert check_compatibility(old, new) == [
        "TrainingInput.steps: maximum lowered from 6000 to 100",
        "TrainingInput.trigger_word: removed",
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(old))
    assert load_schema_file(path) == old


def test_predict_and_train_parts_whichever_exist() -> None:
    both = json.loads((CORPUS / "predict_and_train" / "openapi.json").read_text())
    predict_only = copy.deepcopy(both)
    train_only = copy.deepcopy(both)
    for key in ("TrainingInput", "TrainingOutput"):
        del predict_only["components"]["schemas"][key]
    for key in ("Input", "Output"):
        del train_only["components"]["schemas"][key]
    assert check_compatibility(both, train_only) == [
        "Input: removed (the new version cannot run predictions)"
    ]
    assert check_compatibility(both, predict_only) == [
        "TrainingInput: removed (the new version cannot be trained)"
    ]
    # Gaining a part is not a break; both parts are compared when both exist.
    assert check_compatibility(train_only, both) == []
    assert check_compatibility(predict_only, both) == []
    changed = copy.deepcopy(both)
    changed["components"]["schemas"]["Input"]["properties"]["lora_scale"]["maximum"] = 1
    changed["components"]["schemas"]["TrainingInput"]["properties"]["steps"]["minimum"] = 5
    assert check_compatibility(both, changed) == [
        "input 'lora_scale': maximum lowered from 2 to 1",
        "TrainingInput.steps: minimum raised from 1 to 5",
    ]


def test_schema_diff_command_on_train_only_documents(cli: Any, tmp_path: Path) -> None:
    from cogfleet._errors import ExitCode

    old_doc = json.loads((CORPUS / "train_function" / "openapi.json").read_text())
    new_doc = copy.deepcopy(old_doc)
    new_doc["components"]["schemas"]["TrainingInput"]["required"].append("steps")
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(old_doc))
    new.write_text(json.dumps(new_doc))
    same = cli("schema-diff", str(old), str(old), cwd=tmp_path)
    assert same.code == ExitCode.OK and same.out.strip() == "compatible"
    broken = cli("schema-diff", str(old), str(new), cwd=tmp_path)
    assert broken.code == ExitCode.CHECKS_FAILED
    assert broken.out.strip() == "TrainingInput.steps: optional input made required"
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"openapi": "3.0.2", "components": {"schemas": {}}}))
    error = cli("schema-diff", str(other), str(new), cwd=tmp_path)
    assert error.code == ExitCode.USAGE_ERROR
    assert error.err.strip() == (
        f"error: {other}: not a Cog OpenAPI document: components.schemas has neither Input "
        "nor TrainingInput"
    )


# ------------------------------------------------- behaviours found by mutation testing
# (`nox -s mutants`: each test fails on a small deliberate bug that every other test let
# through)


def inp(schema: dict[str, Any]) -> dict[str, Any]:
    return make_doc({"x": schema})


def test_a_component_that_is_not_an_object_is_absent() -> None:
    old = make_doc({"prompt": PROMPT})
    new = copy.deepcopy(old)
    new["components"]["schemas"]["Input"] = "Input"
    with pytest.raises(ConfigError) as caught:
        check_compatibility(old, new)
    assert caught.value.message == (
        "new schema has neither components.schemas.Input nor TrainingInput"
    )
    with pytest.raises(ConfigError) as caught:
        check_compatibility(new, old)
    assert caught.value.message.startswith("old schema has neither")


def test_a_ref_outside_the_components_is_unsupported() -> None:
    doc = make_doc({"x": {"$ref": "#/definitions/X"}})
    doc["components"]["schemas"]["/definitions/X"] = {"type": "string"}
    with pytest.raises(ConfigError) as caught:
        check_compatibility(doc, doc)
    assert caught.value.message == (
        "schema: unsupported $ref '#/definitions/X' (only #/components/schemas/<name>)"
    )


def test_refs_inside_lists_and_beside_a_ref_are_resolved() -> None:
    doc = make_doc({})
    schemas = doc["components"]["schemas"]
    schemas["Color"] = {"type": "string", "enum": ["red", "blue"]}
    schemas["Size"] = {"type": "integer", "minimum": 1}
    node = {
        "anyOf": [{"$ref": "#/components/schemas/Color"}, {"type": "null"}],
        "items": {"$ref": "#/components/schemas/Size", "maximum": 8,
                  "examples": [{"$ref": "#/components/schemas/Color"}]},
    }
    assert resolve_refs(node, doc) == {
        "anyOf": [{"type": "string", "enum": ["red", "blue"]}, {"type": "null"}],
        "items": {"type": "integer", "minimum": 1, "maximum": 8,
                  "examples": [{"type": "string", "enum": ["red", "blue"]}]},
    }


def test_an_output_behind_a_ref_is_compared() -> None:
    def doc(fields: dict[str, Any]) -> dict[str, Any]:
        d = make_doc({"prompt": PROMPT}, output={"$ref": "#/components/schemas/Result"})
        d["components"]["schemas"]["Result"] = {
            "type": "object", "properties": fields, "required": list(fields)}
        return d

    old = doc({"image": FILE, "seed": {"type": "integer"}})
    assert breaks(old, doc({"image": FILE})) == ["Output.seed: removed"]
    assert breaks(old, copy.deepcopy(old)) == []


def test_every_removed_input_is_listed_and_the_rest_still_compared() -> None:
    old = make_doc({"a": PROMPT, "b": PROMPT, "steps": STEPS})
    new = make_doc({"steps": {**STEPS, "maximum": 10}})
    assert breaks(old, new) == [
        "input 'a': removed",
        "input 'b': removed",
        "input 'steps': maximum lowered from 50 to 10",
    ]


def test_type_descriptions_name_any_and_a_bare_array() -> None:
    assert breaks(out({}), out({"type": "string"})) == [
        "Output: type changed from any to string"
    ]
    assert breaks(out({"type": "array"}), out({"type": "string"})) == [
        "Output: type changed from array to string"
    ]


def test_a_union_on_one_side_only() -> None:
    union = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    nullable = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    # an input that now also accepts integers, an output that is no longer null
    assert breaks(inp({"type": "string"}), inp(union)) == []
    assert breaks(out(nullable), out({"type": "string"})) == []
    # and the other way round: both break
    assert breaks(inp(union), inp({"type": "string"})) == [
        "input 'x': type changed from string | integer to string"
    ]
    assert breaks(out({"type": "string"}), out(nullable)) == [
        "Output: type changed from string to string | null"
    ]


def test_a_choice_on_either_side_of_a_type_change_is_named() -> None:
    choices = {"type": "string", "enum": ["a", "b"]}
    assert breaks(inp(choices), inp({"type": "integer"})) == [
        "input 'x': choice type changed from string to integer"
    ]
    assert breaks(inp({"type": "integer"}), inp(choices)) == [
        "input 'x': choice type changed from integer to string"
    ]


def test_a_format_added_or_dropped_names_none() -> None:
    assert breaks(inp({"type": "string"}), inp(FILE)) == [
        "input 'x': format changed from none to uri"
    ]
    assert breaks(inp(FILE), inp({"type": "string"})) == [
        "input 'x': format changed from uri to none"
    ]


def test_items_compared_only_when_both_sides_describe_them() -> None:
    assert breaks(out(STR_LIST), out({"type": "array"})) == []
    assert breaks(out({"type": "array"}), out(STR_LIST)) == []


def test_input_items_keep_the_input_direction() -> None:
    old = inp({"type": "array", "items": {"type": "integer", "maximum": 10}})
    new = inp({"type": "array", "items": {"type": "integer", "maximum": 5}})
    assert breaks(old, new) == ["input 'x' items: maximum lowered from 10 to 5"]
    assert breaks(new, old) == []


def test_unchanged_length_bounds_are_compatible() -> None:
    bounded = {"type": "string", "minLength": 2, "maxLength": 9}
    assert breaks(inp(bounded), inp(dict(bounded))) == []
    listed = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4}
    assert breaks(inp(listed), inp(dict(listed))) == []


def test_the_tightest_of_two_number_bounds_counts() -> None:
    # JSON Schema allows both: `maximum: 10, exclusiveMaximum: 5` means below 5
    both = {"type": "number", "maximum": 10, "exclusiveMaximum": 5}
    assert breaks(inp({"type": "number", "maximum": 5}), inp(both)) == [
        "input 'x': 5 is now excluded (exclusiveMaximum)"
    ]
    low = {"type": "number", "minimum": -10, "exclusiveMinimum": -5}
    assert breaks(inp({"type": "number", "minimum": -5}), inp(low)) == [
        "input 'x': -5 is now excluded (exclusiveMinimum)"
    ]


def test_an_added_exclusive_bound_is_named_as_such() -> None:
    assert breaks(inp({"type": "number"}), inp({"type": "number", "exclusiveMinimum": 0})) == [
        "input 'x': exclusiveMinimum added (0)"
    ]
    assert breaks(
        inp({"type": "number", "exclusiveMaximum": 9}), inp({"type": "number", "maximum": 3})
    ) == ["input 'x': maximum lowered from 9 to 3"]


def test_an_output_nullable_before_and_after_is_compatible() -> None:
    nullable = {"type": "string", "nullable": True}
    assert breaks(out(nullable), out(dict(nullable))) == []
    assert breaks(out({"type": "string"}), out(nullable)) == ["Output: may now be null"]


def test_an_output_object_losing_its_properties_loses_every_field() -> None:
    old = out({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})
    assert breaks(old, out({"type": "object"})) == ["Output.a: removed"]


def test_a_field_or_value_schema_that_is_not_an_object_is_not_compared() -> None:
    old = out({"type": "object", "properties": {"a": {"type": "string"}},
               "additionalProperties": {"type": "string"}})
    new = out({"type": "object", "properties": {"a": True}, "additionalProperties": True})
    assert breaks(old, new) == []
