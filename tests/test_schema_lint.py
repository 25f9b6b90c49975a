"""Arguments whose effect on the published schema depends on the pinned Cog: found by
file:line, failing the lint where the pinned Cog drops them, warned about where it does
not (Cog <= 0.16) but an upgrade would."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cogfleet import ExitCode
from cogfleet.schema import generate_schema, source_findings
from tests.conftest import PREDICT_PY, write_files

PREDICT = """\
from cog import BasePredictor, Input
from settings import HELP, SEED

MAX_STEPS = 50


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="Prompt"),
        steps: int = Input(description="Steps", default=28, ge=1, le=MAX_STEPS),
        seed: int = Input(description=HELP, default=SEED),
        scale: float = Input(description="Scale", default=1.5, le=(10)),
    ) -> str:
        return prompt
"""


PREDICT_PY_WITH_A_NAME = PREDICT_PY.replace("STEPS = 4", "STEPS = 4\nMAX_STEPS = 4").replace(
    "le=4", "le=MAX_STEPS"
)


@pytest.fixture
def build(tmp_path: Path) -> Path:
    write_files(tmp_path, {
        "predict.py": PREDICT,
        "settings.py": 'SEED = 42\nHELP = "The seed"\n',
        "cog.yaml": 'predict: "predict.py:Predictor"\n',
    })
    return tmp_path


def test_the_pinned_static_cog_drops_them_and_the_lint_fails(build: Path) -> None:
    findings = source_findings(build, "0.22.0", "Cog 0.22.0 (pyproject.toml:5)")
    assert [(f.file, f.line, f.fails) for f in findings] == [
        ("predict.py", 11, True),
        ("predict.py", 12, True),
        ("predict.py", 12, True),
        ("predict.py", 13, True),
    ]
    assert str(findings[0]) == (
        "predict.py:11: input 'steps': le=MAX_STEPS is not a literal, and Cog 0.22.0 "
        "(pyproject.toml:5) leaves it out (the input has no maximum); write the literal: le=50"
    )
    assert "default=SEED is not a literal or a constant of this file" in findings[2].message
    assert "reads default=None instead; write the literal: default=42" in findings[2].message
    assert findings[3].message.startswith("input 'scale': le=(10) is not a literal")
    # and so it is: the document has none of them
    props = generate_schema(build, "0.22.0")["components"]["schemas"]["Input"]["properties"]
    assert "maximum" not in props["steps"] and "maximum" not in props["scale"]
    assert "default" not in props["seed"] and "description" not in props["seed"]


def test_under_cog_0_16_they_are_warnings_about_an_upgrade(build: Path) -> None:
    findings = source_findings(build, "0.15.8")
    assert [f.fails for f in findings] == [False] * 4
    assert findings[0].message == (
        "input 'steps': le=MAX_STEPS is not a literal: Cog 0.15.8 uses its value (50), but "
        "Cog 0.17 and later leave it out (the input has no maximum); write the literal: le=50"
    )
    # Cog 0.15.8 does use them
    props = generate_schema(build, "0.15.8")["components"]["schemas"]["Input"]["properties"]
    assert props["steps"]["maximum"] == 50 and props["seed"]["default"] == 42


def test_literals_and_the_files_own_constants_are_clean(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "predict.py": PREDICT.replace("from settings import HELP, SEED\n", 'HELP = "h"\nSEED = 4\n')
        .replace("le=MAX_STEPS", "le=50").replace("le=(10)", "le=10"),
        "cog.yaml": 'predict: "predict.py:Predictor"\n',
    })
    assert source_findings(tmp_path, "0.22.0") == []
    assert source_findings(tmp_path, "0.15.8") == []
    # description= a constant: left out before 0.19, read from 0.19 on
    (dropped,) = source_findings(tmp_path, "0.18.0")
    assert dropped.fails and "description= names a constant" in dropped.message


def test_what_the_static_parser_refuses_is_a_warning_under_0_16(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "predict.py": textwrap.dedent("""\
            from cog import BasePredictor, Input

            SEED = Input(description="Seed", default=1)

            class Predictor(BasePredictor):
                def predict(self, seed: int = SEED) -> str:
                    return ""
            """),
        "cog.yaml": 'predict: "predict.py:Predictor"\n',
    })
    (finding,) = source_findings(tmp_path, "0.16.12")
    assert not finding.fails
    assert str(finding) == (
        "predict.py:6: Cog 0.16.12 builds this, but Cog 0.17 and later refuse it: parameter "
        "'seed': default `SEED` cannot be statically resolved"
    )
    # under a static pin it is the schema's error, not the lint's
    assert source_findings(tmp_path, "0.22.0") == []


def test_a_registry_call_site_that_is_not_a_literal(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "predict.py": textwrap.dedent("""\
            from cog import BasePredictor, Input

            DEFAULT = 7.5

            class Inputs:
                @staticmethod
                def guidance(default: float) -> Input:
                    return Input(description="Guidance", default=default)

            class Predictor(BasePredictor):
                def predict(self, g: float = Inputs.guidance(DEFAULT)) -> str:
                    return ""
            """),
        "cog.yaml": 'predict: "predict.py:Predictor"\n',
    })
    (finding,) = source_findings(tmp_path, "0.22.0")
    assert finding.fails and finding.line == 11
    assert finding.message == (
        "input 'g': at the call Inputs.guidance(...), default=DEFAULT is not a literal, and "
        "Cog 0.22.0 ignores it (only a literal there replaces the method's default); write "
        "the literal: default=7.5"
    )


def test_predict_and_train_sharing_a_choices_name(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "predict.py": textwrap.dedent("""\
            from cog import BasePredictor, Input

            class Predictor(BasePredictor):
                def predict(self, s: str = Input(description="S", choices=["a", "b"])) -> str:
                    return s
            """),
        "train.py": textwrap.dedent("""\
            from cog import Input, Path

            def train(s: str = Input(description="S", choices=["x", "y"])) -> Path:
                return Path("w")
            """),
        "cog.yaml": 'predict: "predict.py:Predictor"\ntrain: "train.py:train"\n',
    })
    (finding,) = source_findings(tmp_path, "0.22.0")
    assert finding.fails and (finding.file, finding.line) == ("train.py", 3)
    assert "publishes predict's choices for both" in finding.message
    doc = generate_schema(tmp_path, "0.22.0")
    assert doc["components"]["schemas"]["s"]["enum"] == ["a", "b"]
    (warning,) = source_findings(tmp_path, "0.16.12")
    assert not warning.fails


# --------------------------------------------------------------------------- the lint


def test_the_lint_command_fails_under_a_static_pin_and_warns_under_0_16(make_repo, cli):
    predict = PREDICT.replace("from settings import HELP, SEED\n", "")
    predict = predict.replace("description=HELP, default=SEED", 'description="Seed", default=4')
    predict = predict.replace("le=(10)", "le=10")
    root = make_repo({
        "models/fam/predict.py": predict,
        "pyproject.toml": '[tool.cogfleet]\ncog-version = "0.22.0"\n',
        "models/fam/variants.yaml": (
            "alpha:\n  model: acme/alpha\n  variables: {steps: 4}\n"
            "beta:\n  model: acme/beta\n  cog_version: \"0.15.8\"\n  variables: {steps: 8}\n"
        ),
    })
    failed = cli("lint", "alpha", cwd=root)
    assert failed.code == ExitCode.CHECKS_FAILED
    assert failed.out.splitlines() == [
        "models/fam/predict.py:10: input 'steps': le=MAX_STEPS is not a literal, and Cog "
        "0.22.0 (pyproject.toml:2) leaves it out (the input has no maximum); write the "
        "literal: le=50"
    ]
    warned = cli("lint", "beta", cwd=root)
    assert warned.code == ExitCode.OK
    assert warned.out.splitlines() == ["beta: ok"]
    assert (
        "warning: beta: models/fam/predict.py:10: input 'steps': le=MAX_STEPS is not a "
        "literal: Cog 0.15.8 (models/fam/variants.yaml:6) uses its value (50), but Cog 0.17 "
        "and later leave it out"
    ) in warned.err


def test_a_template_finding_names_the_template_line(make_repo, cli):
    template = PREDICT.replace("from settings import HELP, SEED\n", "{# a comment #}\n")
    template = template.replace("description=HELP, default=SEED", 'description="S", default=4')
    template = template.replace("le=(10)", "le={{ steps }}")
    root = make_repo({"models/fam/predict.py": None, "models/fam/predict.py.j2": template})
    result = cli("lint", "alpha", cwd=root)
    assert result.code == ExitCode.CHECKS_FAILED
    assert "\nmodels/fam/predict.py.j2:11: input 'steps': le=MAX_STEPS" in result.out


def test_the_lint_step_fails_or_warns_by_the_variants_pin(make_repo, cli, tmp_path):
    import replicate

    from cogfleet.server._embedded import LocalServer
    from tests.test_pipeline import Pusher, create_model, steps

    root = make_repo({
        "models/fam/predict.py": PREDICT_PY_WITH_A_NAME,
        "models/fam/variants.yaml": (
            "alpha:\n  model: acme/alpha\n  variables: {steps: 4}\n"
            "beta:\n  model: acme/beta\n  cog_version: \"0.15.8\"\n  variables: {steps: 8}\n"
        ),
    })
    with LocalServer(state_dir=tmp_path / "state") as server:
        push = Pusher(cli, root, server)
        failed, report = push("test", "alpha", "--env", "current")
        assert failed.code == ExitCode.CHECKS_FAILED
        assert steps(report)["lint"] == "failed"
        lint = report["steps"][0]["message"]
        assert lint.startswith("models/fam/predict.py:11: input 'steps': le=MAX_STEPS is not a")
        assert "leaves it out (the input has no maximum)" in lint
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        create_model(client, "acme/beta")
        warned, report = push("test", "beta", "--env", "current")
        assert warned.code == ExitCode.OK, warned.out + warned.err
        assert steps(report)["lint"] == "passed", warned.err
        lint = report["steps"][0]["message"]
        assert lint.startswith("ruff, cog.yaml and config are clean; warning: models/fam/")
        assert "Cog 0.15.8 (models/fam/variants.yaml:6) uses its value (4)" in lint
        # the local server made the version's schema by the pin's rules (the SDK's document)
        version = client.models.get("acme/beta-test").versions.list()[0]
        assert version.cog_version == "0.15.8"
        expected = generate_schema(root / ".cogfleet" / "build" / "beta", "0.15.8")
        assert version.openapi_schema == expected
        assert expected["components"]["schemas"]["Input"]["properties"]["steps"]["maximum"] == 4


def test_safe_push_in_one_cog_folder_lints_by_its_cog_version(cli, tmp_path):
    from cogfleet.server._embedded import LocalServer

    write_files(tmp_path / "echo", {
        "cog.yaml": 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n',
        "predict.py": PREDICT.replace("from settings import HELP, SEED\n", "")
        .replace("description=HELP, default=SEED", 'description="Seed", default=4')
        .replace("le=(10)", "le=10"),
    })
    report = tmp_path / "report.json"
    with LocalServer(state_dir=tmp_path / "state") as server:
        result = cli("safe-push", "acme/echo", "--cog-version", "0.22.0", "--local-url",
                     server.base_url, "--report-json", str(report), cwd=tmp_path / "echo")
    assert result.code == ExitCode.CHECKS_FAILED
    lint = json.loads(report.read_text())["steps"][0]
    assert (lint["name"], lint["status"]) == ("lint", "failed")
    assert lint["message"].startswith(
        "predict.py:10: input 'steps': le=MAX_STEPS is not a literal, and Cog 0.22.0 "
        "(--cog-version) leaves it out"
    )
