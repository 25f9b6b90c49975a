"""Type resolution by version: ``Annotated`` and ``cog.Opaque`` (Cog 0.20+) and the errors
Cog gives for types it cannot read, as Cog's Go source at each tag words them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from cogfleet._errors import ConfigError
from cogfleet.schema import generate_schema

OBJECT = {"type": "object"}
ARRAY = {"items": {"type": "object"}, "type": "array"}


def build(tmp_path: Path, head: str, signature: str, returns: str = "str") -> Path:
    """A predictor with imports ``head`` and ``predict(self, <signature>) -> <returns>``."""
    source = textwrap.dedent(head) + textwrap.dedent(f"""
        from vendor.types import Payload

        class Predictor(BasePredictor):
            def predict(self, {signature}) -> {returns}:
                return None
        """)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "predict.py").write_text(source, encoding="utf-8")
    (tmp_path / "cog.yaml").write_text('predict: "predict.py:Predictor"\n', encoding="utf-8")
    return tmp_path


def components(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["components"]["schemas"]
    return result


TYPING = """\
from typing import Annotated, List, Optional, Union
from cog import BasePredictor, Opaque
"""
QUALIFIED = "import typing\nfrom cog import BasePredictor, Opaque\n"


@pytest.mark.parametrize(
    ("head", "annotation", "fragment", "required"),
    [
        (TYPING, "Annotated[Payload, Opaque]", OBJECT, True),
        (TYPING, "Annotated[List[Payload], Opaque]", ARRAY, True),
        (TYPING, "Annotated[Union[Payload, None], Opaque]", {**OBJECT, "nullable": True}, False),
        (TYPING, "Annotated[Optional[List[Payload]], Opaque]", {**ARRAY, "nullable": True}, False),
        (TYPING, "Annotated[list, Opaque]", ARRAY, True),
        (TYPING, "Annotated[list, Opaque] | None", {**ARRAY, "nullable": True}, False),
        (TYPING, "List[Annotated[Payload, Opaque]]", ARRAY, True),
        (TYPING, "Annotated[int, 'metadata']", {"type": "integer"}, True),
        (QUALIFIED, "typing.Annotated[typing.Union[Payload, None], Opaque]",
         {**OBJECT, "nullable": True}, False),
        (QUALIFIED, "typing.Annotated[typing.List, Opaque]", ARRAY, True),
        # a List or Optional that is not typing's is just an opaque object
        ("from typing import Annotated\nfrom cog import BasePredictor, Opaque\nimport otherlib\n",
         "Annotated[otherlib.Optional[Payload], Opaque]", OBJECT, True),
        ("from typing import Annotated\nimport cog as c\nfrom cog import BasePredictor\n",
         "Annotated[Payload, c.Opaque]", OBJECT, True),
    ],
)
def test_opaque_inputs_from_0_20(
    tmp_path: Path, head: str, annotation: str, fragment: dict[str, Any], required: bool
) -> None:
    folder = build(tmp_path, head, f"value: {annotation}")
    for version in ("0.20.0", "0.22.0"):
        schema = components(generate_schema(folder, version))["Input"]
        prop = schema["properties"]["value"]
        assert {k: v for k, v in prop.items() if k not in ("title", "x-order")} == fragment
        assert ("value" in schema.get("required", [])) is required


@pytest.mark.parametrize(
    ("annotation", "output"),
    [
        ("Annotated[Payload, Opaque]", OBJECT),
        ("Annotated[List[Payload], Opaque]", ARRAY),
        ("Annotated[List, Opaque]", ARRAY),
        ("List[Annotated[Payload, Opaque]]", ARRAY),
        ("Annotated[str, 'metadata']", {"type": "string"}),
    ],
)
def test_opaque_outputs_from_0_20(tmp_path: Path, annotation: str, output: dict[str, Any]) -> None:
    folder = build(tmp_path, TYPING, "x: str", returns=annotation)
    for version in ("0.20.0", "0.22.0"):
        assert components(generate_schema(folder, version))["Output"] == {
            **output, "title": "Output"
        }


def test_opaque_fields_of_an_output_model(tmp_path: Path) -> None:
    (tmp_path / "predict.py").write_text(textwrap.dedent("""
        from typing import Annotated, List, Optional
        from cog import BaseModel, BasePredictor, Opaque
        from vendor.types import Payload

        class Output(BaseModel):
            result: Annotated[Payload, Opaque]
            maybe: Annotated[Optional[Payload], Opaque]
            many: Annotated[List[Payload], Opaque]

        class Predictor(BasePredictor):
            def predict(self) -> Output:
                return None
        """), encoding="utf-8")
    (tmp_path / "cog.yaml").write_text('predict: "predict.py:Predictor"\n', encoding="utf-8")
    output = components(generate_schema(tmp_path, "0.22.0"))["Output"]
    assert output["properties"] == {
        "result": {**OBJECT, "title": "Result"},
        "maybe": {**OBJECT, "nullable": True, "title": "Maybe"},
        "many": {**ARRAY, "title": "Many"},
    }
    assert output["required"] == ["result", "many"]


@pytest.mark.parametrize(
    "returns",
    [
        "Annotated[Optional[Payload], Opaque]",
        "Annotated[Union[List[Payload], None], Opaque]",
        "Annotated[Optional[str], 'metadata']",
    ],
)
def test_an_optional_opaque_output_is_refused(tmp_path: Path, returns: str) -> None:
    folder = build(tmp_path, TYPING, "x: str", returns=returns)
    with pytest.raises(ConfigError, match="Optional is not allowed as a return type"):
        generate_schema(folder, "0.22.0")


def test_before_0_20_annotated_is_an_unsupported_type(tmp_path: Path) -> None:
    folder = build(tmp_path, TYPING, "value: Annotated[Payload, Opaque]")
    with pytest.raises(ConfigError) as info:
        generate_schema(folder, "0.19.3")
    assert str(info.value) == (
        "predict.py:7: unsupported type: Annotated[...] is not a supported input type"
    )
    out = build(tmp_path / "out", TYPING, "x: str", returns="Annotated[str, 'metadata']")
    with pytest.raises(ConfigError, match="Annotated\\[...\\] is not a supported output type"):
        generate_schema(out, "0.17.0")


def test_external_types_are_worded_by_version(tmp_path: Path) -> None:
    head = "from cog import BasePredictor\n"
    output = build(tmp_path / "out", head, "x: str", returns="Payload")
    with pytest.raises(ConfigError) as new:
        generate_schema(output, "0.20.0")
    assert "cannot resolve type 'Payload' (imported from 'vendor.types') - external" in str(
        new.value
    )
    assert "`field: Annotated[Payload, Opaque]`" in str(new.value)
    with pytest.raises(ConfigError) as old:
        generate_schema(output, "0.19.3")
    assert str(old.value) == (
        "predict.py:6: cannot resolve output type 'Payload' (imported from 'vendor.types') "
        "\u2014 external types cannot be statically analyzed. Define it as a BaseModel "
        "subclass in your predict file, or provide a .pyi stub"
    )
    # An input type imported by name: an external type from 0.20, unsupported before.
    inputs = build(tmp_path / "in", head, "value: Payload")
    with pytest.raises(ConfigError, match="cannot resolve type 'Payload'"):
        generate_schema(inputs, "0.20.0")
    with pytest.raises(ConfigError) as before:
        generate_schema(inputs, "0.19.3")
    assert str(before.value) == "predict.py:6: unsupported type: Payload"
    unknown = build(tmp_path / "unknown", head, "x: str", returns="Mystery")
    with pytest.raises(ConfigError, match="cannot resolve output type 'Mystery' \u2014 it is"):
        generate_schema(unknown, "0.18.0")
    with pytest.raises(ConfigError, match="cannot resolve type 'Mystery' - it is not"):
        generate_schema(unknown, "0.21.0")


def test_cog_names_the_sdk_lacks_fail_as_the_sdk_fails(tmp_path: Path) -> None:
    # Cog <= 0.16 imported the predictor: `from cog import Opaque` is an ImportError there.
    folder = build(tmp_path, TYPING, "value: Annotated[Payload, Opaque]")
    with pytest.raises(ConfigError) as info:
        generate_schema(folder, "0.16.12")
    assert str(info.value) == "predict.py:2: ImportError: cannot import name 'Opaque' from 'cog'"
