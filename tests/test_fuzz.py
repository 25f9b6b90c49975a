"""Tests for cogfleet.schema._fuzz: fuzz inputs that always respect the version's schema."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from cogfleet._errors import ConfigError
from cogfleet.schema._fuzz import (
    fuzz_prompt,
    generate_inputs,
    input_properties,
    parse_ai_batch,
    required_only_inputs,
    validate_inputs,
)

EXAMPLE = Path(__file__).parent / "fixtures" / "schema" / "example-openapi-schema.json"


def make_doc(
    props: dict[str, Any],
    required: list[str] | None = None,
    enums: dict[str, dict[str, Any]] | None = None,
    training: tuple[dict[str, Any], list[str]] | None = None,
) -> dict[str, Any]:
    """A Cog-shaped OpenAPI document with the given Input properties."""
    schemas: dict[str, Any] = {
        "Input": {"title": "Input", "type": "object", "properties": props},
        "Output": {"title": "Output", "type": "string"},
    }
    if required:
        schemas["Input"]["required"] = required
    for name, enum in (enums or {}).items():
        schemas[name] = {"title": name, "description": "An enumeration.", **enum}
    if training is not None:
        schemas["TrainingInput"] = {
            "title": "TrainingInput",
            "type": "object",
            "properties": training[0],
            "required": training[1],
        }
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.22.0"},
        "paths": {},
        "components": {"schemas": schemas},
    }


def demo_doc() -> dict[str, Any]:
    """Like a typical image model: prompt, choices, int/float ranges, bool, seed, image."""
    return make_doc(
        {
            "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
            "aspect_ratio": {
                "allOf": [{"$ref": "#/components/schemas/aspect_ratio"}],
                "default": "1:1",
                "x-order": 1,
            },
            "num_outputs": {
                "type": "integer",
                "default": 1,
                "minimum": 1,
                "maximum": 4,
                "title": "Num Outputs",
                "x-order": 2,
            },
            "guidance": {
                "type": "number",
                "default": 3.5,
                "minimum": 0,
                "maximum": 10,
                "title": "Guidance",
                "x-order": 3,
            },
            "go_fast": {"type": "boolean", "default": True, "title": "Go Fast", "x-order": 4},
            "seed": {"type": "integer", "nullable": True, "title": "Seed", "x-order": 5},
            "image": {
                "type": "string",
                "format": "uri",
                "nullable": True,
                "default": None,
                "title": "Image",
                "x-order": 6,
            },
            "megapixels": {
                "allOf": [{"$ref": "#/components/schemas/megapixels"}],
                "default": 1,
                "x-order": 7,
            },
        },
        required=["prompt"],
        enums={
            "aspect_ratio": {"type": "string", "enum": ["1:1", "16:9", "9:16"]},
            "megapixels": {"type": "integer", "enum": [1, 4]},
        },
    )


def edge_doc() -> dict[str, Any]:
    """Less common constraints: lengths, exclusive bounds, unions, arrays, float bounds."""
    return make_doc(
        {
            "code": {"type": "string", "minLength": 3, "maxLength": 8, "x-order": 0},
            "ratio": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "exclusiveMinimum": True,
                "exclusiveMaximum": True,
                "x-order": 1,
            },
            "count": {"type": "integer", "minimum": 0.5, "maximum": 7.0, "x-order": 2},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}], "x-order": 3},
            "frames": {
                "type": "array",
                "items": {"type": "string", "format": "uri"},
                "minItems": 1,
                "maxItems": 2,
                "x-order": 4,
            },
            "weights": {
                "type": "array",
                "items": {"type": "number", "minimum": -1, "maximum": 1},
                "default": [],
                "x-order": 5,
            },
            "extra": {"type": "object", "default": {}, "x-order": 6},
            "below": {"type": "integer", "maximum": -5, "nullable": True, "x-order": 7},
            "short": {"type": "string", "maxLength": 3, "default": "ab", "x-order": 8},
        },
        required=["code", "ratio", "count", "either", "frames"],
    )


def example_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return doc


ALL_DOCS = {"demo": demo_doc, "edge": edge_doc, "example": example_doc}


def walk(value: Any) -> list[Any]:
    """Every value nested in ``value`` (itself included)."""
    found = [value]
    if isinstance(value, dict):
        for item in value.values():
            found += walk(item)
    elif isinstance(value, list):
        for item in value:
            found += walk(item)
    return found


def gen(doc: dict[str, Any], iterations: int = 30, **kwargs: Any) -> list[dict[str, Any]]:
    kwargs.setdefault("fixed_inputs", {})
    kwargs.setdefault("disabled_inputs", [])
    return generate_inputs(doc, iterations=iterations, **kwargs)


# -------------------------------------------------------------------- input_properties


def test_input_properties_resolves_refs_and_orders_by_x_order() -> None:
    doc = demo_doc()
    props = doc["components"]["schemas"]["Input"]["properties"]
    # Document order differs from x-order: the result must follow x-order.
    doc["components"]["schemas"]["Input"]["properties"] = dict(reversed(list(props.items())))
    resolved = input_properties(doc)
    assert list(resolved) == [
        "prompt",
        "aspect_ratio",
        "num_outputs",
        "guidance",
        "go_fast",
        "seed",
        "image",
        "megapixels",
    ]
    assert resolved["aspect_ratio"] == {
        "type": "string",
        "enum": ["1:1", "16:9", "9:16"],
        "default": "1:1",
        "x-order": 1,
    }
    assert resolved["megapixels"]["type"] == "integer"
    assert "allOf" not in resolved["megapixels"]


def test_input_properties_for_training() -> None:
    doc = make_doc(
        {"prompt": {"type": "string"}},
        ["prompt"],
        training=({"epochs": {"type": "integer", "default": 2}}, []),
    )
    assert input_properties(doc, kind="train") == {"epochs": {"type": "integer", "default": 2}}


def test_input_properties_without_training_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        input_properties(demo_doc(), kind="train")
    assert str(info.value) == (
        "schema has no components.schemas.TrainingInput (the model has no train())"
    )


# --------------------------------------------------------------------- validate_inputs


def test_validate_inputs_accepts_valid_inputs() -> None:
    inputs = {
        "prompt": "a cat",
        "aspect_ratio": "16:9",
        "num_outputs": 4,
        "guidance": 0,
        "go_fast": False,
        "seed": 7,
        "image": "https://example.com/a.png",
        "megapixels": 4,
    }
    assert validate_inputs(demo_doc(), inputs) == []


def test_validate_inputs_reports_each_problem_by_name() -> None:
    inputs = {
        "aspect_ratio": "2:1",
        "num_outputs": 5,
        "guidance": "high",
        "go_fast": 1,
        "megapixels": "4",
        "color": "red",
    }
    assert validate_inputs(demo_doc(), inputs) == [
        "input 'color': unknown input",
        "inputs: 'prompt' is a required property",
        "input 'aspect_ratio': '2:1' is not one of ['1:1', '16:9', '9:16']",
        "input 'go_fast': 1 is not of type 'boolean'",
        "input 'guidance': 'high' is not of type 'number'",
        "input 'megapixels': '4' is not of type 'integer'",
        "input 'megapixels': '4' is not one of [1, 4]",
        "input 'num_outputs': 5 is greater than the maximum of 4",
    ]


def test_validate_inputs_rejects_null_even_for_nullable_inputs() -> None:
    assert validate_inputs(demo_doc(), {"prompt": "x", "seed": None}) == [
        "input 'seed': null is not allowed (omit the input instead)"
    ]


def test_validate_inputs_translates_nullable_inside_values() -> None:
    doc = make_doc({"tags": {"type": "array", "items": {"type": "string", "nullable": True}}})
    assert validate_inputs(doc, {"tags": ["a", None]}) == []
    strict = make_doc({"tags": {"type": "array", "items": {"type": "string"}}})
    assert validate_inputs(strict, {"tags": ["a", None]}) == [
        "input 'tags/1': None is not of type 'string'"
    ]


def test_validate_inputs_requires_file_inputs_to_be_uri_strings() -> None:
    doc = demo_doc()
    assert validate_inputs(doc, {"prompt": "x", "image": 3}) == [
        "input 'image': 3 is not of type 'string'"
    ]
    assert validate_inputs(doc, {"prompt": "x", "image": "cat.png"}) == [
        "input 'image': 'cat.png' is not a 'uri'"
    ]
    assert validate_inputs(doc, {"prompt": "x", "image": "data:image/png;base64,AAAA"}) == []


def test_validate_inputs_rejects_bool_for_integer_and_non_object() -> None:
    assert validate_inputs(demo_doc(), {"prompt": "x", "num_outputs": True}) == [
        "input 'num_outputs': True is not of type 'integer'"
    ]
    assert validate_inputs(demo_doc(), ["prompt"]) == ["inputs must be a JSON object, not list"]


# --------------------------------------------------------------------- generate_inputs


@pytest.mark.parametrize("name", sorted(ALL_DOCS))
def test_generated_inputs_always_validate_over_many_seeds(name: str) -> None:
    doc = ALL_DOCS[name]()
    for seed in range(60):
        cases = gen(doc, iterations=25, seed=seed)
        assert len(cases) == 25
        for case in cases:
            assert validate_inputs(doc, case) == [], (seed, case)
            assert None not in walk(case)


def test_boundaries_come_first_one_field_at_a_time() -> None:
    cases = gen(demo_doc(), iterations=40, file_inputs={"image": "https://x.test/i.png"})
    base = {"prompt": "a photo of a cat"}
    assert cases[:11] == [
        {**base, "aspect_ratio": "1:1"},
        {**base, "aspect_ratio": "16:9"},
        {**base, "aspect_ratio": "9:16"},
        {**base, "num_outputs": 1},
        {**base, "num_outputs": 4},
        {**base, "guidance": 0},
        {**base, "guidance": 10},
        {**base, "go_fast": True},
        {**base, "go_fast": False},
        {**base, "megapixels": 1},
        {**base, "megapixels": 4},
    ]
    # The random part follows, and differs from the boundary cases.
    assert all(case not in cases[:11] for case in cases[11:])


def test_boundaries_cover_lengths_and_exclusive_bounds() -> None:
    cases = gen(edge_doc(), iterations=12, seed=None)
    codes = {len(c["code"]) for c in cases}
    assert {3, 8} <= codes
    ratios = [c["ratio"] for c in cases]
    assert min(ratios) > 0 and max(ratios) < 1
    counts = {c["count"] for c in cases}
    assert {1, 7} <= counts
    assert any(c.get("below") == -5 for c in cases)
    assert any(c.get("short") == "" for c in cases) is False  # no minLength: no empty case
    assert any(c.get("short") == "a p" for c in cases)


def test_fewer_iterations_than_boundaries_takes_the_first() -> None:
    all_cases = gen(demo_doc(), iterations=11)
    assert gen(demo_doc(), iterations=4) == all_cases[:4]
    assert gen(demo_doc(), iterations=0) == []


def test_same_seed_same_inputs_other_seed_other_inputs() -> None:
    doc = demo_doc()
    first = gen(doc, iterations=30, seed=1)
    assert gen(doc, iterations=30, seed=1) == first
    other = gen(doc, iterations=30, seed=2)
    assert other[:11] == first[:11]  # boundaries do not depend on the seed
    assert other[11:] != first[11:]


def test_random_cases_vary_optional_inputs() -> None:
    cases = gen(demo_doc(), iterations=80, seed=5)[11:]
    for name in ("aspect_ratio", "num_outputs", "guidance", "go_fast", "seed", "image"):
        present = [c for c in cases if name in c]
        assert 0 < len(present) < len(cases), name
    assert len({c["prompt"] for c in cases}) > 20


def test_fixed_inputs_are_always_sent_and_never_varied() -> None:
    cases = gen(demo_doc(), iterations=40, fixed_inputs={"num_outputs": 2, "go_fast": False})
    assert all(c["num_outputs"] == 2 and c["go_fast"] is False for c in cases)
    # Their boundaries are skipped: 3 + 2 + 2 choice/guidance cases remain.
    assert [c.get("aspect_ratio") for c in cases[:3]] == ["1:1", "16:9", "9:16"]
    assert cases[3] == {
        "prompt": "a photo of a cat",
        "num_outputs": 2,
        "go_fast": False,
        "guidance": 0,
    }


def test_disabled_inputs_are_never_sent() -> None:
    cases = gen(demo_doc(), iterations=60, disabled_inputs=["seed", "image"])
    assert not any("seed" in c or "image" in c for c in cases)


def test_disabled_required_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        gen(demo_doc(), disabled_inputs=["prompt"])
    assert str(info.value) == "fuzz.disabled_inputs: 'prompt' is required"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fixed_inputs": {"colour": 1}}, "fuzz.fixed_inputs: unknown input 'colour'"),
        ({"disabled_inputs": ["colour"]}, "fuzz.disabled_inputs: unknown input 'colour'"),
        ({"fixed_inputs": {"seed": None}}, "fuzz.fixed_inputs: 'seed' is null (omit it instead)"),
        (
            {"fixed_inputs": {"num_outputs": 9}},
            "fuzz.fixed_inputs: 'num_outputs': 9 is greater than the maximum of 4",
        ),
        (
            {"fixed_inputs": {"seed": 1}, "disabled_inputs": ["seed"]},
            "fuzz.disabled_inputs: 'seed' is also in fixed_inputs",
        ),
        (
            {"file_inputs": {"mask": "https://x.test/m.png"}},
            "fuzz.file_inputs: unknown input 'mask'",
        ),
        ({"iterations": -1}, "fuzz.iterations must be >= 0, not -1"),
    ],
)
def test_bad_fuzz_config_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        gen(demo_doc(), **kwargs)
    assert str(info.value) == message


def test_file_inputs_use_given_urls_or_a_generated_png() -> None:
    given = gen(demo_doc(), iterations=40, file_inputs={"image": "https://x.test/i.png"})
    assert {c["image"] for c in given if "image" in c} == {"https://x.test/i.png"}
    made = [c["image"] for c in gen(demo_doc(), iterations=40) if "image" in c]
    assert made
    for uri in made:
        assert uri.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as img:
            assert img.format == "PNG" and img.size == (16, 16)


def test_required_pattern_input_needs_a_fixed_value() -> None:
    doc = make_doc({"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}, ["code"])
    with pytest.raises(ConfigError) as info:
        gen(doc)
    assert str(info.value) == (
        "fuzz: cannot generate a value for input 'code' matching pattern '^[A-Z]{3}$'; "
        "set it in fuzz.fixed_inputs"
    )
    assert gen(doc, iterations=3, fixed_inputs={"code": "ABC"}) == [{"code": "ABC"}] * 3


def test_optional_pattern_input_is_left_to_its_default() -> None:
    doc = make_doc(
        {"prompt": {"type": "string"}, "code": {"type": "string", "pattern": "^[A-Z]+$"}},
        ["prompt"],
    )
    assert not any("code" in c for c in gen(doc, iterations=20))


def test_optional_secrets_are_never_made_up() -> None:
    cases = gen(example_doc(), iterations=60)
    assert not any("api_key" in c for c in cases)


def test_generate_inputs_for_training() -> None:
    doc = make_doc(
        {"prompt": {"type": "string"}},
        ["prompt"],
        training=(
            {
                "epochs": {"type": "integer", "minimum": 1, "maximum": 3},
                "data": {"type": "string", "format": "uri"},
            },
            ["data"],
        ),
    )
    cases = gen(doc, iterations=6, kind="train", file_inputs={"data": "https://x.test/d.zip"})
    assert cases[:2] == [
        {"data": "https://x.test/d.zip", "epochs": 1},
        {"data": "https://x.test/d.zip", "epochs": 3},
    ]
    assert all(validate_inputs(doc, c, kind="train") == [] for c in cases)


# ---------------------------------------------------------------- required_only_inputs


def test_required_only_inputs_are_minimal_and_valid() -> None:
    doc = example_doc()
    inputs = required_only_inputs(doc, file_inputs={"image": "https://x.test/i.png"})
    assert inputs == {"prompt": "a photo of a cat", "image": "https://x.test/i.png"}
    assert validate_inputs(doc, inputs) == []
    generated = required_only_inputs(doc)
    assert set(generated) == {"prompt", "image"}
    assert generated["image"].startswith("data:image/png;base64,")


def test_required_only_inputs_respect_constraints() -> None:
    doc = edge_doc()
    inputs = required_only_inputs(doc)
    assert set(inputs) == {"code", "ratio", "count", "either", "frames"}
    # Midpoints of the ranges, and the usual text cut to maxLength 8.
    assert inputs["count"] == 4 and inputs["ratio"] == 0.5 and inputs["code"] == "a photo"
    assert required_only_inputs(make_doc({"steps": {"type": "integer", "default": 3}})) == {}


# ----------------------------------------------------------------------- the AI batch


def test_parse_ai_batch_reads_fenced_json() -> None:
    text = (
        "Here are the inputs:\n```json\n"
        '[{"prompt": "a red fox", "num_outputs": 3}, {"prompt": "a teapot", "go_fast": false}]'
        "\n```\nEnjoy!"
    )
    batch = parse_ai_batch(text, demo_doc(), iterations=5, fixed_inputs={}, disabled_inputs=[])
    assert batch == [
        {"prompt": "a red fox", "num_outputs": 3},
        {"prompt": "a teapot", "go_fast": False},
    ]


def test_parse_ai_batch_reads_bare_json_and_caps_iterations() -> None:
    items = [{"prompt": f"p{i}"} for i in range(5)]
    batch = parse_ai_batch(
        json.dumps(items), demo_doc(), iterations=3, fixed_inputs={}, disabled_inputs=[]
    )
    assert batch == items[:3]


def test_parse_ai_batch_drops_invalid_items() -> None:
    text = json.dumps(
        [
            {"prompt": "ok"},
            {"prompt": "too many", "num_outputs": 9},
            {"num_outputs": 2},
            "not an object",
            {"prompt": "bad choice", "aspect_ratio": "2:1"},
            {"prompt": "unknown", "style": "x"},
            {"prompt": "also ok", "seed": 3},
        ]
    )
    batch = parse_ai_batch(text, demo_doc(), iterations=10, fixed_inputs={}, disabled_inputs=[])
    assert batch == [{"prompt": "ok"}, {"prompt": "also ok", "seed": 3}]


def test_parse_ai_batch_enforces_fixed_and_disabled_inputs_and_drops_nulls() -> None:
    text = json.dumps(
        [
            {"prompt": "a", "num_outputs": 3, "seed": 5, "guidance": None},
            {"prompt": "b", "seed": None},
        ]
    )
    batch = parse_ai_batch(
        text, demo_doc(), iterations=10, fixed_inputs={"num_outputs": 1}, disabled_inputs=["seed"]
    )
    assert batch == [{"prompt": "a", "num_outputs": 1}, {"prompt": "b", "num_outputs": 1}]


def test_parse_ai_batch_fills_file_inputs() -> None:
    doc = example_doc()
    text = json.dumps(
        [{"prompt": "a", "image": "https://made.up/x.png", "api_key": "sk-x"}, {"prompt": "b"}]
    )
    batch = parse_ai_batch(
        text,
        doc,
        iterations=2,
        fixed_inputs={},
        disabled_inputs=[],
        file_inputs={"image": "https://x.test/i.png"},
    )
    assert batch == [
        {"prompt": "a", "image": "https://x.test/i.png"},
        {"prompt": "b", "image": "https://x.test/i.png"},
    ]


def test_parse_ai_batch_with_nothing_valid_raises_one_line() -> None:
    text = '```json\n[{"prompt": "x", "num_outputs": 0}]\n```'
    with pytest.raises(ValueError) as info:
        parse_ai_batch(text, demo_doc(), iterations=3, fixed_inputs={}, disabled_inputs=[])
    assert str(info.value) == (
        "no valid inputs in the AI answer "
        "(item 0: input 'num_outputs': 0 is less than the minimum of 1)"
    )
    with pytest.raises(ValueError, match="^no valid inputs in the AI answer \\(the array is"):
        parse_ai_batch("[]", demo_doc(), iterations=3, fixed_inputs={}, disabled_inputs=[])


def test_parse_ai_batch_without_json_raises() -> None:
    with pytest.raises(ValueError) as info:
        parse_ai_batch(
            "Sorry, I cannot help.", demo_doc(), iterations=3, fixed_inputs={}, disabled_inputs=[]
        )
    assert str(info.value) == "the AI answer contains no JSON array of input objects"
    assert "\n" not in str(info.value)


def test_fuzz_prompt_describes_the_batch() -> None:
    text = fuzz_prompt(
        example_doc(),
        iterations=7,
        fixed_inputs={"steps": 4},
        disabled_inputs=["tags"],
        user_prompt="Use prompts about animals.",
    )
    assert "7 different sets of inputs" in text
    assert "JSON array of exactly 7 objects" in text
    assert "Use prompts about animals." in text
    schema_part = text.split("Its inputs (JSON Schema, OpenAPI flavour) are:\n", 1)[1]
    shown = json.JSONDecoder().raw_decode(schema_part)[0]
    assert list(shown) == ["prompt", "guidance", "enhance", "scheduler", "seed", "old_param"]
    assert shown["prompt"]["required"] is True
    assert shown["scheduler"]["enum"] == ["euler", "ddim", "dpm"]
    assert shown["guidance"]["maximum"] == 20
    assert "they are set automatically: api_key, image, mask, steps, tags" in text


def test_fuzz_prompt_without_user_prompt() -> None:
    text = fuzz_prompt(
        demo_doc(), iterations=3, fixed_inputs={}, disabled_inputs=[], user_prompt=None
    )
    assert "author" not in text
    assert "set automatically: image" in text


# ------------------------------------------------------ end to end: real coglet accepts


DEMO_PREDICTOR = """
import json
from typing import Optional

from cog import BasePredictor, Input, Path
from PIL import Image


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="Prompt"),
        aspect_ratio: str = Input(default="1:1", choices=["1:1", "16:9", "9:16"]),
        num_outputs: int = Input(default=1, ge=1, le=4),
        guidance: float = Input(default=3.5, ge=0, le=10),
        go_fast: bool = Input(default=True),
        seed: Optional[int] = Input(default=None),
        image: Optional[Path] = Input(default=None),
        megapixels: int = Input(default=1, choices=[1, 4]),
        tags: list[str] = Input(default=["a"]),
    ) -> str:
        size = list(Image.open(image).size) if image is not None else None
        return json.dumps({
            "prompt": prompt, "aspect_ratio": aspect_ratio, "num_outputs": num_outputs,
            "guidance": guidance, "go_fast": go_fast, "seed": seed, "image": size,
            "megapixels": megapixels, "tags": tags,
        })
"""


@pytest.mark.slow
def test_generated_inputs_are_accepted_by_coglet(tmp_path: Path) -> None:
    """Every generated input runs on the real predictor, which receives exactly it."""
    import replicate

    from cogfleet.server._embedded import LocalServer
    from cogfleet.server._push import push_build

    build = tmp_path / "demo"
    build.mkdir()
    (build / "predict.py").write_text(DEMO_PREDICTOR)
    (build / "cog.yaml").write_text(  # the predictor needs Pillow in its environment
        'build:\n  python_version: "3.11"\n  python_packages: ["pillow>=10.4"]\n'
        'predict: "predict.py:Predictor"\n'
    )
    with LocalServer(state_dir=tmp_path / "state", token="r8_fuzz") as server:
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        client.models.create(owner="acme", name="demo", visibility="private", hardware="cpu")
        version = push_build(client, "acme", "demo", build)
        schema = version["openapi_schema"]
        assert isinstance(schema, dict)
        cases = generate_inputs(schema, iterations=16, fixed_inputs={}, disabled_inputs=[], seed=3)
        cases.append(required_only_inputs(schema))
        assert any("image" in c for c in cases) and any("seed" in c for c in cases)
        for case in cases:
            pred = client.predictions.create(version=str(version["id"]), input=case, wait=True)
            if pred.status != "succeeded":
                pred.wait()
            assert pred.status == "succeeded", (case, pred.error)
            received = json.loads(pred.output)
            for name, value in case.items():
                if name == "image":
                    assert received["image"] == [16, 16]
                else:
                    assert received[name] == value, name
