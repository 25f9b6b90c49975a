"""Adopting select scripts that generate cog.yaml: sed, a heredoc, a python step.

``sed "s/MODEL_NAME/$1/g" cog.yaml.template > cog.yaml``, ``cat > cog.yaml <<EOF`` with
``$VARIABLES`` the script sets, or ``python -c`` replacing text: ``init`` runs the
script per config in a scratch copy, reads each cog.yaml it wrote back as a template
with literal text replaced (``replace:``), and keeps that only when rendering it gives
the script's bytes. What cannot be read so is refused in one line, with nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from tests.conftest import (
    DESCRIBED_PREDICTORS,
    after_select_script,
    assert_cog_build_context,
    write_files,
)

TEMPLATE = """\
# MODEL_NAME (acme/flux-MODEL_NAME): built by script/select-model
build:
  gpu: GPU_FLAG
  python_version: "3.11"
image: r8.im/acme/flux-MODEL_NAME
predict: "predict.py:PREDICTOR"
"""

SED_SELECT = """\
#!/bin/bash
set -euo pipefail
MODEL=$1
case "$MODEL" in
  small) PREDICTOR=Predictor; GPU=false ;;
  large) PREDICTOR=LargePredictor; GPU=true ;;
  *) echo "unknown model: $MODEL" >&2; exit 3 ;;
esac
sed -e "s/MODEL_NAME/$MODEL/g" -e "s/PREDICTOR/$PREDICTOR/" -e "s/GPU_FLAG/$GPU/" \\
  cog.yaml.template > cog.yaml
cp "cog-safe-push-configs/$MODEL.yaml" cog-safe-push.yaml
"""

FILES = {
    "script/select-model": SED_SELECT,
    "cog.yaml.template": TEMPLATE,
    "predict.py": DESCRIBED_PREDICTORS,
    "cog-safe-push-configs/small.yaml": "model: acme/small\n",
    "cog-safe-push-configs/large.yaml": "model: acme/large\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "sed"
    write_files(root, FILES)
    return root


def _renders_as_the_script(root: Path, cli, tmp_path: Path, script: str) -> None:
    result = cli("render", cwd=root)
    assert result.code == ExitCode.OK, result.err
    for name in ("small", "large"):
        assert (root / ".cogfleet/build" / name / "cog.yaml").read_bytes() == (
            after_select_script(root, script, name, tmp_path / f"{script.replace('/', '-')}-"
                                f"{name}")
        ), name


def test_init_reads_a_sed_script_as_the_template_with_text_replaced(repo, cli, tmp_path):
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert "text it replaces: GPU_FLAG, MODEL_NAME, PREDICTOR" in result.out
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"] == {"template": "cog.yaml.template",
                                    "replace": {"MODEL_NAME": "{variant}"}}
    assert variants["variants"] == {
        "large": {"replace": {"GPU_FLAG": "true", "PREDICTOR": "LargePredictor"}},
        "small": {"replace": {"GPU_FLAG": "false", "PREDICTOR": "Predictor"}},
    }
    assert not (repo / "cog.yaml").exists()  # the script ran in a scratch copy
    _renders_as_the_script(repo, cli, tmp_path, "script/select-model")
    listed = json.loads(cli("list", "--json", cwd=repo).out)
    assert listed[0]["replace"] == {"GPU_FLAG": "true", "MODEL_NAME": "large",
                                    "PREDICTOR": "LargePredictor"}
    assert cli("lint", "small", "large", cwd=repo).code == ExitCode.OK
    # an edit to the template reaches every variant
    write_files(repo, {"cog.yaml.template": TEMPLATE.replace('"3.11"', '"3.12"')})
    _renders_as_the_script(repo, cli, tmp_path / "again", "script/select-model")


@pytest.mark.slow
def test_a_sed_variant_is_tested(repo, cli, tmp_path):
    write_files(repo, {"cog-safe-push-configs/large.yaml": (
        "model: acme/large\npredict:\n  test_cases:\n    - inputs: {text: ab}\n"
        "      exact_string: abab\n  fuzz:\n    iterations: 0\n")})
    assert cli("init", cwd=repo).code == ExitCode.OK
    report = tmp_path / "report.json"
    result = cli("test", "large", "--report-json", str(report), cwd=repo)
    cases = json.loads(report.read_text())["cases"]
    assert [(c["status"], c["message"]) for c in cases] == [("passed", "output is 'abab'")], (
        result.out + result.err
    )


HEREDOC_SELECT = """\
#!/bin/bash
set -e
MODEL="$1"
if [ "$MODEL" = small ]; then
  export PREDICTOR=Predictor
elif [ "$MODEL" = large ]; then
  export PREDICTOR=LargePredictor
else
  echo "unknown model $MODEL" >&2; exit 2
fi
cat > cog.yaml <<EOF
# generated for $1
build:
  python_version: "3.11"
predict: "predict.py:${PREDICTOR}"
image: "r8.im/acme/$MODEL"
EOF
"""


def test_init_writes_a_heredoc_as_the_template(repo, cli, tmp_path):
    write_files(repo, {"script/select-model": HEREDOC_SELECT, "cog.yaml.template": None})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert "its heredoc, written to cog.yaml.template as the template" in result.out
    assert "wrote cog.yaml.template" in result.out
    assert (repo / "cog.yaml.template").read_text() == HEREDOC_SELECT.split("<<EOF\n")[1].split(
        "EOF\n")[0]
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    # the script's variables as envsubst values ($1 is no variable name: replaced as text)
    assert variants["defaults"]["envsubst"] == {"MODEL": "{variant}"}
    assert variants["defaults"]["replace"] == {"$1": "{variant}"}
    assert variants["variants"]["large"] == {"envsubst": {"PREDICTOR": "LargePredictor"}}
    assert variants["own_files"] == ["cog.yaml.template"]
    _renders_as_the_script(repo, cli, tmp_path, "script/select-model")
    for name in ("small", "large"):  # the template init wrote is cogfleet's, not the model's
        assert_cog_build_context(repo / ".cogfleet/build" / name,
                                 tmp_path / f"script-select-model-{name}",
                                 own=("variants.yaml", "cog.yaml.template"))


@pytest.mark.parametrize(("step", "shape"), [
    ('python3 -c "import sys; t = open(\'cog.yaml.template\').read(); '
     'open(\'cog.yaml\', \'w\').write(t.replace(\'MODEL_NAME\', sys.argv[1])'
     '.replace(\'PREDICTOR\', sys.argv[2]).replace(\'GPU_FLAG\', sys.argv[3]))" '
     '"$MODEL" "$PREDICTOR" "$GPU"', "python -c"),
    ('cp cog.yaml.template cog.yaml\nsed -i "s/MODEL_NAME/$MODEL/g; s/PREDICTOR/$PREDICTOR/; '
     's/GPU_FLAG/$GPU/" cog.yaml', "sed -i"),
])
def test_other_steps_that_replace_text_are_read_the_same_way(repo, cli, tmp_path, step, shape):
    script = SED_SELECT.replace(
        'sed -e "s/MODEL_NAME/$MODEL/g" -e "s/PREDICTOR/$PREDICTOR/" -e "s/GPU_FLAG/$GPU/" \\\n'
        '  cog.yaml.template > cog.yaml\n', step + "\n")
    assert script != SED_SELECT
    write_files(repo, {"script/select-model": script})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, (shape, result.err)
    _renders_as_the_script(repo, cli, tmp_path, "script/select-model")


@pytest.mark.parametrize(("change", "message"), [
    # sed without g leaves the second MODEL_NAME: not the template with text replaced
    ({"script/select-model": SED_SELECT.replace("/$MODEL/g", "/$MODEL/")},
     "script/select-model large wrote a cog.yaml that is not a file it names "
     "(cog.yaml.template) nor its heredoc with text replaced in every place"),
    # a YAML re-dump: key order and quoting are the writer's
    ({"script/select-model": "#!/bin/bash\npython3 -c \"import sys, yaml; print(yaml.safe_dump("
      "{'build': {'gpu': sys.argv[1] == 'large'}, 'predict': 'predict.py:Predictor'}))\" "
      "$1 > cog.yaml\n"},
     "script/select-model large wrote a cog.yaml that is not a file it names (no file)"),
    # the heredoc runs a command: its output is not the script's to name
    ({"script/select-model": HEREDOC_SELECT.replace("# generated for $1",
                                                    "# generated $(date +%s)"),
      "cog.yaml.template": None},
     "script/select-model large writes a cog.yaml that differs from one run to the next "
     "(a date, a random value, $HOME?); write variants.yaml by hand"),
    # one literal heredoc per variant: one template cannot be both
    ({"script/select-model": "#!/bin/bash\ncase $1 in\n  small) cat > cog.yaml <<'EOF'\n"
      "predict: \"predict.py:Predictor\"\nEOF\n  ;;\n  large) cat > cog.yaml <<'EOF'\n"
      "predict: \"predict.py:LargePredictor\"\nconcurrency:\n  max: 1\nEOF\n  ;;\nesac\n",
      "cog.yaml.template": None},
     "script/select-model writes cog.yaml from one heredoc for large and another for small"),
    # $HOME is whoever runs the script's, not a value of the variant (a second run with
    # another $HOME shows it)
    ({"script/select-model": HEREDOC_SELECT.replace("# generated for $1", "# in $HOME"),
      "cog.yaml.template": None},
     "script/select-model large writes a cog.yaml that differs from one run to the next "
     "(a date, a random value, $HOME?)"),
])
def test_what_cannot_be_read_back_is_refused_in_one_line(repo, cli, change, message):
    write_files(repo, change)
    before = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*"))
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR, result.out
    assert result.err.startswith(f"error: cannot adopt this repo: {message}"), result.err
    assert len(result.err.strip().splitlines()) == 1
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == before


@pytest.mark.parametrize(("value", "message"), [
    ("[a]", "defaults: replace must be a mapping"),
    ("{'': x}", "replace: '' is not text to replace"),
    ("{A: [1]}", "replace: A: expected text, got list"),
])
def test_a_bad_replace_is_one_line_naming_variants_yaml(repo, cli, value, message):
    assert cli("init", cwd=repo).code == ExitCode.OK
    text = (repo / "variants.yaml").read_text()
    write_files(repo, {"variants.yaml": text.replace(
        'replace: {"MODEL_NAME": "{variant}"}', f"replace: {value}")})
    result = cli("list", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith("error: variants.yaml") and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1


# -- a shape read from the text, then edited in place: run it, or refuse it --------------


def test_a_copied_cog_yaml_edited_in_place_is_read_back_per_variant(repo, cli, tmp_path):
    write_files(repo, {
        "script/select-model": (
            "#!/bin/bash\nset -e\ncp configs/$1/cog.yaml cog.yaml\n"
            "sed -i \"s/__MODEL__/$1/g\" cog.yaml\n"
        ),
        "configs/small/cog.yaml": TEMPLATE.replace("MODEL_NAME", "__MODEL__")
        .replace("PREDICTOR", "Predictor").replace("GPU_FLAG", "false"),
        "configs/large/cog.yaml": TEMPLATE.replace("MODEL_NAME", "__MODEL__")
        .replace("PREDICTOR", "LargePredictor").replace("GPU_FLAG", "true"),
        "cog.yaml.template": None,
    })
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"] == {"template": "configs/{variant}/cog.yaml",
                                    "replace": {"__MODEL__": "{variant}"}}
    _renders_as_the_script(repo, cli, tmp_path, "script/select-model")


def test_envsubst_into_a_pipe_is_run_and_read_back(repo, cli, tmp_path):
    write_files(repo, {
        "script/select-model": (
            "#!/bin/bash\nset -e\nTEMPLATE=cog.yaml.tpl\n"
            "case $1 in small) export PREDICTOR=Predictor;; large) export PREDICTOR="
            "LargePredictor;; *) exit 1;; esac\n"
            "envsubst < \"$TEMPLATE\" | tee cog.yaml > /dev/null\n"
        ),
        "cog.yaml.tpl": "build:\n  python_version: '3.11'\npredict: \"predict.py:${PREDICTOR}\"\n",
        "cog.yaml.template": None,
    })
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["variants"]["large"] == {"envsubst": {"PREDICTOR": "LargePredictor"}}
    _renders_as_the_script(repo, cli, tmp_path, "script/select-model")
    # a $PATH added to the template later stays as written (not $P... replaced)
    write_files(repo, {"cog.yaml.tpl": (repo / "cog.yaml.tpl").read_text()
                       + "# PATH is $PATH, $PREDICTORS is another\n"})
    assert cli("render", "large", cwd=repo).code == ExitCode.OK
    assert (repo / ".cogfleet/build/large/cog.yaml").read_text().endswith(
        "# PATH is $PATH, $PREDICTORS is another\n")


@pytest.mark.parametrize(("script", "message"), [
    ("yq eval-all 'select(fileIndex == 0) *+ select(fileIndex == 1)' cog.yaml.template "
     "model-cog-configs/$1.yaml > cog.yaml\nsed -i \"s/MODEL_NAME/$1/g\" cog.yaml\n",
     "script/select-model: edits cog.yaml after writing it (sed -i \"s/MODEL_NAME/$1/g\" "
     "cog.yaml); cogfleet cannot render that from the yq merge"),
    ("cat cog.yaml.template > cog.yaml\ncat model-cog-configs/$1.yaml >> cog.yaml\n"
     "echo \"image: r8.im/acme/$1\" >> cog.yaml\n",
     "script/select-model large wrote a cog.yaml that is not a file it names "
     "(cog.yaml.template, model-cog-configs/large.yaml) nor its heredoc"),
])
def test_an_edit_after_a_shape_read_from_the_text_is_not_missed(repo, cli, script, message):
    write_files(repo, {"script/select-model": "#!/bin/bash\n" + script,
                       "model-cog-configs/small.yaml": "concurrency:\n  max: 1\n",
                       "model-cog-configs/large.yaml": "concurrency:\n  max: 1\n"})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR, result.out
    assert result.err.startswith("error: ") and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (repo / "variants.yaml").exists()
