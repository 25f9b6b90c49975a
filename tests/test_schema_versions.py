"""The schema follows the pinned Cog version's rules, read from source without importing it.

The corpus under tests/fixtures/schema/corpus/ holds predictors and trainers covering
every input type, choices, ge/le, Optional, unions, lists, Path/File/Secret, defaults
(None included), BaseModel, iterator and ConcatenateIterator outputs and train. Each
case's openapi.json was written by cogfleet's former generator, which imported the
predictor under the Cog SDK and was matched byte for byte to Cog 0.22's Go generator
(heavy_imports_siblings from a copy without its torch/diffusers imports, which that
generator could not import here); the cases added since (input_references,
opaque_types, predict_and_train_shared_choices) follow Cog's Go source at v0.22.0 and
its parser tests. A case only Cog <= 0.16 builds holds the static parser's error in
static-error.txt instead.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cogfleet._errors import ConfigError
from cogfleet.schema import (
    UnknownCogVersion,
    dumps_schema,
    generate_schema,
    parse_version,
    rules_for,
)

CORPUS = Path(__file__).parent / "fixtures" / "schema" / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def make_build(tmp_path: Path, source: str, ref: str = "predict.py:Predictor") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "predict.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (tmp_path / "cog.yaml").write_text(
        f'build:\n  python_version: "3.11"\npredict: "{ref}"\n', encoding="utf-8"
    )
    return tmp_path


def input_schema(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["components"]["schemas"]["Input"]
    return result


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES)
def test_newest_rules_match_the_golden_documents(case: str) -> None:
    golden = CORPUS / case / "openapi.json"
    if not golden.exists():
        # A case only Cog <= 0.16 builds: the static parser's error, as Cog words it.
        expected_error = (CORPUS / case / "static-error.txt").read_text(encoding="utf-8")
        for version in (None, "0.22.0", "0.17.0"):
            with pytest.raises(ConfigError) as info:
                generate_schema(CORPUS / case, version)
            assert f"{info.value}\n" == expected_error
        return
    expected = golden.read_text(encoding="utf-8")
    assert dumps_schema(generate_schema(CORPUS / case)) == expected
    assert dumps_schema(generate_schema(CORPUS / case, "0.22.0")) == expected


def test_torch_diffusers_and_sibling_modules_need_not_be_installed() -> None:
    # The corpus case imports torch, diffusers, transformers, numpy and two sibling
    # modules (helpers.py imports torch and safetensors): none of them is imported.
    import importlib.util

    for name in ("torch", "diffusers", "transformers", "safetensors"):
        assert importlib.util.find_spec(name) is None
    doc = generate_schema(CORPUS / "heavy_imports_siblings")
    output = doc["components"]["schemas"]["Output"]
    assert output["properties"]["images"] == {
        "items": {"format": "uri", "type": "string"},
        "title": "Images",
        "type": "array",
    }


# --------------------------------------------------------------------------- versions


def test_version_strings() -> None:
    assert parse_version("0.15.8") == (0, 15, 8)
    assert parse_version("v0.19.3") == (0, 19, 3)
    for bad in ("0.15", "latest", "0.15.8.1", ""):
        with pytest.raises(UnknownCogVersion):
            parse_version(bad)
    with pytest.raises(UnknownCogVersion, match="schema rules are known for Cog"):
        rules_for("9.0.0")
    assert rules_for(None).version == rules_for("0.23.1").version


def test_unknown_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cog\.yaml: not a Cog version: 'x'"):
        generate_schema(CORPUS / "str_required", "x")


SEED_SOURCE = """
    from typing import List, Optional
    from cog import BasePredictor, Input, Secret

    class Predictor(BasePredictor):
        def predict(
            self,
            seed: int = Input(description="Seed", default=None),
            api_key: Secret = Input(default=None),
            files: Optional[List[str]] = Input(description="Files"),
            size: int = Input(default=512, choices=[256, 512]),
        ) -> str:
            return ""
"""


def test_default_none_became_required_in_0_19(tmp_path: Path) -> None:
    build = make_build(tmp_path, SEED_SOURCE)
    old = generate_schema(build, "0.18.0")
    new = generate_schema(build, "0.19.0")
    assert old["components"]["schemas"]["Input"]["properties"]["seed"]["default"] is None
    assert "seed" not in old["components"]["schemas"]["Input"].get("required", [])
    assert "default" not in new["components"]["schemas"]["Input"]["properties"]["seed"]
    assert new["components"]["schemas"]["Input"]["required"] == ["seed"]
    # A Secret with default=None stays optional (nullable) from 0.19 on.
    assert new["components"]["schemas"]["Input"]["properties"]["api_key"]["nullable"] is True
    assert "nullable" not in old["components"]["schemas"]["Input"]["properties"]["api_key"]


def test_enum_names_and_key_order_before_0_19(tmp_path: Path) -> None:
    build = make_build(tmp_path, SEED_SOURCE)
    old = generate_schema(build, "0.17.2")
    assert "Size" in old["components"]["schemas"]
    assert old["components"]["schemas"]["Input"]["properties"]["size"]["allOf"] == [
        {"$ref": "#/components/schemas/Size"}
    ]
    # 0.17.x does not mark Optional[list] nullable; 0.18 does.
    assert "nullable" not in old["components"]["schemas"]["Input"]["properties"]["files"]
    assert generate_schema(build, "0.18.0")["components"]["schemas"]["Input"]["properties"][
        "files"
    ]["nullable"]
    text = dumps_schema(old, "0.17.2")
    # Insertion order inside each property (x-order first), and info.version 0.1.0.
    assert '"seed":{"x-order":0,"title":"Seed","type":"integer","default":null,' in text
    assert '"info":{"title":"Cog","version":"0.1.0"}' in text
    assert '"Prediction_id"' in text
    new_text = dumps_schema(generate_schema(build, "0.19.3"), "0.19.3")
    assert '"seed":{"description":"Seed","title":"Seed","type":"integer","x-order":0}' in new_text


def test_unions_accept_and_streaming_by_version(tmp_path: Path) -> None:
    source = """
        from typing import Iterator, Union
        import cog
        from cog import BasePredictor, Input, Path

        class Predictor(BasePredictor):
            @cog.streaming
            def predict(
                self,
                image: Path = Input(accept="image/*"),
                value: Union[str, int] = Input(default=1),
            ) -> Iterator[str]:
                yield ""
    """
    build = make_build(tmp_path, source)
    with pytest.raises(ConfigError) as info:
        generate_schema(build, "0.20.0")
    assert str(info.value) == (
        "predict.py:11: unsupported type: union types other than X | None are not supported"
    )
    doc21 = generate_schema(build, "0.21.0")
    props = input_schema(doc21)["properties"]
    assert props["value"]["anyOf"] == [{"type": "string"}, {"type": "integer"}]
    assert "x-cog-accept" not in props["image"]
    assert doc21["paths"]["/predictions"]["post"]["x-cog-streaming"] is True
    doc22 = generate_schema(build, "0.22.0")
    assert input_schema(doc22)["properties"]["image"]["x-cog-accept"] == "image/*"
    assert doc22["info"]["version"] == "0.22.0"
    (build / "predict.py").write_text(
        (build / "predict.py").read_text(encoding="utf-8").replace("Union[str, int]", "int"),
        encoding="utf-8",
    )
    old = generate_schema(build, "0.19.3")
    assert "x-cog-streaming" not in old["paths"]["/predictions"]["post"]


def test_run_method_and_inheritance_from_0_20(tmp_path: Path) -> None:
    source = """
        from cog import BasePredictor, Input

        class Base(BasePredictor):
            def run(self, a: int = Input(default=1)) -> int:
                return a

        class Predictor(Base):
            def predict(self, b: str = Input(default="x")) -> str:
                return b
    """
    build = make_build(tmp_path, source)
    assert list(input_schema(generate_schema(build, "0.20.0"))["properties"]) == ["a"]
    assert list(input_schema(generate_schema(build, "0.19.3"))["properties"]) == ["b"]


def test_list_from_a_sibling_model_needs_the_import_from_0_20(tmp_path: Path) -> None:
    source = """
        from cog import BasePredictor
        from kinds import Result

        class Predictor(BasePredictor):
            def predict(self) -> Result:
                return Result(tags=[])
    """
    build = make_build(tmp_path, source)
    (build / "kinds.py").write_text(
        "from typing import List\nfrom cog import BaseModel\n\n"
        "class Result(BaseModel):\n    tags: List[str]\n",
        encoding="utf-8",
    )
    old = generate_schema(build, "0.19.3")
    assert old["components"]["schemas"]["Output"]["properties"]["tags"]["type"] == "array"
    with pytest.raises(ConfigError, match=r'field "tags": unsupported type: List\[\.\.\.\]'):
        generate_schema(build, "0.20.0")


# --------------------------------------------------------------------------- static errors


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (
            "x: str = Input(default_factory=list)",
            "parameter 'x': default_factory is not supported in static schema generation",
        ),
        (
            "x: str = Input(choices=make_choices())",
            "parameter 'x': choices expression cannot be statically resolved",
        ),
        (
            "x: str = DEFAULTS['x']",
            "parameter 'x': default `DEFAULTS['x']` cannot be statically resolved",
        ),
        ("x = 3", "parameter 'x' on predict has no type annotation"),
        (
            "x: Union[Path, str] = Input()",
            "unsupported type: Path is not supported in union inputs",
        ),
        (
            "x: list[Optional[int]] = Input()",
            "unsupported type: nested generics like List[Optional[X]] are not supported",
        ),
        ("x: torch.Tensor = Input()", "cannot resolve type 'Tensor' (imported from 'torch')"),
        (
            "x: int = Input(accept='image/*')",
            "accept is only valid on Path or File inputs (parameter 'x')",
        ),
    ],
)
def test_what_cannot_be_resolved_is_one_line_naming_file_and_line(
    tmp_path: Path, param: str, message: str
) -> None:
    source = f"""
        import torch
        from typing import Optional, Union
        from cog import BasePredictor, Input, Path
        from choices import make_choices

        class Predictor(BasePredictor):
            def predict(
                self,
                {param},
            ) -> str:
                return ""
    """
    with pytest.raises(ConfigError) as info:
        generate_schema(make_build(tmp_path, source))
    text = str(info.value)
    assert text.startswith("predict.py:10: " + message), text
    assert "\n" not in text


def test_imported_constant_in_default_counts_as_none_like_cog(tmp_path: Path) -> None:
    # Cog's parser resolves only literals and the predictor file's own constants; an
    # Input(default=NAME) it cannot resolve is read as default=None.
    source = """
        from cog import BasePredictor, Input
        from settings import STEPS, SCHEDULERS

        LOCAL_STEPS = 8

        class Predictor(BasePredictor):
            def predict(
                self,
                steps: int = Input(default=STEPS),
                local: int = Input(default=LOCAL_STEPS),
            ) -> str:
                return ""
    """
    build = make_build(tmp_path, source)
    (build / "settings.py").write_text("STEPS = 4\nSCHEDULERS = ['a']\n", encoding="utf-8")
    schema = input_schema(generate_schema(build))
    assert "default" not in schema["properties"]["steps"]
    assert schema["required"] == ["steps"]
    assert schema["properties"]["local"]["default"] == 8
    assert json.dumps(schema)  # plain JSON


def test_the_schema_command_follows_each_variants_pin(make_repo, cli) -> None:
    root = make_repo({
        "pyproject.toml": '[tool.cogfleet]\ncog-version = "0.19.3"\n',
        "models/fam/variants.yaml": (
            "alpha:\n  model: acme/alpha\n  variables: {steps: 4}\n"
            "beta:\n  model: acme/beta\n  cog_version: \"0.15.8\"\n  variables: {steps: 8}\n"
        ),
    })
    beta = cli("schema", "beta", cwd=root)
    assert beta.code == 0, beta.err
    build = root / ".cogfleet" / "build" / "beta"
    assert beta.out == dumps_schema(generate_schema(build, "0.15.8"), "0.15.8") + "\n"
    assert json.loads(beta.out)["components"]["schemas"]["PredictionRequest"]  # the SDK's
    alpha = json.loads(cli("schema", "alpha", cwd=root).out)
    assert alpha == generate_schema(root / ".cogfleet" / "build" / "alpha", "0.19.3")
    summary = cli("schema", "--summary", cwd=root).out.splitlines()
    assert summary == [
        "alpha: 2 inputs (prompt, steps) [Cog 0.19.3]",
        "beta: 2 inputs (prompt, steps) [Cog 0.15.8]",
    ]
    # a Cog that runs but whose schema rules cogfleet does not know: exit 2 at the pin
    (root / "pyproject.toml").write_text('[tool.cogfleet]\ncog-version = "0.8.6"\n')
    old = cli("schema", "alpha", cwd=root)
    assert old.code == 2
    assert old.err.strip() == (
        "error: pyproject.toml:2: Cog 0.8.6: schema rules are known for Cog 0.9.9 to 0.23.1"
    )


# ------------------------------------------------------- values the SDK computed (<= 0.16)

SCHEDULER_TABLE = """
    from cog import BasePredictor, Input

    class Euler:
        '''A scheduler the table names.'''

    SCHEDULERS = {{"euler": Euler, "ddim": Euler}}

    class Predictor(BasePredictor):
        def predict(self, scheduler: str = Input({argument}, default="ddim")) -> str:
            return scheduler
"""


@pytest.mark.parametrize("version", ["0.9.26", "0.13.7", "0.16.12"])
def test_choices_are_the_keys_of_a_table_of_classes(tmp_path: Path, version: str) -> None:
    # The SDK imported the predictor, so `choices=SCHEDULERS.keys()` was the dict's keys,
    # in order, although its values (classes) are nothing the source determines.
    for argument in ("choices=SCHEDULERS.keys()", "choices=list(SCHEDULERS.keys())"):
        build = make_build(tmp_path / argument[8:12], SCHEDULER_TABLE.format(argument=argument))
        doc = generate_schema(build, version)
        assert doc["components"]["schemas"]["scheduler"]["enum"] == ["euler", "ddim"]


@pytest.mark.parametrize(
    "argument", ["choices=list(SCHEDULERS.values())", "choices=SCHEDULERS.values()"]
)
def test_the_classes_of_a_table_are_still_not_static(tmp_path: Path, argument: str) -> None:
    build = make_build(tmp_path, SCHEDULER_TABLE.format(argument=argument))
    with pytest.raises(ConfigError, match="cannot be evaluated without running") as info:
        generate_schema(build, "0.16.12")
    assert "\n" not in str(info.value)
    # the static generator never evaluates a bare .keys() call
    keys = SCHEDULER_TABLE.format(argument="choices=SCHEDULERS.keys()")
    build = make_build(tmp_path / "keys", keys)
    with pytest.raises(ConfigError, match="choices expression cannot be statically resolved"):
        generate_schema(build, "0.23.1")
