"""Lint as the repository lints: ruff with the config ruff finds, on the source files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from cogfleet import ExitCode
from cogfleet._ruff import template_lines
from tests import mci_repo
from tests.conftest import PREDICT_PY, write_files


@pytest.fixture
def adopted(tmp_path: Path) -> Path:
    root = tmp_path / "flux"
    write_files(root, dict(mci_repo.FILES))
    write_files(root, {"variants.yaml": mci_repo.VARIANTS_YAML,
                       "pyproject.toml": mci_repo.PYPROJECT})
    return root


def test_the_repos_ruff_toml_decides(adopted, cli):
    # predict.py imports after setting the environment (E402), which ruff's defaults flag
    # and the repo's ruff.toml ignores
    isolated = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E4", "predict.py"],
        cwd=adopted, capture_output=True, text=True, check=False,
    )
    assert "E402" in isolated.stdout
    result = cli("lint", cwd=adopted)
    assert result.code == ExitCode.OK, result.out + result.err
    assert result.out.splitlines() == ["dev: ok", "krea-dev: ok", "schnell: ok"]


def test_findings_name_the_source_file_and_line(adopted, cli):
    # N802 is only selected by the repo's ruff.toml
    (adopted / "predict.py").write_text(mci_repo.PREDICT_PY + "\n\ndef LoudName():\n    pass\n")
    result = cli("lint", "dev", cwd=adopted)
    assert result.code == ExitCode.CHECKS_FAILED
    line = mci_repo.PREDICT_PY.count("\n") + 3
    assert result.out.splitlines() == [
        f"predict.py:{line}:5: N802 Function name `LoudName` should be lowercase"
    ]
    # a helper module is not what cog.yaml runs: cog-safe-push lints the entry file only
    (adopted / "predict.py").write_text(mci_repo.PREDICT_PY)
    (adopted / "common.py").write_text("import os\nSTYLE = 'flux'\n")
    assert cli("lint", "dev", cwd=adopted).code == ExitCode.OK


def test_a_config_nearer_the_file_wins(make_repo, cli):
    root = make_repo({
        "pyproject.toml": "[tool.ruff.lint]\nselect = ['F']\n",
        "models/fam/.ruff.toml": "[lint]\nselect = ['E', 'F']\n",
        "models/fam/predict.py": PREDICT_PY.replace(
            "STEPS = 4", "STEPS = 4  ;  OTHER = 1"
        ),
    })
    result = cli("lint", "alpha", cwd=root)
    assert result.code == ExitCode.CHECKS_FAILED
    assert result.out.startswith("models/fam/predict.py:3:12: E702"), result.out
    (root / "models/fam/.ruff.toml").unlink()
    assert cli("lint", "alpha", cwd=root).code == ExitCode.OK  # pyproject.toml: F only


def test_a_rendered_template_is_reported_against_the_template(make_repo, cli):
    template = (
        "from cog import BasePredictor, Input\n"  # 1
        "\n"  # 2
        "{% for n in range(steps) %}\n"  # 3
        "STEP_{{ n }} = {{ n }}\n"  # 4
        "{% endfor %}\n"  # 5
        "\n"  # 6
        "class Predictor(BasePredictor):\n"  # 7
        "    def predict(self, prompt: str = Input(description='p')) -> str:\n"  # 8
        "        return undefined_name + prompt\n"  # 9
    )
    root = make_repo({"models/fam/predict.py": None, "models/fam/predict.py.j2": template,
                      "models/fam/pyproject.toml": "[tool.ruff.lint]\nselect = ['F']\n"})
    result = cli("lint", "beta", cwd=root)  # beta: steps 8, so the loop adds 8 lines
    assert result.code == ExitCode.CHECKS_FAILED
    assert result.out.splitlines() == [
        "models/fam/predict.py.j2:9:16: F821 Undefined name `undefined_name`"
    ]


@pytest.mark.parametrize("trim", [False, True])
def test_template_lines_follow_jinja_statements_and_loops(trim):
    template = (
        "a\n{% if x %}\nb = {{ x }}\n{% endif %}\nc\n{# note #}\n"
        "{% for i in l %}\nd{{ i }}\n{% endfor %}\ne\n"
    )
    env = jinja2.Environment(trim_blocks=trim, keep_trailing_newline=True)
    rendered = env.from_string(template).render(x=1, l=[1, 2, 3])
    lines = template_lines(template, rendered)
    where = {text: lines[i] for i, text in enumerate(rendered.splitlines()) if text}
    assert where == {"a": 1, "b = 1": 3, "c": 5, "d1": 8, "d2": 8, "d3": 8, "e": 10}


def test_safe_push_lints_with_the_folders_config(tmp_path, cli):
    folder = tmp_path / "single"
    write_files(folder, {
        "cog.yaml": "build:\n  python_version: '3.11'\npredict: predict.py:Predictor\n",
        "predict.py": "import os\n" + PREDICT_PY,
        "ruff.toml": "[lint]\nselect = ['F']\n",
    })
    result = cli("safe-push", "acme/single", "--no-push", cwd=folder)
    assert result.code == ExitCode.CHECKS_FAILED
    assert "predict.py:1:8: F401" in result.err + result.out
    assert ".cogfleet" not in result.err + result.out


def test_an_import_below_code_passes_as_in_cog_safe_push(make_repo, cli):
    """cog-safe-push runs ruff with ``--ignore=E402``: a predictor that sets the environment
    before its imports passes even where the configuration selects E402."""
    root = make_repo({
        "models/fam/pyproject.toml": "[tool.ruff.lint]\nselect = ['E4', 'E7', 'F']\n",
        "models/fam/predict.py": 'import os\n\nos.environ["HF_HOME"] = "/src/hf"\n' + PREDICT_PY
        + "\n\nimport json  ;  DUMPS = json.dumps\n",
    })
    result = cli("lint", "alpha", cwd=root)
    assert result.code == ExitCode.CHECKS_FAILED
    # E702 (two statements on a line) is reported; E402 (imports below code) is not
    assert [line.split(": ")[1].split()[0] for line in result.out.splitlines()] == ["E702"]
