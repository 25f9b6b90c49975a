"""`cogfleet safe-push`: the cog-safe-push drop-in, run inside a single Cog folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import replicate
import yaml

from cogfleet import ExitCode
from cogfleet.cli._push import parse_pairs, parse_test_case
from cogfleet.server._embedded import LocalServer


def test_test_case_syntax():
    exact = parse_test_case("prompt=a cat;steps=4;fast=true;scale=1.5==hello")
    assert exact.inputs == {"prompt": "a cat", "steps": 4, "fast": True, "scale": 1.5}
    assert exact.checker == ("exact_string", "hello")
    assert parse_test_case("x=1==https://example.com/a.png").checker == (
        "match_url", "https://example.com/a.png")
    prompt = parse_test_case("x=1~=an image of a cat")
    assert prompt.checker == ("match_prompt", "an image of a cat")
    assert parse_test_case("x=1").checker is None
    assert parse_pairs("a=1;b=x") == {"a": 1, "b": "x"}


def test_help_config_prints_a_valid_example(cli, tmp_path):
    result = cli("safe-push", "--help-config", cwd=tmp_path)
    assert result.code == ExitCode.OK
    data = yaml.safe_load(result.out)
    assert data["model"] and data["predict"]["test_cases"]
    assert {k for c in data["predict"]["test_cases"] for k in c} >= {
        "exact_string", "match_url", "match_prompt", "jq_query", "error_contains"}


def test_outside_a_cog_folder(cli, tmp_path):
    result = cli("safe-push", "acme/x", cwd=tmp_path)
    assert result.code == ExitCode.USAGE_ERROR and "no cog.yaml here" in result.err


ECHO = '''\
from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(
        self,
        text: str = Input(description="Text to echo"),
        times: int = Input(description="Repetitions", ge=1, le=3, default=1),
    ) -> str:
        if text == "boom":
            raise ValueError("boom is not allowed")
        return text * times
'''


@pytest.fixture
def cog_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "cog.yaml").write_text(
        'build:\n  python_version: "3.11"\nrun: predict.py:Predictor\n'
    )
    (folder / "predict.py").write_text(ECHO)
    return folder


@pytest.mark.slow
def test_safe_push_in_a_cog_folder(cli, cog_folder, tmp_path):
    with LocalServer(state_dir=tmp_path / "state") as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="echo", visibility="public", hardware="cpu")
        report = tmp_path / "r.json"
        result = cli(
            "safe-push", "acme/echo", "--local-url", srv.base_url, "--report-json", str(report),
            "--test-case", "text=hi;times=2==hihi", "--test-case", "text=yo",
            "--fuzz-iterations", "3", "--fuzz-fixed-inputs", "text=abc", cwd=cog_folder,
        )
        assert result.code == ExitCode.OK, result.err
        data = json.loads(report.read_text())
        assert data["model"] == "acme/echo" and data["test_model"] == "acme/echo-test"
        cases = [(c["kind"], c["checker"], c["status"]) for c in data["cases"]]
        assert ("test-case", "exact_string", "passed") in cases
        assert sum(k == "fuzz" for k, _, _ in cases) == 3
        assert all(c["inputs"]["text"] == "abc" for c in data["cases"] if c["kind"] == "fuzz")
        assert [v.id for v in client.models.get("acme/echo").versions.list()] == [data["version"]]

        # a config file, and --no-push
        (cog_folder / "cog-safe-push.yaml").write_text(
            "model: acme/echo\npredict:\n  test_cases:\n"
            "    - {inputs: {text: boom}, error_contains: not allowed}\n"
            "    - {inputs: {text: a, times: 3}, exact_string: aaa}\n"
        )
        again = cli("safe-push", "--no-push", "--local-url", srv.base_url,
                    "--report-json", str(report), cwd=cog_folder)
        assert again.code == ExitCode.OK, again.err
        data2 = json.loads(report.read_text())
        assert data2["pushed"] is False
        assert {s["name"]: s["status"] for s in data2["steps"]}["compare-outputs"] == "passed"

        # a failing case stops before promotion
        failing = cli("safe-push", "--local-url", srv.base_url, "--report-json", str(report),
                      "--test-case", "text=a==b", cwd=cog_folder)
        assert failing.code == ExitCode.CHECKS_FAILED
        assert len(client.models.get("acme/echo").versions.list().results) == 1


def test_schema_diff_command(cli, tmp_path):
    example = Path(__file__).parent / "fixtures/schema/example-openapi-schema.json"
    old = tmp_path / "old.json"
    shutil.copy(example, old)
    doc = json.loads(example.read_text())
    props = doc["components"]["schemas"]["Input"]["properties"]
    props["steps"]["maximum"] = 10
    del props["guidance"]
    new = tmp_path / "new.json"
    new.write_text(json.dumps(doc))
    same = cli("schema-diff", str(old), str(old), cwd=tmp_path)
    assert same.code == ExitCode.OK and same.out.strip() == "compatible"
    broken = cli("schema-diff", str(old), str(new), cwd=tmp_path)
    assert broken.code == ExitCode.CHECKS_FAILED
    lines = broken.out.strip().splitlines()
    assert len(lines) == 2
    assert any("'steps'" in line and "maximum" in line for line in lines)
    assert any("'guidance'" in line and "removed" in line for line in lines)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    error = cli("schema-diff", str(bad), str(new), cwd=tmp_path)
    assert error.code == ExitCode.USAGE_ERROR and str(bad) in error.err


STREAM = '''\
from cog import BasePredictor, ConcatenateIterator, Input


class Predictor(BasePredictor):
    def predict(self, text: str = Input(description="Text")) -> ConcatenateIterator[str]:
        for piece in PIECES:
            yield piece.replace("TEXT", text)
'''


@pytest.mark.slow
def test_text_iterator_output_is_checked_and_compared_as_one_string(cli, tmp_path):
    """As Replicate's client does, the pieces a text iterator yields are joined: checkers
    see the text, and two versions that split it differently have equal outputs."""
    folder = tmp_path / "stream"
    folder.mkdir()
    (folder / "cog.yaml").write_text(
        'build:\n  python_version: "3.11"\npredict: predict.py:Predictor\n'
    )
    (folder / "cog-safe-push.yaml").write_text(
        "model: acme/stream\npredict:\n  test_cases:\n"
        "    - {inputs: {text: hi}, exact_string: '{\"said\": \"hi\"}'}\n"
        "    - {inputs: {text: yo}, jq_query: '.said == \"yo\"'}\n"
    )
    (folder / "predict.py").write_text(
        STREAM.replace("PIECES", '["{\\"said\\"", ": \\"TEXT\\"}"]')
    )
    report = tmp_path / "r.json"
    with LocalServer(state_dir=tmp_path / "state") as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="stream", visibility="public", hardware="cpu")
        first = cli("safe-push", "--local-url", srv.base_url, "--report-json", str(report),
                    cwd=folder)
        assert first.code == ExitCode.OK, first.err
        data = json.loads(report.read_text())
        cases = sorted(data["cases"], key=lambda c: c["index"])
        assert [(c["checker"], c["status"], c["output"]) for c in cases] == [
            ("exact_string", "passed", '{"said": "hi"}'),
            ("jq_query", "passed", '{"said": "yo"}'),
        ]
        # the same text in other pieces: the live and the test output are equal
        (folder / "predict.py").write_text(
            STREAM.replace("PIECES", '["{", "\\"said\\": ", "\\"TEXT", "\\"}"]')
        )
        second = cli("safe-push", "--no-push", "--local-url", srv.base_url,
                     "--report-json", str(report), cwd=folder)
        assert second.code == ExitCode.OK, second.err
        steps = {s["name"]: (s["status"], s["message"]) for s in
                 json.loads(report.read_text())["steps"]}
        assert steps["compare-outputs"] == ("passed", "outputs are equal")


PICKY = '''\
from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(self, text: str = Input(description="Only abc is known")) -> str:
        if text != "abc":
            raise ValueError(f"unknown text {text!r}")
        return text.upper()
'''


@pytest.mark.slow
def test_without_test_cases_outputs_are_compared_with_the_fixed_fuzz_inputs(cli, tmp_path):
    """As in cog-safe-push: with no test case, the comparison's inputs take the fuzz
    section's fixed inputs (a generated value of a required input would fail here)."""
    folder = tmp_path / "picky"
    folder.mkdir()
    (folder / "cog.yaml").write_text(
        'build:\n  python_version: "3.11"\npredict: predict.py:Predictor\n'
    )
    (folder / "predict.py").write_text(PICKY)
    (folder / "cog-safe-push.yaml").write_text(
        "model: acme/picky\npredict:\n  fuzz:\n    fixed_inputs: {text: abc}\n"
        "    iterations: 1\n"
    )
    report = tmp_path / "r.json"
    with LocalServer(state_dir=tmp_path / "state") as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="picky", visibility="public", hardware="cpu")
        for _ in range(2):  # the second push compares with the first
            result = cli("safe-push", "--local-url", srv.base_url, "--report-json", str(report),
                         cwd=folder)
            assert result.code == ExitCode.OK, result.err
        data = json.loads(report.read_text())
        compared = next(c for c in data["cases"] if c["kind"] == "compare-outputs")
        assert (compared["status"], compared["inputs"]) == ("passed", {"text": "abc"})


@pytest.mark.slow
def test_predict_cases_judge_the_test_version_and_the_trained_one_must_answer(cli, tmp_path):
    """The trainer's weights change the predictor's answer: the predict case's checker
    (written for the base weights) judges the test version, as in cog-safe-push; on the
    trained version the same inputs must only get an answer."""
    folder = tmp_path / "trainer"
    shutil.copytree(Path(__file__).parent / "fixtures" / "runner" / "trainer", folder)
    (folder / "cog-safe-push.yaml").write_text(
        "model: acme/trainable\ntrain:\n  test_cases:\n"
        "    - {inputs: {word: hey, epochs: 2}, jq_query: '.weights | type == \"string\"'}\n"
        "predict:\n  test_cases:\n    - {inputs: {prefix: 'x-'}, exact_string: x-base}\n"
    )
    report = tmp_path / "r.json"
    with LocalServer(state_dir=tmp_path / "state") as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="trainable", visibility="public",
                             hardware="cpu")
        result = cli("safe-push", "--local-url", srv.base_url, "--report-json", str(report),
                     cwd=folder)
        assert result.code == ExitCode.OK, result.err
        data = json.loads(report.read_text())
        cases = {(c["kind"], c["checker"]): c for c in data["cases"]}
        assert cases[("test-case", "exact_string")]["status"] == "passed"
        on_trained = cases[("train-case", None)]
        assert (on_trained["status"], on_trained["inputs"]) == ("passed", {"prefix": "x-"})
        assert on_trained["output"] == "x-hey hey"  # the trained weights answered
        assert data["pushed"]
