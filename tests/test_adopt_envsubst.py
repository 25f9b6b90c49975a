"""Adopting a repo whose select script writes cog.yaml with ``envsubst``.

The shape: ``script/select-model MODEL`` exports the variables of that model, then runs
``envsubst < cog.yaml.tpl > cog.yaml``; one cog-safe-push config per model. ``cogfleet
init`` learns each model's values by running the script (in a scratch copy) and the
rendered cog.yaml must be the one the script writes with the real ``envsubst``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from cogfleet._render import envsubst
from tests.conftest import TWO_PREDICTORS, after_select_script, write_files

SELECT = """\
#!/bin/bash
set -eu
MODEL=$1
if [[ "$MODEL" == "small" ]]; then
    export PREDICTOR=Predictor
    export GPU=false
elif [[ "$MODEL" == "large" ]]; then
    export PREDICTOR=LargePredictor
    export GPU="true"
else
    echo "Unknown model: $MODEL"
    exit 0
fi
envsubst < cog.yaml.tpl > cog.yaml
"""

TEMPLATE = """\
build:
  gpu: ${GPU}
  python_version: "3.11"
predict: "predict.py:$PREDICTOR"
"""

PREDICT = TWO_PREDICTORS

FILES = {
    "script/select-model": SELECT,
    "cog.yaml.tpl": TEMPLATE,
    "cog.yaml": TEMPLATE.replace("${GPU}", "false").replace("$PREDICTOR", "Predictor"),
    "predict.py": PREDICT,
    "cog-safe-push-configs/small.yaml": "model: acme/small\n",
    "cog-safe-push-configs/large.yaml": "model: acme/large\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "clip"
    write_files(root, FILES)
    (root / "script/select-model").chmod(0o755)
    return root


def test_init_learns_each_models_values_from_the_select_script(repo, cli):
    before = {p: (repo / p).read_bytes() for p in FILES}
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert "select script script/select-model (envsubst < cog.yaml.tpl)" in result.out
    assert {p: (repo / p).read_bytes() for p in FILES} == before  # nothing rewritten
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"] == {"template": "cog.yaml.tpl"}
    assert variants["variants"] == {
        "large": {"envsubst": {"GPU": "true", "PREDICTOR": "LargePredictor"}},
        "small": {"envsubst": {"GPU": "false", "PREDICTOR": "Predictor"}},
    }
    listed = cli("list", cwd=repo)
    assert [line.split()[0] for line in listed.out.splitlines()] == ["large", "small"]


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="needs GNU gettext's envsubst")
def test_render_writes_the_cog_yaml_the_select_script_wrote(repo, cli, tmp_path):
    assert cli("init", cwd=repo).code == ExitCode.OK
    assert cli("render", cwd=repo).code == ExitCode.OK
    for model in ("small", "large"):
        rendered = (repo / ".cogfleet/build" / model / "cog.yaml").read_text()
        by_script = after_select_script(repo, "script/select-model", model, tmp_path / model)
        assert rendered == by_script.decode(), model
    # and `cogfleet select` leaves the root as the script did
    assert cli("select", "large", cwd=repo).code == ExitCode.OK
    assert (repo / "cog.yaml").read_text().endswith(
        after_select_script(
            repo, "script/select-model", "large", tmp_path / "again"
        ).decode()
    )


def test_a_config_the_script_does_not_select_is_refused_in_one_line(repo, cli):
    write_files(repo, {"cog-safe-push-configs/retired.yaml": "model: acme/retired\n"})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.strip().splitlines() == [
        "error: cannot adopt this repo: script/select-model retired did not run envsubst "
        "(exit 0); a config in cog-safe-push-configs/ is a variant only if the script "
        "selects it (remove the config or teach the script)"
    ]
    assert not (repo / "variants.yaml").exists()


def test_a_script_that_fails_is_named_with_its_exit_code(repo, cli):
    (repo / "script/select-model").write_text(SELECT.replace("MODEL=$1\n", "MODEL=$1\nexit 3\n"))
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith(
        "error: cannot adopt this repo: script/select-model large did not run envsubst (exit 3)"
    )
    assert not (repo / "variants.yaml").exists()


def test_envsubst_replaces_only_the_names_it_is_given() -> None:
    text = 'a: "$A"\nb: ${B}\nc: $AB\nd: $HOME/x\ne: $$A\n'
    assert envsubst(text, {"A": "1", "B": "two words"}) == (
        'a: "1"\nb: two words\nc: $AB\nd: $HOME/x\ne: $1\n'
    )
    assert envsubst(text, {}) == text


def test_the_scratch_copy_leaves_out_state_and_large_files(repo, cli):
    (repo / ".cogfleet").mkdir()
    (repo / ".cogfleet/huge.bin").write_bytes(b"0" * 10)
    (repo / "weights.bin").write_bytes(b"0" * 6_000_000)
    # the script fails when it sees either, so a clean init proves they were left out
    (repo / "script/select-model").write_text(SELECT.replace(
        "MODEL=$1\n", "MODEL=$1\n[ -e weights.bin ] && exit 9\n[ -e .cogfleet ] && exit 9\n"))
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert os.path.getsize(repo / "weights.bin") == 6_000_000


@pytest.mark.parametrize("where", ["scripts/select_model.sh", "select-model.sh", "bin/select"])
def test_a_select_script_under_another_usual_name_is_found(repo, cli, where):
    (repo / where).parent.mkdir(exist_ok=True)
    (repo / "script/select-model").rename(repo / where)
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert f"select script {where} (envsubst < cog.yaml.tpl)" in result.out
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["variants"]["large"] == {
        "envsubst": {"GPU": "true", "PREDICTOR": "LargePredictor"}
    }


def test_a_predictor_the_script_copies_beside_envsubst_is_a_file_of_the_variant(repo, cli):
    write_files(repo, {
        "script/select-model": SELECT.replace(
            "envsubst < cog.yaml.tpl > cog.yaml\n",
            "envsubst < cog.yaml.tpl > cog.yaml\ncp \"predictors/${MODEL}.py\" predict.py\n"),
        "predictors/small.py": PREDICT,
        "predictors/large.py": PREDICT.replace("text * times", "text * times * 2"),
    })
    (repo / "predict.py").unlink()
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((repo / "variants.yaml").read_text())["variants"]
    assert variants["large"]["files"] == {"predict.py": "predictors/large.py"}
    assert variants["small"]["files"] == {"predict.py": "predictors/small.py"}
    assert cli("render", "large", cwd=repo).code == ExitCode.OK
    assert "text * times * 2" in (repo / ".cogfleet/build/large/predict.py").read_text()
