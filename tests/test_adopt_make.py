"""Adopting select steps that leave the repo's own cog.yaml as it is.

Two shapes: a ``make select model=<name>`` target that links each model's files from
``models/<name>/`` into the root and writes a ``.dockerignore`` naming the model, and a
Python ``select_model.py`` that renders only a ``config.py`` with jinja2. ``init`` runs
the step per config in a scratch copy: every variant's cog.yaml is the root's, the
linked files are its ``files:``, the generated ones templates, and rendering gives the
bytes the step left in the root.

Real repos checked with ``cogfleet init`` (configs added), byte for byte:
replicate/cog-llama-template at 845e24f626bb (``make select model=<name>``, three
models), and at 3480878bff6f with replicate/cog-llama at 2087da3089d1 and f85037aed526
(select_model.py rendering only cronfig.py); replicate/lora-training at 2936a3343092
(``make cog-yaml-basic`` / ``cog-yaml-advanced``: one target per model).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from tests.conftest import DESCRIBED_PREDICTORS, assert_cog_build_context, write_files

MAKEFILE = """\
model ?= $(SELECTED_MODEL)
model_dir = models/$(model)

.PHONY: select
select:
\t@test -n "$(model)" || (echo "usage: make select model=<name>" >&2; exit 1)
\t@test -d $(model_dir) || (echo "no such model: $(model)" >&2; exit 1)
\tfind $(model_dir) -maxdepth 1 -type f -exec ln -sf {} . \\;
\tcp models/dockerignore .dockerignore
\techo "!$(model_dir)" >> .dockerignore
"""

COG = 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n'

FILES = {
    "Makefile": MAKEFILE,
    "cog.yaml": COG,
    "predict.py": DESCRIBED_PREDICTORS,
    "models/dockerignore": "models/*/\n.git\n",
    "model_templates/.dockerignore": "weights/\n",  # Docker reads only the root's: sent
    "scripts/.DS_Store": "\x00",  # sent too
    "models/small-v1/settings.py": 'REPO = "acme/small"\n',
    "models/small-v1/.env": "THREADS=1\n",
    "models/large/settings.py": 'REPO = "acme/large"\n',
    "models/large/.env": "THREADS=8\n",
    "cog-safe-push-configs/small-v1.yaml": "model: acme/small\n",
    "cog-safe-push-configs/large.yaml": "model: acme/large\n",
}

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _left_by(root: Path, argv: list[str], name: str, scratch: Path) -> bytes:
    shutil.copytree(root, scratch, symlinks=True, ignore=shutil.ignore_patterns(".cogfleet"))
    subprocess.run(argv, cwd=scratch, check=True, capture_output=True)
    return (scratch / name).read_bytes()  # through a link, as cog build reads it


@needs_make
def test_a_make_select_target_is_run_per_config(tmp_path, cli):
    root = tmp_path / "make"
    write_files(root, FILES)
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert "select script Makefile (run once per config" in result.out
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"] == {
        "template": "cog.yaml",
        "files": {".dockerignore": ".dockerignore.j2"},
        "jinja": {"templates": [".dockerignore.j2"]},
    }
    assert variants["variants"]["large"] == {
        "files": {".env": "models/large/.env", "settings.py": "models/large/settings.py"}}
    # the model's name in the generated file is the variant's name
    assert (root / ".dockerignore.j2").read_text() == "models/*/\n.git\n!models/{{ variant }}\n"
    assert cli("render", cwd=root).code == ExitCode.OK
    for model in ("small-v1", "large"):
        for name in ("cog.yaml", "settings.py", ".env", ".dockerignore"):
            assert (root / ".cogfleet/build" / model / name).read_bytes() == _left_by(
                root, ["make", "-s", "select", f"model={model}"], name,
                tmp_path / f"{model}-{name}"), (model, name)
        # the rest is what `cog build` then sends: the .dockerignore the target wrote keeps
        # the other model's folder out (and models/dockerignore: Docker reads `models/*/` as
        # `models/*`); the template init wrote for it is no model file
        other = "large" if model == "small-v1" else "small-v1"
        assert_cog_build_context(
            root / ".cogfleet/build" / model, tmp_path / f"{model}-cog.yaml",
            own=("variants.yaml", ".dockerignore.j2", f"models/{other}", "models/dockerignore"),
        )
    assert variants["own_files"] == [".dockerignore.j2"]


@needs_make
def test_a_config_the_make_target_refuses_stops_init_naming_its_message(tmp_path, cli):
    root = tmp_path / "make"
    write_files(root, {**FILES, "cog-safe-push-configs/huge.yaml": "model: acme/huge\n"})
    result = cli("init", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.strip().splitlines() == [
        "error: cannot adopt this repo: Makefile huge failed (exit 2: "
        "no such model: huge); a config in cog-safe-push-configs/ is a variant only if the "
        "script selects it (remove the config or teach the script)"
    ]
    assert not (root / "variants.yaml").exists()


CONFIG_ONLY = '''\
import argparse

import jinja2

SETTINGS = {"small": {"repo": "acme/small"}, "large": {"repo": "acme/large"}}

parser = argparse.ArgumentParser()
parser.add_argument("--model_name", required=True)
name = parser.parse_args().model_name
with open("templates/settings.py.tmpl") as fh:
    text = jinja2.Template(fh.read()).render(SETTINGS[name])
with open("settings.py", "w") as fh:
    fh.write(text)
'''


def test_a_python_script_that_renders_only_other_files_keeps_the_root_cog_yaml(tmp_path, cli):
    root = tmp_path / "pyconfig"
    write_files(root, {
        "select_model.py": CONFIG_ONLY,
        "templates/settings.py.tmpl": 'REPO = "{{ repo }}"\n',
        "cog.yaml": COG,
        "predict.py": DESCRIBED_PREDICTORS,
        "cog-safe-push-configs/small.yaml": "model: acme/small\n",
        "cog-safe-push-configs/large.yaml": "model: acme/large\n",
    })
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"] == {
        "template": "cog.yaml",
        "files": {"settings.py": "templates/settings.py.tmpl"},
        "jinja": {"templates": ["templates/settings.py.tmpl"], "keep_trailing_newline": False},
    }
    assert variants["variants"]["large"] == {"variables": {"repo": "acme/large"}}
    assert cli("render", cwd=root).code == ExitCode.OK
    for model in ("small", "large"):
        assert (root / ".cogfleet/build" / model / "cog.yaml").read_text() == COG
        assert (root / ".cogfleet/build" / model / "settings.py").read_bytes() == _left_by(
            root, [sys.executable, "select_model.py", "--model_name", model], "settings.py",
            tmp_path / f"{model}-settings")


TARGET_PER_MODEL = """\
.PHONY: cog-yaml-small
cog-yaml-small:
\tPREDICTOR=Predictor envsubst < cog.yaml.in > cog.yaml

.PHONY: cog-yaml-large
cog-yaml-large:
\tPREDICTOR=LargePredictor envsubst < cog.yaml.in > cog.yaml

push-small: cog-yaml-small
\tcog push r8.im/acme/small
"""


@needs_make
@pytest.mark.skipif(shutil.which("envsubst") is None, reason="needs envsubst")
def test_one_make_target_per_model_is_run_per_config(tmp_path, cli):
    root = tmp_path / "targets"
    write_files(root, {
        "Makefile": TARGET_PER_MODEL,
        "cog.yaml.in": 'build:\n  python_version: "3.11"\npredict: "predict.py:$PREDICTOR"\n',
        "predict.py": DESCRIBED_PREDICTORS,
        "cog-safe-push-configs/small.yaml": "model: acme/small\n",
        "cog-safe-push-configs/large.yaml": "model: acme/large\n",
    })
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"] == {"template": "cog.yaml.in"}
    assert variants["variants"] == {"large": {"envsubst": {"PREDICTOR": "LargePredictor"}},
                                    "small": {"envsubst": {"PREDICTOR": "Predictor"}}}
    assert cli("render", cwd=root).code == ExitCode.OK
    for model in ("small", "large"):
        assert (root / ".cogfleet/build" / model / "cog.yaml").read_bytes() == _left_by(
            root, ["make", "-s", f"cog-yaml-{model}"], "cog.yaml", tmp_path / model)
    # a config with no target of its own: make's own message
    write_files(root, {"variants.yaml": None, "cog-safe-push-configs/huge.yaml": "model: a/b\n"})
    result = cli("init", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "Makefile huge did not write cog.yaml (exit 2: make: *** No rule to make target " \
           "'cog-yaml-huge'.  Stop.)" in result.err
