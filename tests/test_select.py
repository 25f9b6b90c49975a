"""`cogfleet select` and script/select-model (model-ci-template compatible)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from cogfleet import ExitCode
from tests.conftest import REPO_ROOT


def test_select_writes_root_files(make_repo, cli):
    root = make_repo({"models/fam/requirements.txt": "pillow\n",
                      "templates/cog.yaml.j2": "build:\n  python_version: 3.11\n"
                      "  python_requirements: requirements.txt\npredict: predict.py:Predictor\n"})
    result = cli("select", "alpha", cwd=root)
    assert result.code == ExitCode.OK, result.err
    cog = yaml.safe_load((root / "cog.yaml").read_text())
    assert cog["predict"] == ".cogfleet/build/alpha/predict.py:Predictor"
    assert cog["build"]["python_requirements"] == ".cogfleet/build/alpha/requirements.txt"
    assert cog["build"]["python_version"] == "3.11"
    assert (root / cog["predict"].split(":")[0]).is_file()
    config = yaml.safe_load((root / "cog-safe-push.yaml").read_text())
    assert config["model"] == "acme/alpha"


def test_select_list(make_repo, cli):
    root = make_repo()
    assert cli("select", "--list", cwd=root).out.splitlines() == ["alpha", "beta"]


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
