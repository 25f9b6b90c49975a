"""The safe push end to end on the demo monorepo, against a real local server.

Each test starts its own server (fresh state) on loopback, drives `cogfleet push` /
`cogfleet test` through the CLI with `--local-url`, and reads the JSON report and the
server's state through the official `replicate` client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import replicate

from cogfleet import ExitCode
from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import version_id_for
from tests.conftest import CliResult

pytestmark = pytest.mark.slow

SCHNELL = "cogfleet-demo/imagegen-schnell"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path / "state") as srv:
        yield srv


@pytest.fixture
def client(server: LocalServer) -> replicate.Client:
    return replicate.Client(api_token=server.token, base_url=server.base_url)


def create_model(client: replicate.Client, model: str) -> None:
    owner, name = model.split("/")
    client.models.create(owner=owner, name=name, visibility="public", hardware="cpu")


def versions(client: replicate.Client, model: str) -> list[str]:
    return [v.id for v in client.models.get(model).versions.list()]


class Pusher:
    def __init__(self, cli: Callable[..., CliResult], repo: Path, server: LocalServer) -> None:
        self.cli, self.repo, self.server = cli, repo, server
        self.runs = 0

    def __call__(self, *args: str) -> tuple[CliResult, Any]:
        self.runs += 1
        report = self.repo / f"report-{self.runs}.json"
        result = self.cli(*args, "--local-url", self.server.base_url,
                          "--report-json", str(report), cwd=self.repo)
        data = json.loads(report.read_text()) if report.exists() else None
        return result, data


@pytest.fixture
def push(cli: Callable[..., CliResult], demo_repo: Path, server: LocalServer) -> Pusher:
    return Pusher(cli, demo_repo, server)


def steps(report: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in report["steps"]}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_model_must_exist(push):
    """A model the target lacks is a configuration error (exit 2), not a failed check."""
    result, report = push("push", "schnell")
    assert result.code == ExitCode.USAGE_ERROR
    assert steps(report)["push-test"] == "failed"
    assert f"model {SCHNELL} does not exist" in report["steps"][1]["message"]
    assert result.err.strip().splitlines()[-1] == (
        f"error: schnell: push-test: model {SCHNELL} does not exist on local; create it first")


def test_passing_push_then_second_push(push, client, demo_repo):
    create_model(client, SCHNELL)
    result, report = push("push", "schnell")
    assert result.code == ExitCode.OK, result.err
    assert report["result"] == "passed" and report["pushed"] is True
    assert report["target"] == "local" and report["test_model"] == f"{SCHNELL}-test"
    # the tested build itself, as each model's own version of it
    build = demo_repo / ".cogfleet/build/schnell"
    assert report["test_version"] == version_id_for(build, f"{SCHNELL}-test")
    assert report["version"] == version_id_for(build, SCHNELL)
    assert steps(report) == {
        "lint": "passed", "push-test": "passed", "schema-lint": "passed",
        "schema-compat": "skipped", "compare-outputs": "skipped", "test-cases": "passed",
        "fuzz": "passed", "train": "skipped", "promote": "passed",
        "deployment": "skipped", "official-model": "skipped",
    }
    kinds = {c["kind"] for c in report["cases"]}
    assert kinds == {"test-case", "fuzz"}
    checkers = {c["checker"] for c in report["cases"] if c["kind"] == "test-case"}
    assert checkers == {"match_url", "image_size", "error_contains", "match_prompt"}
    assert all(c["prediction_id"] for c in report["cases"])
    assert versions(client, SCHNELL) == [report["version"]]
    # the private test model was created
    assert client.models.get(f"{SCHNELL}-test").visibility == "private"

    second, report2 = push("push", "schnell")
    assert second.code == ExitCode.OK, second.err
    assert steps(report2)["schema-compat"] == "passed"
    assert steps(report2)["compare-outputs"] == "passed"
    compare = [c for c in report2["cases"] if c["kind"] == "compare-outputs"]
    assert compare[0]["message"] == "outputs match with a fixed seed"
    assert "live" not in result.out  # progress goes to stderr
    assert re.search(r"\[\d+/\d+\] test-case\[0\] match_url passed", second.err)


def test_no_push_never_touches_the_model(push, client):
    create_model(client, SCHNELL)
    result, report = push("push", "schnell", "--no-push")
    assert result.code == ExitCode.OK, result.err
    assert report["pushed"] is False and report["version"] is None
    assert steps(report)["promote"] == "skipped"
    assert versions(client, SCHNELL) == []
    test_result, test_report = push("test", "schnell")
    assert test_result.code == ExitCode.OK and test_report["pushed"] is False
    assert versions(client, SCHNELL) == []


def _promote_first(push, client) -> list[str]:
    create_model(client, SCHNELL)
    result, _ = push("push", "schnell", "--no-compare-outputs")
    assert result.code == ExitCode.OK, result.err
    return versions(client, SCHNELL)


def _assert_stopped(result, report, client, before, failed_step):
    assert result.code == ExitCode.CHECKS_FAILED
    assert report["result"] == "failed" and report["pushed"] is False
    assert steps(report)[failed_step] == "failed"
    assert steps(report)["promote"] == "skipped"
    assert versions(client, SCHNELL) == before


def test_schema_lint_failure_stops(push, client, demo_repo):
    before = _promote_first(push, client)
    edit(demo_repo / "models/imagegen/predict.py.j2",
         'description="Skip the final smoothing pass (faster, sharper edges)", ', "")
    result, report = push("push", "schnell")
    _assert_stopped(result, report, client, before, "schema-lint")
    assert "Input.go_fast: no description" in next(
        s["message"] for s in report["steps"] if s["name"] == "schema-lint")


def test_incompatible_schema_stops(push, client, demo_repo):
    before = _promote_first(push, client)
    template = demo_repo / "models/imagegen/predict.py.j2"
    edit(template, "ge=1, le=4, default=1", "ge=1, le=3, default=1")
    result, report = push("push", "schnell")
    _assert_stopped(result, report, client, before, "schema-compat")
    message = next(s["message"] for s in report["steps"] if s["name"] == "schema-compat")
    assert "num_outputs" in message and "maximum" in message
    # the same push with the check waived goes through
    waived, report2 = push("push", "schnell", "--ignore-schema-compatibility")
    assert waived.code == ExitCode.OK, waived.err
    assert steps(report2)["schema-compat"] == "skipped"
    # what is waived is said, as cog-safe-push's warning does
    waived_message = next(
        s["message"] for s in report2["steps"] if s["name"] == "schema-compat")
    assert waived_message.startswith(
        "ignore_schema_compatibility is set; ignored: not backwards compatible with ")
    assert "num_outputs" in waived_message


def test_output_comparison_failure_stops(push, client, demo_repo):
    before = _promote_first(push, client)
    template = demo_repo / "models/imagegen/predict.py.j2"
    text = template.read_text()
    # a changed drawing: same schema, different pixels for the same seed
    template.write_text(text.replace("hashlib.sha256(", "hashlib.sha512(", 1))
    assert template.read_text() != text
    result, report = push("push", "schnell")
    _assert_stopped(result, report, client, before, "compare-outputs")
    case = next(c for c in report["cases"] if c["kind"] == "compare-outputs")
    assert case["status"] == "failed" and "seed" in case["message"]


def test_failing_test_case_stops(push, client, demo_repo):
    before = _promote_first(push, client)
    edit(demo_repo / "cog-safe-push-configs/schnell.yaml",
         "image_size: 256x256", "image_size: 512x512")
    result, report = push("push", "schnell", "--no-compare-outputs")
    _assert_stopped(result, report, client, before, "test-cases")
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    assert [c["checker"] for c in failed] == ["image_size"]
    assert "512x512" in failed[0]["message"]


def test_fuzz_failure_stops_and_reports_inputs(push, client, demo_repo):
    before = _promote_first(push, client)
    template = demo_repo / "models/imagegen/predict.py.j2"
    text = template.read_text()
    marker = "        if not prompt"
    assert marker in text
    template.write_text(text.replace(
        marker, '        if aspect_ratio == "21:9":\n'
        '            raise RuntimeError("ultrawide is broken")\n' + marker, 1))
    result, report = push("push", "schnell", "--no-compare-outputs", "--fuzz-iterations", "12")
    _assert_stopped(result, report, client, before, "fuzz")
    failed = [c for c in report["cases"] if c["kind"] == "fuzz" and c["status"] == "failed"]
    assert failed and all(c["inputs"]["aspect_ratio"] == "21:9" for c in failed)
    assert "ultrawide is broken" in failed[0]["message"]


def test_train_then_predict_on_trained_version(push, client, demo_repo):
    create_model(client, "cogfleet-demo/captioner")
    result, report = push("push", "caption", "--no-compare-outputs")
    assert result.code == ExitCode.OK, result.err + result.out
    assert steps(report)["train"] == "passed"
    # cases are listed as they finish: in the order of the config by index
    train_cases = sorted(
        (c for c in report["cases"] if c["kind"] == "train-case"), key=lambda c: c["index"]
    )
    checkers = [c["checker"] for c in train_cases]
    # two trainings (jq on the weights, an expected error), then the 3 predict cases
    assert checkers[:2] == ["jq_query", "error_contains"]
    assert len(train_cases) == 5 and all(c["status"] == "passed" for c in train_cases)
    trained = versions(client, "cogfleet-demo/captioner-trained")
    assert trained, "the destination got a version"
    # the training's output names "<owner>/<name>:<id>"; the step names the version by its id
    message = next(s["message"] for s in report["steps"] if s["name"] == "train")
    assert message.endswith(f"3 test cases passed on {trained[0][:12]}"), message
    assert report["result"] == "passed"
    # the trained version really carries the training's weights
    with open(demo_repo / "models/captioner/examples/red.png", "rb") as image:
        output = client.run(f"cogfleet-demo/captioner-trained:{trained[0]}", input={"image": image})
    assert json.loads(output)["style"] == ["vivid", "glossy"]


def test_deployment_created_then_updated(push, client, demo_repo):
    create_model(client, SCHNELL)
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "deployment:\n  name: schnell-prod\n  hardware: cpu\n")
    result, report = push("push", "schnell", "--no-compare-outputs")
    assert result.code == ExitCode.OK, result.err
    message = next(s["message"] for s in report["steps"] if s["name"] == "deployment")
    account = client.accounts.current().username
    assert message.startswith(f"created deployment {account}/schnell-prod")
    deployment = client.deployments.get(f"{account}/schnell-prod")
    release = deployment.current_release
    assert release.version == report["version"]
    assert release.configuration.min_instances == 1 and release.configuration.max_instances == 20
    again, report2 = push("push", "schnell", "--no-compare-outputs")
    assert again.code == ExitCode.OK
    message = next(s["message"] for s in report2["steps"] if s["name"] == "deployment")
    assert message.startswith(f"updated deployment {account}/schnell-prod")
    assert client.deployments.get(f"{account}/schnell-prod").current_release.number == 2


def test_official_model_second_pass(push, client, demo_repo, monkeypatch):
    create_model(client, SCHNELL)
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "official_model: cogfleet-official/schnell\n")
    monkeypatch.setenv("COGFLEET_OFFICIAL_MODEL_API_KEY", "sk-proxy-secret-123")
    result, report = push("push", "schnell", "--no-compare-outputs", "--push-official-model")
    assert result.code == ExitCode.OK, result.err
    assert steps(report)["official-model"] == "passed"
    build = demo_repo / ".cogfleet/build/schnell"
    # the tested build, as the official model's own version of it
    official = version_id_for(build, "cogfleet-official/schnell")
    assert versions(client, "cogfleet-official/schnell") == [official]
    assert not any("sk-proxy-secret-123" in p.read_text(errors="ignore")
                   for p in build.rglob("*") if p.is_file())
    everything = result.out + result.err + json.dumps(report)
    assert "sk-proxy-secret-123" not in everything
    # without the flag the official model is left alone
    _, report2 = push("push", "schnell", "--no-compare-outputs")
    assert steps(report2)["official-model"] == "skipped"


def test_several_variants_in_one_command(push, client):
    create_model(client, SCHNELL)
    create_model(client, "cogfleet-demo/imagegen-dev")
    result, reports = push("push", "schnell", "dev", "--no-compare-outputs")
    assert result.code == ExitCode.OK, result.err
    assert [r["variant"] for r in reports] == ["schnell", "dev"]
    assert all(r["result"] == "passed" for r in reports)
    assert reports[0]["version"] != reports[1]["version"]
    # one failing variant fails the command, the other is still promoted
    failing, reports2 = push("push", "schnell", "dev", "--test-case", "prompt=x==nope")
    assert failing.code == ExitCode.CHECKS_FAILED
    assert {r["variant"]: r["result"] for r in reports2} == {"schnell": "failed", "dev": "failed"}


def test_junit_and_markdown_reports(push, client, demo_repo, monkeypatch):
    import xml.etree.ElementTree as ET

    create_model(client, SCHNELL)
    summary = demo_repo / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = demo_repo / "junit.xml"
    result, report = push("push", "schnell", "--no-compare-outputs", "--junit-xml", str(junit))
    assert result.code == ExitCode.OK
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    names = [case.get("name") for case in suite.iter("testcase")]
    assert "push-test" in names and any(n.startswith("test-case[0]") for n in names)
    text = summary.read_text()
    assert "`schnell` → `cogfleet-demo/imagegen-schnell`" in text and "| promote | passed |" in text


def test_predict_timeout_cancels_on_the_server(tmp_path, cli, demo_repo):
    with LocalServer(state_dir=tmp_path / "slow", latency=4) as slow:
        slow_client = replicate.Client(api_token=slow.token, base_url=slow.base_url)
        create_model(slow_client, SCHNELL)
        push = Pusher(cli, demo_repo, slow)
        result, report = push("test", "schnell", "--predict-timeout", "1",
                              "--fuzz-iterations", "1", "--test-case", "prompt=quick")
        assert result.code == ExitCode.CHECKS_FAILED
        case = next(c for c in report["cases"] if c["kind"] == "test-case")
        assert case["status"] == "failed" and "timed out after 1s" in case["message"]
        prediction = slow_client.predictions.get(case["prediction_id"])
        assert prediction.status == "canceled"


AI_CASE = """\
    - inputs: {prompt: a red fox, seed: 42}
      match_prompt: a 256x256px webp image of a red fox in the snow
"""


def test_match_prompt_needs_the_judge_for_unverified_facts(push, client, demo_repo,
                                                             monkeypatch):
    from tests.fakes.anthropic_server import FakeAnthropic

    create_model(client, SCHNELL)
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    edit(config, "  test_cases:\n", "  test_cases:\n" + AI_CASE)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    without, report = push("test", "schnell")
    assert without.code == ExitCode.CHECKS_FAILED
    case = next(c for c in report["cases"] if c["kind"] == "test-case" and c["index"] == 0)
    assert case["status"] == "failed" and "not configured" in case["message"]

    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        judged, report2 = push("test", "schnell")
        assert judged.code == ExitCode.OK, judged.err
        judge_calls = [r for r in fake.requests if "verdict" in r.text()]
        # best of 3 stops at a majority of 2; the output image was attached
        assert len(judge_calls) == 2 and judge_calls[0].images()
        fuzz_calls = [r for r in fake.requests if "verdict" not in r.text()]
        assert len(fuzz_calls) == 1  # the whole fuzz batch in one request
        assert fake.api_key not in judged.out + judged.err + json.dumps(report2)


def test_a_train_section_without_cases_or_fuzz_trains_nothing(push, client, demo_repo):
    """As in cog-safe-push: with no train test cases and no train fuzzing no training is
    run (none with made-up inputs either); the training schema is still linted."""
    create_model(client, "cogfleet-demo/captioner")
    config = demo_repo / "cog-safe-push-configs/caption.yaml"
    text = config.read_text()
    config.write_text(text[: text.index("  test_cases:", text.index("train:"))])
    result, report = push("test", "caption", "--no-compare-outputs", "--fuzz-iterations", "0")
    assert result.code == ExitCode.OK, result.err + result.out
    train_step = next(s for s in report["steps"] if s["name"] == "train")
    assert (train_step["status"], train_step["message"]) == (
        "skipped", "no train.test_cases and no train.fuzz: nothing is trained")
    assert not [c for c in report["cases"] if c["kind"] == "train-case"]
    assert steps(report)["schema-lint"] == "passed"
    with pytest.raises(replicate.exceptions.ReplicateError):  # not even created
        client.models.get("cogfleet-demo/captioner-trained")


def test_train_fuzz_trainings_must_succeed(push, client, demo_repo):
    """``train.fuzz`` fuzzes trainings, as cog-safe-push does: each must succeed."""
    create_model(client, "cogfleet-demo/captioner")
    config = demo_repo / "cog-safe-push-configs/caption.yaml"
    text = config.read_text()
    for vocabulary, code in (("bright", ExitCode.OK), (" , ", ExitCode.CHECKS_FAILED)):
        config.write_text(text.replace(
            "  train_timeout: 120\n",
            "  train_timeout: 120\n  fuzz:\n"
            f"    fixed_inputs: {{vocabulary: '{vocabulary}'}}\n    iterations: 2\n",
        ))
        result, report = push("test", "caption", "--no-compare-outputs")
        assert result.code == code, result.err + result.out
        fuzzed = [c for c in report["cases"]
                  if c["kind"] == "train-case" and c["message"].startswith("fuzz: ")]
        assert sorted(c["index"] for c in fuzzed) == [2, 3]
        assert all(c["inputs"]["vocabulary"] == vocabulary for c in fuzzed)
        if code == ExitCode.OK:
            assert all(c["status"] == "passed" for c in fuzzed)
        else:
            assert all(c["status"] == "failed" and "vocabulary" in c["message"] for c in fuzzed)
            train_step = next(s for s in report["steps"] if s["name"] == "train")
            assert train_step["message"].startswith("2/2 fuzz trainings failed: [2] fuzz: ")
