"""A config's inputs are checked against the variant's schema before anything is pushed.

The schema comes from the source (``cogfleet schema``); each test case is checked as
the server checks a prediction's input, so a case the server would refuse after the
push is an error of the config now: exit 2, one line at the config's file and line,
nothing rendered, started or pushed. What only the run can tell (an input name the
schema does not know, a schema the source alone cannot give) is a warning.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import replicate

from cogfleet.server._embedded import LocalServer
from tests.conftest import write_files
from tests.test_bad_input import CONFIG, assert_rejected

PREDICT = "models/fam/predict.py"
TRAIN = "models/fam/train.py"
TEMPLATE = "templates/cog.yaml.j2"

RICH_PREDICT = '''\
from cog import BasePredictor, Input, Path


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="Text prompt"),
        steps: int = Input(default=4, ge=1, le=4),
        seed: int | None = Input(default=None),
        sampler: str = Input(default="euler", choices=["euler", "ddim"]),
        image: Path | None = Input(default=None),  # noqa: B008
        tags: list[str] | None = Input(default=None),  # noqa: B008
    ) -> str:
        return f"{prompt}:{steps}"
'''

TRAINER = '''\
from cog import BaseModel, Input, Path


class TrainingOutput(BaseModel):
    weights: Path


def train(data: Path = Input(), epochs: int = Input(default=1, ge=1)) -> TrainingOutput:
    return TrainingOutput(weights=data)
'''

WITH_TRAIN = ('build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'
              'train: "train.py:train"\n')


def config(*cases: str, extra: str = "") -> str:
    lines = ["model: {{ model }}", "predict:", "  test_cases:"]
    lines += [f"    - inputs: {case}" for case in cases]
    return "\n".join(lines) + "\n" + extra


BAD_INPUT_CASES = [
    pytest.param(config("{prompt: hi, seed: notanint}"), 4,
                 ["predict.test_cases[0].inputs.seed: Invalid type. Expected: integer, "
                  "given: string"], id="type"),
    pytest.param(config("{prompt: hi}", "{prompt: hi, steps: 9}"), 5,
                 ["predict.test_cases[1].inputs.steps: Must be less than or equal to 4"],
                 id="above-le"),
    pytest.param(config("{prompt: hi, steps: 0}"), 4,
                 ["test_cases[0].inputs.steps: Must be greater than or equal to 1"],
                 id="below-ge"),
    pytest.param(config("{steps: 2}"), 4, ["predict.test_cases[0].inputs: prompt is required"],
                 id="required-missing"),
    pytest.param(config("{prompt: hi, sampler: dpm}"), 4,
                 ['test_cases[0].inputs.sampler: must be one of the following: "euler", "ddim"'],
                 id="not-a-choice"),
    pytest.param(config("{prompt: hi, seed: null}"), 4,
                 ["inputs.seed: Invalid type. Expected: integer, given: null"], id="null"),
    pytest.param(config("{prompt: hi, seed: true}"), 4,
                 ["inputs.seed: Invalid type. Expected: integer, given: boolean"],
                 id="boolean-for-integer"),
    pytest.param(config("{prompt: [hi]}"), 4,
                 ["inputs.prompt: Invalid type. Expected: string, given: array"], id="list"),
    pytest.param(config("{prompt: hi, tags: [a, 2]}"), 4,
                 ["inputs.tags[1]: Invalid type. Expected: string, given: integer"],
                 id="list-item"),
    pytest.param(config("{prompt: hi, image: refs/missing.png}"), 4,
                 ["inputs.image: file 'refs/missing.png' not found in the repo"],
                 id="file-path-missing"),
    pytest.param("model: {{ model }}\npredict:\n  test_cases:\n    - inputs:\n"
                 "        prompt: hi\n\n        seed: 1.5\n", 7,
                 ["inputs.seed: Invalid type. Expected: integer, given: number"],
                 id="block-mapping-line"),
    pytest.param(config("{prompt: hi}", extra="  fuzz:\n    fixed_inputs: {stepz: 2}\n"), 6,
                 ["predict.fuzz.fixed_inputs.stepz: unknown input (inputs: prompt, steps"],
                 id="fuzz-fixed-unknown"),
    pytest.param(config("{prompt: hi}", extra="  fuzz:\n    fixed_inputs: {steps: '2'}\n"), 6,
                 ["predict.fuzz.fixed_inputs.steps: Invalid type. Expected: integer"],
                 id="fuzz-fixed-type"),
    pytest.param(config("{prompt: hi}", extra="  fuzz:\n    fixed_inputs: {seed: null}\n"), 6,
                 ["predict.fuzz.fixed_inputs.seed: null is not allowed"], id="fuzz-fixed-null"),
    pytest.param(config("{prompt: hi}", extra="  fuzz:\n    disabled_inputs: [seed, sed]\n"), 6,
                 ["predict.fuzz.disabled_inputs[1]: unknown input 'sed'"],
                 id="fuzz-disabled-unknown"),
    pytest.param(config("{prompt: hi}", extra="  fuzz:\n    disabled_inputs: [prompt]\n"), 6,
                 ["predict.fuzz.disabled_inputs[0]: 'prompt' is required"],
                 id="fuzz-disabled-required"),
]


@pytest.mark.parametrize(("text", "line", "what"), BAD_INPUT_CASES)
def test_bad_test_case_inputs_are_config_errors(push_broken, text, line, what):
    result, root = push_broken({PREDICT: RICH_PREDICT, CONFIG: text})
    assert_rejected(result, root, f"{CONFIG}:{line}: ", *what)


TRAIN_CASES = [
    pytest.param("train:\n  test_cases:\n    - inputs: {data: x.zip, epochs: zero}\n", 7,
                 ["train.test_cases[0].inputs.epochs: Invalid type. Expected: integer"],
                 id="train-case-type"),
    pytest.param("train:\n  test_cases:\n    - inputs: {epochs: 2}\n", 7,
                 ["train.test_cases[0].inputs: data is required"], id="train-case-required"),
    pytest.param("train:\n  fuzz:\n    fixed_inputs: {epochs: 0}\n", 7,
                 ["train.fuzz.fixed_inputs.epochs: Must be greater than or equal to 1"],
                 id="train-fuzz-fixed"),
    pytest.param("train:\n  fuzz:\n    disabled_inputs: [data]\n", 7,
                 ["train.fuzz.disabled_inputs[0]: 'data' is required"], id="train-fuzz-disabled"),
]


def test_a_train_section_for_a_model_without_a_trainer(push_broken):
    result, root = push_broken({CONFIG: config("{prompt: hi}") + "train:\n  train_timeout: 60\n"})
    assert_rejected(result, root, f"{CONFIG}:5: ",
                    "train: the model has no trainer (cog.yaml sets no train:)")


@pytest.mark.parametrize(("section", "line", "what"), TRAIN_CASES)
def test_bad_training_inputs_are_config_errors(push_broken, section, line, what):
    files = {TRAIN: TRAINER, TEMPLATE: WITH_TRAIN, "x.zip": "zip",
             CONFIG: config("{prompt: hi}") + section}
    result, root = push_broken(files)
    assert_rejected(result, root, f"{CONFIG}:{line}: ", *what)


def test_the_line_is_the_one_written_in_an_included_file(push_broken):
    shared = "cog-safe-push-configs/shared.yaml.j2"
    files = {
        shared: "# shared cases\n    - inputs: {prompt: hi}\n"
                "    - inputs: {prompt: hi, steps: many}\n",
        CONFIG: 'model: {{ model }}\npredict:\n  test_cases:\n{% include "' + shared + '" %}\n',
    }
    result, root = push_broken(files)
    assert_rejected(result, root, f"{shared}:3: ", "predict.test_cases[1].inputs.steps")


def test_test_case_flags_are_checked_and_named(push_broken):
    result, root = push_broken({}, "--test-case", "prompt=hi;steps=notanint==hi:4")
    assert_rejected(result, root, "--test-case [0].inputs.steps: Invalid type")
    result, root = push_broken({}, "--fuzz-fixed-inputs", "steps=99")
    assert_rejected(result, root, "--fuzz-fixed-inputs steps: Must be less than or equal to 4")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path / "state") as srv:
        yield srv


def test_nothing_reaches_the_server(push_broken, server):
    """The server a push would use sees no model, no version and no file."""
    client = replicate.Client(api_token=server.token, base_url=server.base_url)
    client.models.create(owner="acme", name="alpha", visibility="public", hardware="cpu")
    files = {PREDICT: RICH_PREDICT, CONFIG: config("{prompt: hi, seed: notanint}")}
    result, root = push_broken(files, "--local-url", server.base_url)
    assert_rejected(result, root, f"{CONFIG}:4: ", "inputs.seed")
    assert [m.id for m in client.models.list()] == ["acme/alpha"]  # no acme/alpha-test
    assert list(client.models.get("acme/alpha").versions.list()) == []
    assert client.files.list() == []


VALID_CONFIG = config(
    "{prompt: hi, image: refs/in.png, seed: 3, steps: 4, sampler: ddim, tags: [a, b]}",
    "{prompt: hi, image: 'https://example.com/in.png'}",
    "{prompt: hi, image: 'data:text/plain;base64,aGk='}",
    extra="  fuzz:\n    fixed_inputs: {image: refs/in.png, seed: 1}\n"
          "    disabled_inputs: [tags]\n",
)


def test_file_inputs_as_paths_urls_and_data_uris_pass(make_repo, cli):
    root = make_repo({PREDICT: RICH_PREDICT, CONFIG: VALID_CONFIG, "refs/in.png": "png"})
    result = cli("lint", "alpha", cwd=root)
    assert result.code == 0, result.err
    assert "alpha: ok" in result.out


def test_an_unknown_input_name_is_a_warning_as_replicate_ignores_it(make_repo, cli):
    root = make_repo({CONFIG: config("{prompt: hi, stepz: 2}")})
    result = cli("lint", "alpha", cwd=root)
    assert result.code == 0, result.err
    assert (f"warning: alpha: {CONFIG}:4: predict.test_cases[0].inputs.stepz: unknown input "
            "'stepz', which Replicate ignores (inputs: prompt, steps)") in result.err


def test_a_schema_the_source_cannot_give_is_a_warning_not_an_error(make_repo, cli):
    """An expression only the model's code resolves: under a Cog whose SDK imported the
    model for the schema (<= 0.16) the inputs are left to the push; under one that reads
    the source (0.17 on) the build refuses it, and lint says so as the push does."""
    predict = RICH_PREDICT.replace('choices=["euler", "ddim"]', "choices=SAMPLERS").replace(
        "class Predictor", "SAMPLERS = sorted(['euler', 'ddim'])\n\n\nclass Predictor")
    root = make_repo({PREDICT: predict, CONFIG: config("{prompt: hi, sampler: ddim}")})
    refused = cli("lint", "alpha", cwd=root)
    assert refused.code == 2, refused.err
    assert refused.err == ("error: models/fam/predict.py:13: parameter 'sampler': choices "
                           "expression cannot be statically resolved\n")
    variants = root / "models/fam/variants.yaml"
    variants.write_text(variants.read_text().replace(
        "model: acme/alpha", 'model: acme/alpha\n  cog_version: "0.15.8"'))
    result = cli("lint", "alpha", cwd=root)
    assert "error" not in result.err.replace("warning:", ""), result.err
    assert "the config's inputs are checked by the push only" in result.err
    assert "choices expression cannot be statically resolved" in result.err


def test_safe_push_checks_the_config_of_its_folder(tmp_path, cli):
    folder = tmp_path / "cog"
    write_files(folder, {
        "cog.yaml": 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n',
        "predict.py": RICH_PREDICT,
        "cog-safe-push.yaml": "model: acme/alpha\npredict:\n  test_cases:\n"
                              "    - inputs: {prompt: hi, sampler: dpm}\n",
    })
    result = cli("safe-push", "--no-push", cwd=folder)
    assert result.code == 2, result.err
    assert result.err.startswith("error: cog-safe-push.yaml:4: predict.test_cases[0].inputs"
                                 ".sampler: must be one of the following"), result.err
    assert not (folder / ".cogfleet" / "local").exists()
