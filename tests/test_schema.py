"""The OpenAPI generator reproduces Cog's static (Go) generator, byte for byte."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cogfleet._errors import ConfigError
from cogfleet.schema import (
    COG_CLI_VERSION,
    dumps_schema,
    generate_schema,
    title_case,
    write_schema_file,
)

FIXTURES = Path(__file__).parent / "fixtures" / "schema"
EXAMPLE_DIR = FIXTURES / "example"


def make_build(
    tmp_path: Path,
    source: str,
    ref: str = "predict.py:Predictor",
    *,
    train: str | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """A throw-away build folder with cog.yaml and predict.py."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "predict.py").write_text(textwrap.dedent(source), encoding="utf-8")
    lines = ['build:\n  python_version: "3.11"\n', f'run: "{ref}"\n' if ref else ""]
    if train:
        lines.append(f'train: "{train}"\n')
    (tmp_path / "cog.yaml").write_text("".join(lines), encoding="utf-8")
    for name, text in (extra or {}).items():
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["components"]["schemas"]
    return result


def input_props(doc: dict[str, Any], key: str = "Input") -> dict[str, Any]:
    result: dict[str, Any] = schemas(doc)[key]["properties"]
    return result


# --------------------------------------------------------------------------- reference example


def test_reference_example_is_byte_identical() -> None:
    doc = generate_schema(EXAMPLE_DIR)
    expected = (FIXTURES / "example-compact.json").read_text(encoding="utf-8")
    assert dumps_schema(doc) == expected
    indented = json.loads((FIXTURES / "example-openapi-schema.json").read_text(encoding="utf-8"))
    assert doc == indented
    assert doc["info"]["version"] == COG_CLI_VERSION
    # Key order of the returned dict is Cog's output order.
    assert list(schemas(doc)) == [
        "Input",
        "Output",
        "scheduler",
        "PredictionRequest",
        "PredictionResponse",
        "Status",
        "HTTPValidationError",
        "ValidationError",
    ]
    assert list(doc["paths"]) == [
        "/",
        "/health-check",
        "/predictions",
        "/predictions/{prediction_id}/cancel",
    ]
    assert list(input_props(doc))[:3] == ["prompt", "steps", "guidance"]


def test_generation_leaves_no_bytecode_in_the_build_folder(tmp_path: Path) -> None:
    build = shutil.copytree(EXAMPLE_DIR, tmp_path / "b")
    generate_schema(build)
    assert sorted(p.name for p in build.iterdir()) == ["cog.yaml", "predict.py"]


# --------------------------------------------------------------------------- inputs

INPUTS_SOURCE = """
    from typing import Optional, Union
    from cog import BaseRunner, Input, Path, Secret

    class Runner(BaseRunner):
        def run(
            self,
            size: int = Input(default=512, choices=[256, 512, 1024]),
            token: Secret = Input(description="required secret"),
            api_key: Secret = Input(default=None),
            seed: int = Input(description="seed", default=None),
            maybe: Optional[int] = Input(),
            maybe_default: Optional[int] = Input(default=None),
            either: Union[str, int, None] = Input(default=None),
            files: Optional[list[Path]] = Input(description="files"),
            lora_2x: float = Input(default=1.0, ge=1e-7, le=2),
            old: str = Input(default="x", deprecated=True),
            positional: str = Input("ignored by Cog"),
            plain: int = 3,
            name: str = Input(default="a<b>&c", min_length=1, max_length=9, regex="^[a-z<>&]+$"),
            image: Path = Input(description="img", accept="image/*"),
            bare: str = "",
            opts: dict = Input(default={"b": 1, 2: [True], 3.0: None}),
            loose: Union[int, str, None] = Input(),
        ) -> str:
            return ""
"""


@pytest.fixture(scope="module")
def inputs_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate_schema(
        make_build(tmp_path_factory.mktemp("inputs"), INPUTS_SOURCE, "predict.py:Runner")
    )


def test_choices_become_enum_component_and_allof_ref(inputs_doc: dict[str, Any]) -> None:
    size = input_props(inputs_doc)["size"]
    assert size == {"allOf": [{"$ref": "#/components/schemas/size"}], "default": 512, "x-order": 0}
    assert schemas(inputs_doc)["size"] == {
        "description": "An enumeration.",
        "enum": [256, 512, 1024],
        "title": "size",
        "type": "integer",
    }
    # Enum components sit right after Output.
    assert list(schemas(inputs_doc))[:3] == ["Input", "Output", "size"]


def test_secret_inputs(inputs_doc: dict[str, Any]) -> None:
    props = input_props(inputs_doc)
    secret = {"format": "password", "type": "string", "writeOnly": True, "x-cog-secret": True}
    assert props["token"] == {
        **secret,
        "description": "required secret",
        "title": "Token",
        "x-order": 1,
    }
    assert props["api_key"] == {
        **secret,
        "default": None,
        "nullable": True,
        "title": "Api Key",
        "x-order": 2,
    }
    required = schemas(inputs_doc)["Input"]["required"]
    assert "token" in required and "api_key" not in required


def test_none_default_on_plain_int_is_required(inputs_doc: dict[str, Any]) -> None:
    assert input_props(inputs_doc)["seed"] == {
        "description": "seed",
        "title": "Seed",
        "type": "integer",
        "x-order": 3,
    }
    assert "seed" in schemas(inputs_doc)["Input"]["required"]


def test_optional_inputs_are_nullable_and_not_required(inputs_doc: dict[str, Any]) -> None:
    props = input_props(inputs_doc)
    assert props["maybe"] == {"nullable": True, "title": "Maybe", "type": "integer", "x-order": 4}
    assert props["maybe_default"]["default"] is None and props["maybe_default"]["nullable"]
    assert props["files"] == {
        "description": "files",
        "items": {"format": "uri", "type": "string"},
        "nullable": True,
        "title": "Files",
        "type": "array",
        "x-order": 7,
    }
    required = schemas(inputs_doc)["Input"]["required"]
    assert not {"maybe", "maybe_default", "files"} & set(required)


def test_nullable_union(inputs_doc: dict[str, Any]) -> None:
    assert input_props(inputs_doc)["either"] == {
        "anyOf": [{"nullable": True, "type": "string"}, {"nullable": True, "type": "integer"}],
        "default": None,
        "nullable": True,
        "title": "Either",
        "x-order": 6,
    }


def test_title_case_quirk_and_go_numbers(inputs_doc: dict[str, Any]) -> None:
    prop = input_props(inputs_doc)["lora_2x"]
    assert prop["title"] == "Lora 2x"
    assert title_case("num_inference_steps") == "Num Inference Steps"
    text = dumps_schema(inputs_doc)
    assert '"lora_2x":{"default":1,"maximum":2,"minimum":1e-7,"title":"Lora 2x"' in text


def test_deprecated_constraints_accept_and_defaults(inputs_doc: dict[str, Any]) -> None:
    props = input_props(inputs_doc)
    assert props["old"]["deprecated"] is True
    assert "deprecated" not in props["name"]
    # Only the keyword counts: Input("...") has no default for Cog's generator.
    assert "default" not in props["positional"]
    assert props["plain"]["default"] == 3
    assert props["bare"]["default"] == ""
    assert props["name"] == {
        "default": "a<b>&c",
        "maxLength": 9,
        "minLength": 1,
        "pattern": "^[a-z<>&]+$",
        "title": "Name",
        "type": "string",
        "x-order": 12,
    }
    assert props["image"]["x-cog-accept"] == "image/*"
    assert schemas(inputs_doc)["Input"]["required"] == [
        "token",
        "seed",
        "positional",
        "image",
        "loose",  # Go requires a union input without a default, even a nullable one
    ]
    text = dumps_schema(inputs_doc)
    assert '"default":"a\\u003cb\\u003e\\u0026c"' in text and "<" not in text


def test_dict_input_default_is_a_sorted_go_map(inputs_doc: dict[str, Any]) -> None:
    text = dumps_schema(inputs_doc)
    expected = '"opts":{"default":{"2":[true],"3":null,"b":1},"title":"Opts","type":"object"'
    assert expected in text


# --------------------------------------------------------------------------- outputs


def output_of(tmp_path: Path, annotation: str, prelude: str = "", decorator: str = "") -> Any:
    source = f"""
        from typing import Any, AsyncIterator, Iterator, Optional
        import cog
        from cog import BasePredictor, ConcatenateIterator, Path
        {prelude}
        class Predictor(BasePredictor):
            {decorator}
            def predict(self, prompt: str) -> {annotation}:
                raise RuntimeError("not run")
    """
    return generate_schema(make_build(tmp_path, source))


def test_iterator_outputs(tmp_path: Path) -> None:
    doc = output_of(tmp_path, "Iterator[Path]")
    assert schemas(doc)["Output"] == {
        "items": {"format": "uri", "type": "string"},
        "title": "Output",
        "type": "array",
        "x-cog-array-type": "iterator",
    }
    assert "x-cog-streaming" not in doc["paths"]["/predictions"]["post"]


def test_concatenate_iterator_and_streaming(tmp_path: Path) -> None:
    doc = output_of(tmp_path, "ConcatenateIterator[str]", decorator="@cog.streaming")
    assert schemas(doc)["Output"] == {
        "items": {"type": "string"},
        "title": "Output",
        "type": "array",
        "x-cog-array-display": "concatenate",
        "x-cog-array-type": "iterator",
    }
    assert doc["paths"]["/predictions"]["post"]["x-cog-streaming"] is True


def test_list_of_paths_and_dict_outputs(tmp_path: Path) -> None:
    doc = output_of(tmp_path / "a", "list[Path]")
    assert schemas(doc)["Output"] == {
        "items": {"format": "uri", "type": "string"},
        "title": "Output",
        "type": "array",
    }
    doc = output_of(tmp_path / "b", "dict[str, list[int]]")
    assert schemas(doc)["Output"] == {
        "additionalProperties": {"items": {"type": "integer"}, "type": "array"},
        "title": "Output",
        "type": "object",
    }


def test_basemodel_output_with_nullable_field(tmp_path: Path) -> None:
    prelude = """
        from pydantic import BaseModel as PydanticModel
        class Output(cog.BaseModel):
            text: str
            score: Optional[float]
            image: Path
            extra: int = 0
    """
    doc = output_of(tmp_path, "Output", prelude=prelude)
    out = schemas(doc)["Output"]
    assert list(out["properties"]) == ["text", "score", "image", "extra"]
    assert out["properties"]["score"] == {"nullable": True, "title": "Score", "type": "number"}
    assert out["required"] == ["text", "image"]


def test_list_of_recursive_pydantic_models_matches_reference(tmp_path: Path) -> None:
    # cog.md: `-> list[Item]` where Item has `child: Optional["Item"]`.
    prelude = """
        from pydantic import BaseModel
        class Item(BaseModel):
            name: str
            tags: list[str]
            meta: dict[str, list[int]]
            child: Optional["Item"] = None
    """
    doc = output_of(tmp_path, "list[Item]", prelude=prelude)
    expected = (
        '"Output":{"items":{"properties":{"name":{"title":"Name","type":"string"},"tags":{"items":'
        '{"type":"string"},"title":"Tags","type":"array"},"meta":{"additionalProperties":{"items":'
        '{"type":"integer"},"type":"array"},"title":"Meta","type":"object"},"child":{"nullable":'
        'true,"title":"Child","type":"object"}},"required":["name","tags","meta"],"type":"object"}'
        ',"title":"Output","type":"array"}'
    )
    assert expected in dumps_schema(doc)


def test_optional_output_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        output_of(tmp_path, "Optional[str]")
    assert info.value.path == "predict.py"
    assert "Optional" in info.value.message


# --------------------------------------------------------------------------- predictor styles


def test_function_predictor_and_runner_run(tmp_path: Path) -> None:
    source = """
        from cog import Input
        def predict(text: str = Input(description="t")) -> str:
            return text
    """
    doc = generate_schema(make_build(tmp_path / "f", source, "predict.py:predict"))
    assert input_props(doc) == {
        "text": {"description": "t", "title": "Text", "type": "string", "x-order": 0}
    }
    source = """
        from cog import BaseRunner
        class Runner(BaseRunner):
            async def run(self, n: int = 2) -> int:
                return n
    """
    doc = generate_schema(make_build(tmp_path / "r", source, "predict.py:Runner"))
    assert input_props(doc)["n"] == {"default": 2, "title": "N", "type": "integer", "x-order": 0}
    assert schemas(doc)["Output"] == {"title": "Output", "type": "integer"}


def test_user_prints_do_not_corrupt_the_answer(tmp_path: Path) -> None:
    source = """
        import os
        print("hello from import")
        os.write(1, b"raw fd write\\n")
        from cog import BasePredictor
        class Predictor(BasePredictor):
            def predict(self) -> str:
                return ""
    """
    doc = generate_schema(make_build(tmp_path, source))
    assert schemas(doc)["Output"] == {"title": "Output", "type": "string"}
    assert "required" not in schemas(doc)["Input"]


# --------------------------------------------------------------------------- train


TRAIN_SOURCE = """
    from cog import BaseModel, Input, Path

    class TrainingOutput(BaseModel):
        weights: Path

    def train(
        epochs: int = Input(description="Epochs", ge=1),
        scheduler: str = Input(default="cosine", choices=["cosine", "linear"]),
    ) -> TrainingOutput:
        raise RuntimeError("not run")
"""


def test_train_only_document(tmp_path: Path) -> None:
    build = make_build(
        tmp_path, "", ref="", train="train.py:train", extra={"train.py": TRAIN_SOURCE}
    )
    doc = generate_schema(build)
    assert list(schemas(doc)) == [
        "TrainingInput",
        "TrainingOutput",
        "scheduler",
        "TrainingRequest",
        "TrainingResponse",
        "Status",
        "HTTPValidationError",
        "ValidationError",
    ]
    assert schemas(doc)["TrainingInput"]["title"] == "TrainingInput"
    assert schemas(doc)["TrainingInput"]["required"] == ["epochs"]
    assert schemas(doc)["TrainingOutput"] == {
        "properties": {"weights": {"format": "uri", "title": "Weights", "type": "string"}},
        "required": ["weights"],
        "title": "Output",
        "type": "object",
    }
    assert schemas(doc)["TrainingRequest"]["properties"]["input"] == {
        "$ref": "#/components/schemas/TrainingInput"
    }
    assert list(doc["paths"]) == [
        "/",
        "/health-check",
        "/trainings",
        "/trainings/{training_id}/cancel",
    ]
    post = doc["paths"]["/trainings"]["post"]
    assert post["operationId"] == "train_trainings_post"
    assert post["summary"] == "Train"
    cancel = doc["paths"]["/trainings/{training_id}/cancel"]["post"]
    assert cancel["operationId"] == "cancel_trainings__training_id__cancel_post"
    assert cancel["parameters"][0]["schema"] == {"title": "Training Id", "type": "string"}
    assert dumps_schema(doc).startswith('{"components":{"schemas":{"TrainingInput":')


def test_predict_and_train_are_merged_and_indented(tmp_path: Path) -> None:
    predict = """
        from cog import BasePredictor, Input
        class Predictor(BasePredictor):
            @staticmethod
            def _unused() -> None: ...
            def predict(self, scheduler: str = Input(default="a", choices=["a", "b"]),
                        scale: float = Input(default=2.0)) -> str:
                return scheduler
    """
    build = make_build(tmp_path, predict, train="train.py:train", extra={"train.py": TRAIN_SOURCE})
    doc = generate_schema(build)
    names = list(schemas(doc))
    assert names == sorted(names)
    assert {
        "Input",
        "Output",
        "TrainingInput",
        "TrainingOutput",
        "PredictionRequest",
        "TrainingRequest",
    } <= set(names)
    # The predict document wins the collision on the enum component named "scheduler".
    assert schemas(doc)["scheduler"]["enum"] == ["a", "b"]
    assert list(doc["paths"]) == sorted(doc["paths"])
    assert {"/predictions", "/trainings"} <= set(doc["paths"])
    text = dumps_schema(doc)
    assert text.startswith('{\n  "components": {\n    "schemas": {\n      "HTTPValidationError"')
    assert '"default": 2,' in text and "\n}" == text[-2:]
    assert json.loads(text) == doc


def test_class_trainer(tmp_path: Path) -> None:
    source = """
        from cog import Input
        class Trainer:
            def train(self, steps: int = Input(default=1)) -> str:
                return ""
    """
    build = make_build(tmp_path, "", ref="", train="train.py:Trainer", extra={"train.py": source})
    doc = generate_schema(build)
    assert input_props(doc, "TrainingInput")["steps"]["default"] == 1


# --------------------------------------------------------------------------- errors


def test_imports_of_missing_packages_do_not_matter(tmp_path: Path) -> None:
    source = """
        import not_a_real_module_for_cogfleet
        from torch import nn
        from cog import BasePredictor, Input
        class Predictor(BasePredictor):
            def predict(self, x: int = Input(default=1)) -> str:
                return ""
    """
    doc = generate_schema(make_build(tmp_path, source))
    assert input_props(doc)["x"]["default"] == 1


def test_unsupported_input_type_and_missing_class(tmp_path: Path) -> None:
    source = """
        from cog import BasePredictor
        class Predictor(BasePredictor):
            def predict(self, x: set[int]) -> str:
                return ""
    """
    with pytest.raises(ConfigError) as info:
        generate_schema(make_build(tmp_path / "a", source))
    assert str(info.value) == (
        "predict.py:4: unsupported type: set[...] is not a supported input type"
    )
    with pytest.raises(ConfigError, match=r"^predict\.py: predictor not found: Missing$"):
        generate_schema(make_build(tmp_path / "b", source, "predict.py:Missing"))


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    source = """
        from cog import BasePredictor
        class Predictor(BasePredictor)
            pass
    """
    with pytest.raises(ConfigError) as info:
        generate_schema(make_build(tmp_path, source))
    assert info.value.path == "predict.py" and info.value.line == 3
    assert info.value.message.startswith("failed to parse Python source:")


def test_bad_cog_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cog.yaml: file not found"):
        generate_schema(tmp_path)
    (tmp_path / "cog.yaml").write_text("build:\n  python_version: '3.11'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no 'run', 'predict' or 'train'"):
        generate_schema(tmp_path)
    (tmp_path / "cog.yaml").write_text("run: predict:Predictor\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected 'file.py:Name'"):
        generate_schema(tmp_path)


# --------------------------------------------------------------------------- serialiser


def test_dumps_schema_go_rules() -> None:
    doc = {
        "components": {
            "schemas": {
                "Z": {"properties": {"b": {"y": 1, "x": 2.0}, "a": {}}, "type": "object"},
                "A": {"enum": [1e21, 1.5e-7, 0.1, -0.0]},
            }
        },
        "paths": {"/z": {}, "/a": {"default": {"properties": {"b": 1, "a": 2}}}},
        "info": {"title": "t\u2028\n\x01"},
    }
    assert dumps_schema(doc) == (
        '{"components":{"schemas":{"Z":{"properties":{"b":{"x":2,"y":1},"a":{}},'
        '"type":"object"},"A":{"enum":[1e+21,1.5e-7,0.1,-0]}}},'
        '"info":{"title":"t\\u2028\\n\\u0001"},'
        '"paths":{"/z":{},"/a":{"default":{"properties":{"a":2,"b":1}}}}}'
    )


def test_write_schema_file(tmp_path: Path) -> None:
    doc = generate_schema(EXAMPLE_DIR)
    path = write_schema_file(tmp_path, doc)
    assert path == tmp_path / ".cog" / "openapi_schema.json"
    assert path.read_text(encoding="utf-8") == (FIXTURES / "example-compact.json").read_text(
        encoding="utf-8"
    )


# --------------------------------------------------------------------------- real coglet


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_coglet(build: Path, log_path: Path, *, train: bool = False) -> Iterator[httpx.Client]:
    """Real coglet serving ``build`` (cwd), yielding a client once it reports READY."""
    port = _free_port()
    # coglet starts its Python worker as `python` from PATH: put this venv first.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PORT": str(port)}
    args = [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"]
    if train:
        env["COG_TRAIN_TYPE_STUB"] = "train.py:train"
        args += ["--x-mode", "train"]
    else:
        env["COG_PREDICT_TYPE_STUB"] = "predict.py:Predictor"
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=build, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                deadline = time.monotonic() + 60
                status = None
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        status = client.get("/health-check").json().get("status")
                    except httpx.TransportError:
                        status = None
                    if status in ("READY", "SETUP_FAILED"):
                        break
                    time.sleep(0.1)  # readiness poll: coglet offers no event to wait on
                assert status == "READY", log_path.read_text(encoding="utf-8")
                yield client
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_coglet_validates_with_the_generated_file(tmp_path: Path) -> None:
    build = shutil.copytree(EXAMPLE_DIR, tmp_path / "model")
    write_schema_file(build, generate_schema(build))
    with running_coglet(build, tmp_path / "coglet.log") as client:
        served = client.get("/openapi.json")
        assert served.status_code == 200
        assert served.json() == json.loads(dumps_schema(generate_schema(build)))
        image = "data:text/plain;base64,aGk="
        resp = client.post(
            "/predictions", json={"input": {"prompt": "p", "image": image, "steps": 99}}
        )
        assert resp.status_code == 422
        assert resp.json() == {
            "detail": [
                {
                    "loc": ["body", "input", "steps"],
                    "msg": "99 is greater than the maximum of 50",
                    "type": "value_error",
                }
            ]
        }
        resp = client.post("/predictions", json={"input": {"image": image}})
        assert resp.status_code == 422
        assert resp.json()["detail"] == [
            {
                "loc": ["body", "input", "prompt"],
                "msg": "Field required",
                "type": "value_error.missing",
            }
        ]
    assert "Loaded OpenAPI schema from .cog/openapi_schema.json" in (
        tmp_path / "coglet.log"
    ).read_text(encoding="utf-8")


TRAINER_THAT_RUNS = """
    from cog import BaseModel, Input, Path

    class TrainingOutput(BaseModel):
        weights: Path

    def train(epochs: int = Input(description="Epochs", ge=1)) -> TrainingOutput:
        out = Path("weights.bin")
        out.write_bytes(b"w" * epochs)
        return TrainingOutput(weights=out)
"""


@pytest.mark.slow
def test_coglet_train_mode_accepts_the_merged_file(tmp_path: Path) -> None:
    build = shutil.copytree(EXAMPLE_DIR, tmp_path / "model")
    (build / "train.py").write_text(textwrap.dedent(TRAINER_THAT_RUNS), encoding="utf-8")
    with (build / "cog.yaml").open("a", encoding="utf-8") as f:
        f.write('train: "train.py:train"\n')
    doc = generate_schema(build)
    path = write_schema_file(build, doc)
    assert path.read_text(encoding="utf-8").startswith('{\n  "components": {')
    with running_coglet(build, tmp_path / "coglet.log", train=True) as client:
        resp = client.post("/trainings", json={"input": {"epochs": 0}})
        assert resp.status_code == 422
        assert [d["loc"] for d in resp.json()["detail"]] == [["body", "input", "epochs"]]
        resp = client.post("/trainings", json={"input": {"epochs": 2}})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["status"] == "succeeded"
        assert body["output"]["weights"].startswith("data:")
