"""Adopting Python select scripts that render cog.yaml (and more) with jinja2.

The shape: ``select_model.py --model NAME`` (or ``NAME``) picks a dict of values per
model and renders ``templates/*`` with ``jinja2.Template(...).render(values)`` into
cog.yaml and a ``settings.py``. ``init`` runs it per config in a scratch copy, records
each render, and declares the template files as Jinja templates where they are
(``jinja:``) with each variant's values (``variables:``); it keeps that only when
rendering gives exactly the script's bytes. What it cannot prove is refused in one line,
with nothing written.

Real repos of this shape checked with ``cogfleet init`` (a config per model added, as
they have none), every model rendering byte for byte what the script writes:
replicate/cog-flan-models at f35f162f03b2 (select_model.py: cog.yaml and config.py for
six models) and 2b199103b1ca (render_template.py), replicate/cog-llama at 6dc8c3c893ae.
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

SELECT = '''\
"""Pick a model: render cog.yaml and settings.py for it."""
import argparse

from jinja2 import Template

MODELS = {
    "small": {
        "cog": {"predictor": "predict.py:Predictor"},
        "settings": {"repo_id": "acme/tiny-small"},
    },
    "large": {
        "cog": {"predictor": "predict.py:LargePredictor", "extra": '- "tomli==2.0.1"'},
        "settings": {"repo_id": "acme/tiny-large"},
    },
}


def render(template_path, out_path, values):
    with open(template_path) as fh:
        text = Template(fh.read()).render(values)
    with open(out_path, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="small")
    args = parser.parse_args()
    render("templates/cog.yaml.tmpl", "cog.yaml", MODELS[args.model]["cog"])
    render("templates/settings.py.tmpl", "settings.py", MODELS[args.model]["settings"])
'''

COG_TEMPLATE = """\
# cog.yaml for one model of this repo (select_model.py writes it)
build:
  python_version: "3.11"
  python_packages:
    - "pyyaml==6.0.1"
    {{ extra }}
predict: "{{ predictor }}"
"""

FILES = {
    "select_model.py": SELECT,
    "templates/cog.yaml.tmpl": COG_TEMPLATE,
    "templates/settings.py.tmpl": 'REPO_ID = "{{ repo_id }}"\n',
    "predict.py": DESCRIBED_PREDICTORS,
    "settings.py": 'REPO_ID = "acme/tiny-small"\n',  # committed, as the script last left it
    "cog-safe-push-configs/small.yaml": "model: acme/small\n",
    "cog-safe-push-configs/large.yaml": "model: acme/large\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "pyselect"
    write_files(root, FILES)
    return root


def _script_output(root: Path, argv: list[str], name: str, scratch: Path) -> bytes:
    """The file ``name`` as the repo's own Python select script leaves it."""
    shutil.copytree(root, scratch, ignore=shutil.ignore_patterns(".cogfleet"))
    subprocess.run([sys.executable, *argv], cwd=scratch, check=True, capture_output=True)
    return (scratch / name).read_bytes()


def _renders_as_the_script(root, cli, tmp_path, argv, files=("cog.yaml", "settings.py")):
    result = cli("render", cwd=root)
    assert result.code == ExitCode.OK, result.err
    for model in ("small", "large"):
        for name in files:
            args = [a.replace("{}", model) for a in argv]
            assert (root / ".cogfleet/build" / model / name).read_bytes() == _script_output(
                root, args, name, tmp_path / f"run-{model}-{name}"
            ), (model, name)
        # and the rest is what `cog build` of the root then sends: templates/ too
        assert_cog_build_context(root / ".cogfleet/build" / model,
                                 tmp_path / f"run-{model}-cog.yaml", own=("variants.yaml",))


def test_init_declares_the_templates_the_script_renders(repo, cli, tmp_path):
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert ("templates it renders with jinja2: templates/cog.yaml.tmpl, "
            "templates/settings.py.tmpl") in result.out
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"] == {
        "template": "templates/cog.yaml.tmpl",
        "files": {"settings.py": "templates/settings.py.tmpl"},
        # jinja2.Template() drops the final newline
        "jinja": {"templates": ["templates/cog.yaml.tmpl", "templates/settings.py.tmpl"],
                  "keep_trailing_newline": False},
    }
    assert variants["variants"] == {
        "large": {"variables": {"extra": '- "tomli==2.0.1"', "predictor":
                                "predict.py:LargePredictor", "repo_id": "acme/tiny-large"}},
        # the script did not pass `extra`: jinja2's default undefined printed nothing
        "small": {"variables": {"extra": "", "predictor": "predict.py:Predictor",
                                "repo_id": "acme/tiny-small"}},
    }
    assert not (repo / "cog.yaml").exists()  # the script ran in a scratch copy
    _renders_as_the_script(repo, cli, tmp_path, ["select_model.py", "--model", "{}"])
    assert cli("lint", cwd=repo).code == ExitCode.OK
    # the template is the repo's file: an edit there is the next render's
    write_files(repo, {"templates/settings.py.tmpl": 'REPO_ID = "{{ repo_id }}"  # hub\n'})
    _renders_as_the_script(repo, cli, tmp_path / "edited", ["select_model.py", "--model", "{}"])


POSITIONAL = '''\
#!/usr/bin/env python3
import sys

import jinja2

VALUES = {"small": {"gpu": False, "predictor": "Predictor"},
          "large": {"gpu": True, "predictor": "LargePredictor"}}

env = jinja2.Environment(loader=jinja2.FileSystemLoader("."), trim_blocks=True,
                         lstrip_blocks=True, keep_trailing_newline=True)
with open("cog.yaml", "w") as fh:
    fh.write(env.get_template("cog.yaml.jinja").render(**VALUES[sys.argv[1]]))
'''

BLOCKS = """\
build:
  python_version: "3.11"
  {% if gpu %}
  gpu: true
  {% endif %}
predict: "predict.py:{{ predictor }}"
"""


def test_a_loader_with_its_own_options_and_the_name_as_argument(repo, cli, tmp_path):
    write_files(repo, {"select_model.py": None, "script/select-model": POSITIONAL,
                       "cog.yaml.jinja": BLOCKS, "settings.py": None})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((repo / "variants.yaml").read_text())
    assert variants["defaults"]["jinja"] == {
        "templates": ["cog.yaml.jinja"], "trim_blocks": True, "lstrip_blocks": True,
    }
    assert variants["variants"]["large"] == {"variables": {"gpu": True,
                                                           "predictor": "LargePredictor"}}
    _renders_as_the_script(repo, cli, tmp_path, ["script/select-model", "{}"], ("cog.yaml",))
    # trim_blocks: the {% if %} lines leave nothing
    assert (repo / ".cogfleet/build/large/cog.yaml").read_text().count("\n") == 4


@pytest.mark.parametrize(("change", "message"), [
    # a filter of the script's own: cogfleet's Jinja has no such filter
    ({"select_model.py": SELECT.replace(
        "        text = Template(fh.read()).render(values)",
        "        env = __import__('jinja2').Environment()\n"
        "        env.filters['shout'] = str.upper\n"
        "        text = env.from_string(fh.read()).render(values)")},
     "select_model.py large renders cog.yaml from templates/cog.yaml.tmpl with Jinja "
     "settings cogfleet does not render with (filter shout)"),
    # not plain data: cogfleet's variables are YAML
    ({"select_model.py": SELECT.replace('"acme/tiny-large"', '__import__("pathlib").Path("x")')},
     "select_model.py large renders settings.py from templates/settings.py.tmpl with values "
     "that are not plain data"),
    # one variable, two values: a variant's templates share one set of variables
    ({"templates/settings.py.tmpl": 'REPO_ID = "{{ predictor }}"\n',
      "select_model.py": SELECT.replace('{"repo_id": "acme/tiny-large"}',
                                        '{"predictor": "acme/tiny-large"}')},
     "select_model.py large renders templates/cog.yaml.tmpl and templates/settings.py.tmpl "
     "with different values of 'predictor'"),
    # `is defined` sees the "" that stands for the undefined value: rendering would differ
    ({"templates/cog.yaml.tmpl": COG_TEMPLATE + "{% if extra is defined %}# extra{% endif %}"},
     "small's cog.yaml would render differently from what the select script writes "
     "(line 8: an extra line)"),
    # a broken template: the script itself fails, and says why
    ({"templates/cog.yaml.tmpl": COG_TEMPLATE.replace("{{ predictor }}", "{{ predictor ")},
     "select_model.py large did not write cog.yaml (exit 1: jinja2.exceptions."
     "TemplateSyntaxError: unexpected"),
    # a config for a model the script does not know
    ({"cog-safe-push-configs/huge.yaml": "model: acme/huge\n"},
     "select_model.py huge did not write cog.yaml (exit 1: KeyError: 'huge')"),
    # not Python
    ({"select_model.py": SELECT.replace("import argparse", "import argparse(")},
     "select_model.py:2: the select script is not Python that parses"),
])
def test_what_init_cannot_prove_is_refused_in_one_line(repo, cli, change, message):
    write_files(repo, change)
    before = {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
              if p.is_file()}
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR, result.out
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    after = {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
             if p.is_file()}
    assert after == before


# -- files a shell select script generates besides cog.yaml ---------------------------------

GENERATING = """\
#!/bin/bash
set -euo pipefail
case "$1" in
  small) URL=https://weights.example/tiny-small.tar; STEPS=4 ;;
  large) URL=https://weights.example/tiny-large-v2.tar; STEPS=28 ;;
  *) echo "unknown model: $1" >&2; exit 3 ;;
esac
cp cog.yaml.template cog.yaml
cat > weights.py <<PY
# weights of $1 ({{ not jinja }})
WEIGHTS = {"url": "$URL", "steps": $STEPS}
PY
echo "$URL" > weights.txt
"""


def _bash_output(root: Path, model: str, name: str, scratch: Path) -> bytes:
    shutil.copytree(root, scratch, ignore=shutil.ignore_patterns(".cogfleet"))
    subprocess.run(["bash", "script/select-model", model], cwd=scratch, check=True,
                   capture_output=True)
    return (scratch / name).read_bytes()


@pytest.fixture
def generating(tmp_path: Path) -> Path:
    root = tmp_path / "generating"
    write_files(root, {
        "script/select-model": GENERATING,
        "cog.yaml.template": 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n',
        "predict.py": DESCRIBED_PREDICTORS,
        "cog-safe-push-configs/small.yaml": "model: acme/small\n",
        "cog-safe-push-configs/large.yaml": "model: acme/large\n",
    })
    return root


def test_generated_files_become_templates_that_render_the_same_bytes(generating, cli, tmp_path):
    result = cli("init", cwd=generating)
    assert result.code == ExitCode.OK, result.err
    assert "files it generates: weights.py, weights.txt (written as weights.py.j2, " \
           "weights.txt.j2)" in result.out
    # literal text with Jinja's marks in it is raw text
    assert (generating / "weights.py.j2").read_text() == (
        "# weights of {{ variant }}{% raw %} ({{ not jinja }})\n"
        'WEIGHTS = {"url": "https://weights.example/tiny-{% endraw %}{{ variant }}'
        '{{ weights_py_1 }}.tar", "steps": {{ weights_py_2 }}}\n'
    )
    variants = yaml.safe_load((generating / "variants.yaml").read_text())
    assert variants["defaults"]["files"] == {"weights.py": "weights.py.j2",
                                             "weights.txt": "weights.txt.j2"}
    # the variant's own name is {{ variant }}; what is left differs
    assert variants["variants"]["large"] == {"variables": {
        "weights_py_1": "-v2", "weights_py_2": "28", "weights_txt_1": "-v2"}}
    assert variants["variants"]["small"] == {"variables": {
        "weights_py_1": "", "weights_py_2": "4", "weights_txt_1": ""}}
    assert cli("render", cwd=generating).code == ExitCode.OK
    for model in ("small", "large"):
        for name in ("cog.yaml", "weights.py", "weights.txt"):
            assert (generating / ".cogfleet/build" / model / name).read_bytes() == (
                _bash_output(generating, model, name, tmp_path / f"{model}-{name}")
            ), (model, name)


def test_files_that_differ_in_most_of_their_text_are_copied_per_variant(generating, cli):
    write_files(generating, {"script/select-model": GENERATING.replace(
        'echo "$URL" > weights.txt', 'echo "$STEPS" > steps.txt')})
    result = cli("init", cwd=generating)
    assert result.code == ExitCode.OK, result.err
    assert (generating / "steps.large.txt").read_text() == "28\n"
    variants = yaml.safe_load((generating / "variants.yaml").read_text())
    assert variants["variants"]["small"]["files"] == {"steps.txt": "steps.small.txt"}
    assert cli("render", cwd=generating).code == ExitCode.OK
    assert (generating / ".cogfleet/build/small/steps.txt").read_text() == "4\n"


@pytest.mark.parametrize(("value", "message"), [
    ("3", "variant 'large': jinja must be a mapping (templates: [files], and options)"),
    ("{templates: [nowhere.tmpl]}",
     "variant 'large': jinja: templates: 'nowhere.tmpl' is not a file in the repo"),
    ("{templates: templates/cog.yaml.tmpl}",
     "variant 'large': jinja: templates must be a list of repo files"),
    ("{trim_blocks: 'yes'}", "variant 'large': jinja: trim_blocks must be true or false, "
     "got 'yes'"),
    ("{autoescape: true}", "variant 'large': jinja: unknown key 'autoescape' (known: "
     "templates, keep_trailing_newline, trim_blocks, lstrip_blocks)"),
])
def test_a_bad_jinja_setting_is_one_line_naming_variants_yaml(repo, cli, value, message):
    assert cli("init", cwd=repo).code == ExitCode.OK
    text = (repo / "variants.yaml").read_text()
    write_files(repo, {"variants.yaml": text.replace("  large: {", f"  large: {{jinja: {value}, ")})
    result = cli("render", "large", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    line = next(n for n, t in enumerate(text.splitlines(), 1) if t.startswith("  large: {"))
    assert result.err.strip().splitlines() == [f"error: variants.yaml:{line}: {message}"]


def test_a_broken_adopted_template_names_its_file_and_line(repo, cli):
    assert cli("init", cwd=repo).code == ExitCode.OK
    write_files(repo, {"templates/cog.yaml.tmpl": COG_TEMPLATE.replace("{{ extra }}",
                                                                       "{{ extra }")})
    result = cli("render", "small", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: templates/cog.yaml.tmpl:6: "), lines
    assert not (repo / ".cogfleet/build/small/cog.yaml").exists()


def test_without_configs_init_names_the_models_the_script_knows(repo, cli):
    write_files(repo, {"cog-safe-push-configs/small.yaml": None,
                       "cog-safe-push-configs/large.yaml": None})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.USAGE_ERROR
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot adopt this repo: found select script "
                               "select_model.py (run once per config to see what it writes); "
                               "missing one cog-safe-push config per variant"), lines[0]
    assert lines[0].endswith("; the script knows 2 models: small, large")
    assert not (repo / "variants.yaml").exists()


@pytest.mark.parametrize(("line", "why"), [
    ('echo "cache = $HOME/.cache" > paths.txt', "differs from one run to the next (a date, "
     "a random value, $HOME?)"),
    ('echo "root = $(pwd)" > paths.txt', "has the path of the folder it ran in"),
])
def test_a_generated_file_with_a_path_of_the_machine_is_left_out(generating, cli, line, why):
    write_files(generating, {"script/select-model": GENERATING + line + "\n"})
    result = cli("init", cwd=generating)
    assert result.code == ExitCode.OK, result.err
    for model in ("large", "small"):
        assert (f"note: {model}: script/select-model writes paths.txt, which {why}; cogfleet "
                "leaves it out") in result.out
    assert "paths.txt" not in (generating / "variants.yaml").read_text()
