"""Adopting a repo whose select script concatenates the overlay onto the base with ``cat``.

``cat cog.yaml.template > cog.yaml; cat model-cog-configs/$1.yaml >> cog.yaml``: the
rendered cog.yaml must be those bytes (comments, blank lines, CRLF line ends and all),
and a key both files set is what Cog would see: a duplicate, named in the overlay.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from tests.conftest import after_select_script, write_files

SELECT = """\
#!/bin/bash
if [ -z $1 ]; then
    echo "Usage: ./script/select.sh <model>"
    exit 1
fi
cat cog.yaml.template > cog.yaml
cat model-cog-configs/$1.yaml >> cog.yaml
cp safe-push-configs/$1.yaml cog-safe-push.yaml
"""

BASE = (
    "# Configuration for Cog\r\n\r\nbuild:\r\n  # a GPU model\r\n  gpu: false\r\n"
    "  python_version: '3.11'\r\n"
)

PREDICT = """\
from cog import BasePredictor


class DevPredictor(BasePredictor):
    def predict(self, text: str = "x") -> str:
        return text


class SchnellPredictor(DevPredictor):
    '''The same model under the fast variant name.'''
"""

FILES = {
    "script/select.sh": SELECT,
    "cog.yaml.template": BASE,
    "model-cog-configs/dev.yaml": 'predict: "predict.py:DevPredictor"\n',
    "model-cog-configs/schnell.yaml": '\n# the fast one\npredict: "predict.py:SchnellPredictor"\n',
    "predict.py": PREDICT,
    "safe-push-configs/dev.yaml": "model: acme/flux-dev\n",
    "safe-push-configs/schnell.yaml": "model: acme/flux-schnell\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "flux"
    for rel, text in FILES.items():  # bytes as written: CRLF stays CRLF
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(text.encode())
    return root


def test_init_declares_the_concatenation(repo, cli):
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert "note:" not in result.out
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"] == {
        "template": "cog.yaml.template",
        "overlay": "model-cog-configs/{variant}.yaml",
        "merge": "concatenate",
    }
    assert "appended to it (as script/select.sh concatenates them)" in (
        repo / "variants.yaml"
    ).read_text()


def test_render_writes_the_bytes_cat_writes(repo, cli, tmp_path):
    assert cli("init", cwd=repo).code == ExitCode.OK
    result = cli("render", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    for model in ("dev", "schnell"):
        rendered = (repo / ".cogfleet/build" / model / "cog.yaml").read_bytes()
        by_script = after_select_script(repo, "script/select.sh", model, tmp_path / model)
        assert rendered == by_script, model
    assert b"\r\n" in rendered and b"# the fast one" in rendered


def test_a_key_in_both_files_is_a_duplicate_named_in_the_overlay(repo, cli):
    assert cli("init", cwd=repo).code == ExitCode.OK
    write_files(repo, {"model-cog-configs/dev.yaml":
                       'predict: "predict.py:DevPredictor"\nbuild:\n  gpu: true\n'})
    result = cli("render", "dev", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith("error: model-cog-configs/dev.yaml:2: build: duplicate key"), \
        result.err
    # the same overlay merged as yq merges it is fine
    text = (repo / "variants.yaml").read_text().replace("  merge: concatenate\n", "")
    write_files(repo, {"variants.yaml": text})
    assert cli("render", "dev", cwd=repo).code == ExitCode.OK
    cog = yaml.safe_load((repo / ".cogfleet/build/dev/cog.yaml").read_text())
    assert cog["build"]["gpu"] is True


def test_merge_is_checked_in_variants_yaml(repo, cli):
    assert cli("init", cwd=repo).code == ExitCode.OK
    (repo / "variants.yaml").unlink()
    write_files(repo, {"variants.yaml": "family: flux\ndefaults:\n  template: cog.yaml.template\n"
                                        "variants:\n  dev: {merge: concatenate}\n"
                                        "  schnell: {merge: cat, overlay: "
                                        "model-cog-configs/schnell.yaml}\n"})
    result = cli("list", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert "variant 'dev': merge: concatenate needs an overlay" in result.err
    write_files(repo, {"variants.yaml": "family: flux\nvariants:\n  dev: {}\n  schnell: "
                                        "{merge: cat, template: cog.yaml.template, overlay: "
                                        "model-cog-configs/schnell.yaml}\n"})
    result = cli("list", cwd=repo)
    assert ("variant 'schnell': merge must be one of yq, replace-lists, concatenate, got 'cat'"
            in result.err)


MAKEFILE = """\
.PHONY: select
select:
\t@test -n "$(MODEL)" || (echo "usage: make select MODEL=<model>"; exit 1)
\tcat cog.yaml.template > cog.yaml
\tcat model-cog-configs/$(MODEL).yaml >> cog.yaml
\tcp safe-push-configs/$(MODEL).yaml cog-safe-push.yaml
"""


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_makefile_target_is_read_like_a_select_script(repo, cli, tmp_path):
    (repo / "script/select.sh").unlink()
    write_files(repo, {"Makefile": MAKEFILE})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert "select script Makefile" in result.out
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"]["overlay"] == "model-cog-configs/{variant}.yaml"
    assert cli("render", "schnell", cwd=repo).code == ExitCode.OK
    scratch = tmp_path / "made"
    shutil.copytree(repo, scratch, ignore=shutil.ignore_patterns(".cogfleet"))
    subprocess.run(["make", "-s", "select", "MODEL=schnell"], cwd=scratch, check=True)
    assert (repo / ".cogfleet/build/schnell/cog.yaml").read_bytes() == (
        scratch / "cog.yaml"
    ).read_bytes()
