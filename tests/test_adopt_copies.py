"""Adopting a repo whose select script copies a whole cog.yaml per variant.

The shape: ``script/select-model MODEL`` checks the name in a ``case`` statement, then
``cp configs/$1/cog.yaml cog.yaml`` (or ``cp cog-$1.yaml cog.yaml``) and copies the
variant's cog-safe-push config. There is no base and no overlay: each variant's own
file is its template, and rendering must give the bytes the script copies.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from tests.conftest import write_files

SELECT = """\
#!/bin/bash
set -e
case "$1" in
  small|large) ;;
  *) echo "unknown model: $1" >&2; exit 1 ;;
esac
cp "configs/${1}/cog.yaml" ./cog.yaml
cp cog-safe-push-configs/$1.yaml cog-safe-push.yaml
"""

PREDICT = """\
from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, text: str = "x") -> str:
        return text


class LargePredictor(BasePredictor):
    def predict(self, text: str = "x", times: int = 2) -> str:
        return text * times
"""


def _cog(predictor: str, gpu: str) -> str:
    # a comment, quoting and a key order a YAML round trip would not keep
    return (f"# the {predictor} model\nbuild:\n  gpu: {gpu}\n  python_version: '3.11'\n"
            f"run: \"predict.py:{predictor}\"\n")


FILES = {
    "script/select-model": SELECT,
    "configs/small/cog.yaml": _cog("Predictor", "false"),
    "configs/large/cog.yaml": _cog("LargePredictor", "true"),
    "predict.py": PREDICT,
    "cog-safe-push-configs/small.yaml": "model: acme/small\n",
    "cog-safe-push-configs/large.yaml": "model: acme/large\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "copies"
    write_files(root, FILES)
    return root


def _selected_by_the_script(root: Path, model: str, scratch: Path) -> bytes:
    shutil.copytree(root, scratch, ignore=shutil.ignore_patterns(".cogfleet"))
    subprocess.run(["bash", "script/select-model", model], cwd=scratch, check=True)
    return (scratch / "cog.yaml").read_bytes()


def test_init_takes_each_variants_own_cog_yaml_as_its_template(repo, cli):
    before = {p: (repo / p).read_bytes() for p in FILES}
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert "copies configs/{variant}/cog.yaml to cog.yaml" in result.out
    assert {p: (repo / p).read_bytes() for p in FILES} == before  # nothing rewritten
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"] == {"template": "configs/{variant}/cog.yaml"}
    assert variants["variants"] == {"large": {}, "small": {}}
    listed = cli("list", cwd=repo)
    assert [line.split() for line in listed.out.splitlines()] == [
        ["large", "copies", "acme/large"], ["small", "copies", "acme/small"]
    ]


def test_render_and_select_write_the_bytes_the_script_copies(repo, cli, tmp_path):
    assert cli("init", cwd=repo).code == ExitCode.OK
    result = cli("render", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    for model in ("small", "large"):
        build = repo / ".cogfleet/build" / model
        assert (build / "cog.yaml").read_bytes() == _selected_by_the_script(
            repo, model, tmp_path / model
        )
        assert not (build / "configs").exists()  # the per-variant files make cog.yaml only
    assert cli("lint", "large", cwd=repo).code == ExitCode.OK
    assert cli("select", "large", cwd=repo).code == ExitCode.OK
    assert (repo / "cog.yaml").read_bytes().endswith(FILES["configs/large/cog.yaml"].encode())


def test_a_root_file_per_variant_and_no_config_for_one(repo, cli):
    write_files(repo, {
        "script/select-model": 'cp cog-$1.yaml cog.yaml\ncp cog-safe-push-configs/$1.yaml '
                               'cog-safe-push.yaml\n',
        "cog-small.yaml": FILES["configs/small/cog.yaml"],
        "cog-large.yaml": FILES["configs/large/cog.yaml"],
        "cog-tiny.yaml": FILES["configs/small/cog.yaml"],
        "cog-safe-push.yaml": "model: acme/small\n",  # left by the last select
    })
    shutil.rmtree(repo / "configs")
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert "note: skipped tiny: cog-tiny.yaml has no config" in result.out
    assert "safe-push" not in result.out.replace("cog-safe-push-configs", "")
    assert yaml.safe_load((repo / "variants.yaml").read_text())["defaults"] == {
        "template": "cog-{variant}.yaml"
    }
    assert cli("render", cwd=repo).code == ExitCode.OK
    assert (repo / ".cogfleet/build/large/cog.yaml").read_text() == FILES[
        "configs/large/cog.yaml"
    ]


def test_a_config_without_a_cog_yaml_to_copy_is_refused_in_one_line(repo, cli):
    write_files(repo, {"cog-safe-push-configs/huge.yaml": "model: acme/huge\n"})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.strip().splitlines() == [
        "error: cannot adopt this repo: cog-safe-push-configs/huge.yaml has no "
        "configs/huge/cog.yaml for script/select-model to copy (found 2 cog.yaml files, "
        "3 configs)"
    ]
    assert not (repo / "variants.yaml").exists()
