"""`cogfleet select` and script/select-model (model-ci-template compatible)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from cogfleet._select import BLOCK_START
from tests.conftest import PREDICT_PY, REPO_ROOT, assert_select_sends_the_build


def test_select_writes_root_files(make_repo, cli):
    root = make_repo({"models/fam/requirements.txt": "pillow\n",
                      "models/fam/helpers.py": "X = 1\n",
                      "templates/cog.yaml.j2": "build:\n  python_version: 3.11\n"
                      "  python_requirements: requirements.txt\npredict: predict.py:Predictor\n"})
    result = cli("select", "alpha", cwd=root)
    assert result.code == ExitCode.OK, result.err
    text = (root / "cog.yaml").read_text()
    assert text.startswith("# written by `cogfleet select alpha` from models/fam")
    cog = yaml.safe_load(text)
    # references resolve from the root: the family's files are there, next to cog.yaml
    assert cog["predict"] == "predict.py:Predictor"
    assert cog["build"]["python_requirements"] == "requirements.txt"
    assert "python_version: 3.11" in text  # as written, never the float 3.1
    for name in ("predict.py", "requirements.txt", "helpers.py"):
        assert (root / name).read_bytes() == (root / "models/fam" / name).read_bytes()
    config = yaml.safe_load((root / "cog-safe-push.yaml").read_text())
    assert config["model"] == "acme/alpha"
    # `cog build` of the root sends the build folder's files: the other families, the
    # configs, templates and local state stay out
    (root / ".venv/lib").mkdir(parents=True)
    (root / ".venv/lib/x.py").write_text("")
    (root / "README.md").write_text("# the monorepo\n")
    assert_select_sends_the_build(root, "alpha")


def test_select_again_replaces_what_it_wrote_and_never_overwrites_other_files(make_repo, cli):
    root = make_repo({"models/other/variants.yaml": "gamma:\n  model: acme/gamma\n"
                                                     "  variables: {steps: 2}\n",
                      "models/other/predict.py": PREDICT_PY,
                      "models/other/gamma_only.py": "Y = 2\n",
                      "cog-safe-push-configs/gamma.yaml": "model: acme/gamma\n"})
    assert cli("select", "gamma", cwd=root).code == ExitCode.OK
    assert (root / "gamma_only.py").is_file()
    assert cli("select", "alpha", cwd=root).code == ExitCode.OK
    assert not (root / "gamma_only.py").exists()  # gamma's file went with its selection
    assert (root / "predict.py").is_file()
    block = (root / ".dockerignore").read_text()
    assert block.count(BLOCK_START) == 1  # replaced, not added again
    # a root file that select did not write stops it, naming the file
    (root / "predict.py").unlink()
    (root / ".cogfleet/select.json").unlink()
    (root / "predict.py").write_text("# mine\n")
    result = cli("select", "beta", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "predict.py exists in the repository root and was not written by cogfleet select" \
        in result.err
    assert (root / "predict.py").read_text() == "# mine\n"


def test_select_clear_removes_what_select_wrote(make_repo, cli):
    root = make_repo({"models/fam/helpers.py": "X = 1\n"})
    assert cli("select", "alpha", cwd=root).code == ExitCode.OK
    (root / "README.md").write_text("# mine\n")
    result = cli("select", "--clear", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert sorted(line.split()[1] for line in result.out.splitlines()) == [
        "cog-safe-push.yaml", "cog.yaml", "helpers.py", "predict.py",
    ]
    assert not (root / "helpers.py").exists() and not (root / "cog.yaml").exists()
    assert (root / "README.md").read_text() == "# mine\n"


def test_select_list(make_repo, cli):
    root = make_repo()
    assert cli("select", "--list", cwd=root).out.splitlines() == ["alpha", "beta"]


@pytest.mark.parametrize(("args", "named"), [
    (["alpha", "--list"], "VARIANT and --list"),
    (["alpha", "--clear"], "VARIANT and --clear"),
    (["--list", "--clear"], "--list and --clear"),
])
def test_select_takes_one_thing_to_do(make_repo, cli, args, named):
    root = make_repo()
    result = cli("select", *args, cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err == f"error: select: give one of VARIANT, --list or --clear, not {named}\n"
    assert not (root / "cog.yaml").exists() and result.out == ""


def test_select_unknown_variant(make_repo, cli):
    root = make_repo()
    result = cli("select", "nope", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR and "valid: alpha, beta" in result.err
    assert not (root / "cog.yaml").exists()


def test_select_model_script(make_repo):
    root = make_repo()
    (root / "script").mkdir()
    shutil.copy(REPO_ROOT / "script" / "select-model", root / "script" / "select-model")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    listed = subprocess.run(["script/select-model", "--list"], cwd=root, env=env,
                            capture_output=True, text=True, check=False)
    assert listed.returncode == 0 and listed.stdout.split() == ["alpha", "beta"]
    chosen = subprocess.run(["script/select-model", "beta"], cwd=root, env=env,
                            capture_output=True, text=True, check=False)
    assert chosen.returncode == 0, chosen.stderr
    assert yaml.safe_load((root / "cog-safe-push.yaml").read_text())["model"] == "acme/beta"
    bad = subprocess.run(["script/select-model"], cwd=root, env=env,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2


def test_root_files_are_gitignored():
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    assert "/cog.yaml" in ignored and "/cog-safe-push.yaml" in ignored


def test_select_clear_puts_back_a_committed_cog_yaml(make_repo, cli):
    # repos of the select-script shape often commit the last selected cog.yaml
    root = make_repo()
    (root / "cog.yaml").write_text("# committed\nrun: predict.py:Predictor\n")
    assert cli("select", "alpha", cwd=root).code == ExitCode.OK
    assert "select alpha" in (root / "cog.yaml").read_text()
    assert cli("select", "beta", cwd=root).code == ExitCode.OK
    result = cli("select", "--clear", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert "restored cog.yaml (as it was before the first select)" in result.out
    assert "removed cog.yaml" not in result.out
    assert (root / "cog.yaml").read_text() == "# committed\nrun: predict.py:Predictor\n"
    assert not (root / "cog-safe-push.yaml").exists()  # select wrote that one
    # a second clear has nothing left to put back
    again = cli("select", "--clear", cwd=root)
    assert again.code == ExitCode.OK and again.out == ""
    assert (root / "cog.yaml").read_text().startswith("# committed")
