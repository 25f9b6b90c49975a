"""Adopting a repo whose select script copies a whole cog.yaml per variant.

The shape: ``script/select-model MODEL`` checks the name in a ``case`` statement, then
``cp configs/$1/cog.yaml cog.yaml`` (or ``cp cog-$1.yaml cog.yaml``) and copies the
variant's cog-safe-push config. There is no base and no overlay: each variant's own
file is its template, and rendering must give the bytes the script copies.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from tests.conftest import (
    TWO_PREDICTORS,
    after_select_script,
    assert_select_sends_the_build,
    write_files,
)

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

PREDICT = TWO_PREDICTORS


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
        assert (build / "cog.yaml").read_bytes() == after_select_script(
            repo, "script/select-model", model, tmp_path / model
        )
        # every variant's file is in the build as `cog build` of the root sends it
        assert {p.name for p in (build / "configs").iterdir()} == {"small", "large"}
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


# -- a script that also copies the variant's predictor -------------------------------------

CAT_SELECT = """\
#!/bin/bash
cat cog.yaml.template > cog.yaml
cat model-cog-configs/$1.yaml >> cog.yaml
cp predictors/$1.py ./predict.py
cp cog-safe-push-configs/$1.yaml cog-safe-push.yaml
"""


def _predictor(suffix: str) -> str:
    return (
        "from cog import BasePredictor\n\nfrom helpers import shout\n\n\n"
        "class Predictor(BasePredictor):\n"
        "    def predict(self, text: str = \"x\") -> str:\n"
        f"        return shout(text) + \"{suffix}\"\n"
    )


COPYING = {
    "script/select.sh": CAT_SELECT,
    "cog.yaml.template": "build:\n  python_version: '3.11'\nrun: \"predict.py:Predictor\"\n",
    "model-cog-configs/small.yaml": "concurrency:\n  max: 1\n",
    "model-cog-configs/large.yaml": "concurrency:\n  max: 1\n",
    "predictors/small.py": _predictor("s"),
    "predictors/large.py": _predictor("l"),
    "helpers.py": "def shout(text: str) -> str:\n    return text.upper()\n",
    "cog-safe-push-configs/small.yaml": "model: acme/small\n",
    "cog-safe-push-configs/large.yaml": "model: acme/large\n",
}


@pytest.fixture
def copying(tmp_path: Path) -> Path:
    root = tmp_path / "copying"
    write_files(root, COPYING)
    return root


def test_init_declares_the_files_the_script_copies_per_variant(copying, cli):
    result = cli("init", cwd=copying)
    assert result.code == ExitCode.OK, result.err
    assert "copies predictors/{variant}.py to predict.py (2 variants)" in result.out
    variants = yaml.safe_load((copying / "variants.yaml").read_text())
    assert variants["variants"] == {
        "large": {"files": {"predict.py": "predictors/large.py"}},
        "small": {"files": {"predict.py": "predictors/small.py"}},
    }
    listed = json.loads(cli("list", "--json", cwd=copying).out)
    assert listed[1]["files"] == {"predict.py": "predictors/small.py"}


def test_render_select_and_lint_use_the_copied_file(copying, cli, tmp_path):
    assert cli("init", cwd=copying).code == ExitCode.OK
    result = cli("render", cwd=copying)
    assert result.code == ExitCode.OK, result.err
    for model in ("small", "large"):
        build = copying / ".cogfleet/build" / model
        assert (build / "predict.py").read_bytes() == after_select_script(
            copying, "script/select.sh", model, tmp_path / model, "predict.py"
        )
        assert (build / "helpers.py").is_file()  # the family's other files are there
        # every variant's file is there as `cog build` of the root sends it
        assert (build / "predictors/large.py").read_bytes() == (
            copying / "predictors/large.py").read_bytes()
    # `cogfleet select` leaves the root's predict.py as the script does
    assert cli("select", "large", cwd=copying).code == ExitCode.OK
    assert (copying / "predict.py").read_bytes() == COPYING["predictors/large.py"].encode()
    assert cli("select", "--clear", cwd=copying).code == ExitCode.OK
    assert not (copying / "predict.py").exists()
    # lint names the file the user edits
    write_files(copying, {"predictors/small.py": "import os\n" + COPYING["predictors/small.py"]})
    result = cli("lint", "small", "large", cwd=copying)
    assert result.code == ExitCode.CHECKS_FAILED
    assert "predictors/small.py:1:8: F401" in result.out
    assert "large: ok" in result.out


def test_a_copied_file_counts_for_its_variant_only(copying, cli):
    from cogfleet._plugins import Plugins
    from cogfleet._render import render_in_memory
    from cogfleet._repo import Repo

    assert cli("init", cwd=copying).code == ExitCode.OK
    repo = Repo.load(copying)
    reads = render_in_memory(repo, repo.variants["small"], Plugins(copying)).reads
    assert "predictors/small.py" in reads and "helpers.py" in reads
    assert "predictors/large.py" not in reads


@pytest.mark.parametrize(("files", "message"), [
    ("{../predict.py: predictors/small.py}",
     "files: '../predict.py' is not a relative path inside the build folder"),
    ("{cog.yaml: predictors/small.py}", "files: cog.yaml is written by cogfleet"),
    ("{predict.py: predictors/tiny.py}",
     "files: predict.py: 'predictors/tiny.py' is not a file in the repo"),
    ("[predictors/small.py]", "files must be a mapping of build path: repo file"),
])
def test_a_bad_files_mapping_is_one_line_naming_variants_yaml(copying, cli, files, message):
    write_files(copying, {"variants.yaml": f"family: f\nvariants:\n  small: {{files: {files}}}\n"
                                           "  large: {}\n"})
    result = cli("list", cwd=copying)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith("error: variants.yaml")
    assert f"variant 'small': {message}" in result.err
    assert len(result.err.strip().splitlines()) == 1


# -- a script that names each variant's files in a `case` ------------------------------------

CASE_SELECT = """\
#!/bin/bash
set -e
case "$1" in
  small)
    cp cpu.yaml cog.yaml
    cp variants-src/predict_small.py predict.py
    ;;
  large)
    cp gpu.yaml cog.yaml
    cp variants-src/predict_large.py predict.py
    echo "BUILT_AT=$(date +%s)" > .env
    ;;
  *) echo "unknown model: $1" >&2; exit 4 ;;
esac
"""

CASE = {
    "script/select-model": CASE_SELECT,
    "cpu.yaml": _cog("Predictor", "false"),
    "gpu.yaml": _cog("Predictor", "true"),
    "variants-src/predict_small.py": _predictor("s"),
    "variants-src/predict_large.py": _predictor("l"),
    "helpers.py": COPYING["helpers.py"],
    "cog-safe-push-configs/small.yaml": "model: acme/small\n",
    "cog-safe-push-configs/large.yaml": "model: acme/large\n",
}


@pytest.fixture
def case_repo(tmp_path: Path) -> Path:
    root = tmp_path / "case"
    write_files(root, CASE)
    return root


def test_init_runs_a_case_script_to_see_what_it_copies(case_repo, cli, tmp_path):
    result = cli("init", cwd=case_repo)
    assert result.code == ExitCode.OK, result.err
    assert "select script script/select-model (run once per config" in result.out
    # a date is no template's text: a second run wrote it otherwise
    assert ("note: large: script/select-model writes .env, which differs from one run to "
            "the next (a date, a random value, $HOME?); cogfleet leaves it out") in result.out
    variants = yaml.safe_load((case_repo / "variants.yaml").read_text())
    assert variants["variants"] == {
        "large": {"template": "gpu.yaml", "files": {"predict.py": "variants-src/predict_large.py"}},
        "small": {"template": "cpu.yaml", "files": {"predict.py": "variants-src/predict_small.py"}},
    }
    assert not (case_repo / "cog.yaml").exists()  # the script ran in a scratch copy
    assert cli("render", cwd=case_repo).code == ExitCode.OK
    for model in ("small", "large"):
        build = case_repo / ".cogfleet/build" / model
        for name in ("cog.yaml", "predict.py"):
            assert (build / name).read_bytes() == after_select_script(
                case_repo, "script/select-model", model, tmp_path / f"{model}-{name}", name
            ), (model, name)
        assert (build / "helpers.py").is_file() and (build / "variants-src").is_dir()


def test_a_config_the_case_does_not_know_stops_init_with_the_exit_code(case_repo, cli):
    write_files(case_repo, {"cog-safe-push-configs/huge.yaml": "model: acme/huge\n"})
    result = cli("init", cwd=case_repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith(
        "error: cannot adopt this repo: script/select-model huge did not write cog.yaml "
        "(exit 4: unknown model: huge)"
    ), result.err
    assert not (case_repo / "variants.yaml").exists()


def test_a_cog_yaml_the_script_generates_is_named(case_repo, cli):
    write_files(case_repo, {"script/select-model": CASE_SELECT.replace(
        "cp gpu.yaml cog.yaml", "printf 'build:\\n  gpu: true\\n' > cog.yaml")})
    result = cli("init", cwd=case_repo)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.strip().splitlines() == [
        "error: cannot adopt this repo: script/select-model large wrote a cog.yaml that is not "
        "a file it names (cpu.yaml) nor its heredoc with text replaced in every place; write "
        "variants.yaml by hand (a template and its replace: or envsubst: values)"
    ]
    assert not (case_repo / "variants.yaml").exists()


# -- per-model folders under models/, and a templates/ folder of the model's own --------------


def test_a_models_folder_of_per_model_files_is_model_source(tmp_path, cli):
    root = tmp_path / "permodel"
    write_files(root, {
        "script/select-model": "#!/bin/bash\ncp models/$1/cog.yaml cog.yaml\n"
                               "cp cog-safe-push-configs/$1.yaml cog-safe-push.yaml\n",
        **{f"models/{m}/cog.yaml": f"build:\n  python_version: '3.11'\n"
                                   f"run: \"models/{m}/predict.py:Predictor\"\n"
           for m in ("small", "large")},
        **{f"models/{m}/predict.py": _predictor(m[0]) for m in ("small", "large")},
        "helpers.py": COPYING["helpers.py"],
        "templates/prompt.txt": "Say {text}\n",  # the model's own, read at run time
        "cog-safe-push-configs/small.yaml": "model: acme/small\n",
        "cog-safe-push-configs/large.yaml": "model: acme/large\n",
    })
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err  # not "already a cogfleet monorepo"
    assert yaml.safe_load((root / "variants.yaml").read_text())["defaults"] == {
        "template": "models/{variant}/cog.yaml"
    }
    assert cli("render", "small", cwd=root).code == ExitCode.OK
    build = root / ".cogfleet/build/small"
    assert (build / "models/small/predict.py").is_file()
    assert (build / "templates/prompt.txt").is_file()
    assert (build / "models/large/cog.yaml").is_file()  # `cog build` of the root sends it
    assert cli("lint", "small", cwd=root).code == ExitCode.OK
    assert cli("select", "small", cwd=root).code == ExitCode.OK
    assert_select_sends_the_build(root, "small")  # models/large/cog.yaml too


def test_a_plugins_folder_of_model_code_is_not_loaded_as_cogfleet_plugins(repo, cli):
    write_files(repo, {"plugins/loader.py": "import not_installed_here\n\n\nLOADER = 1\n"})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert cli("render", "small", cwd=repo).code == ExitCode.OK
    assert (repo / ".cogfleet/build/small/plugins/loader.py").is_file()  # model source
    listed = cli("plugins", cwd=repo)
    assert listed.code == ExitCode.OK and "loader" not in listed.out
    # a module that names cogfleet is a plugin, and then plugins/ is cogfleet's folder
    write_files(repo, {"plugins/shout.py": "from cogfleet import hookimpl\n\n\n"
                                           "@hookimpl\ndef cogfleet_template_variables(variant):"
                                           "\n    return {'shout': True}\n"})
    assert "shout  [plugins/shout.py]" in cli("plugins", cwd=repo).out
    assert cli("render", "small", cwd=repo).code == ExitCode.OK
    assert not (repo / ".cogfleet/build/small/plugins").exists()


def test_list_of_an_adopted_repo_does_not_need_its_plugins(repo, cli):
    assert cli("init", cwd=repo).code == ExitCode.OK
    write_files(repo, {"plugins/broken.py": "import cogfleet\nraise RuntimeError('boom')\n"})
    result = cli("list", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert result.out.splitlines()[0].split() == ["large", "copies", "-"]
    rendered = cli("render", cwd=repo)
    assert rendered.code == ExitCode.USAGE_ERROR
    assert "plugins/broken.py:2: plugin 'broken' failed to import" in rendered.err


def test_a_plain_template_is_taken_as_written_not_as_jinja(repo, cli, tmp_path):
    # shell in a run: line that Jinja would read as a comment and an expression
    text = FILES["configs/small/cog.yaml"] + "  run:\n    - echo ${#HOME} {{ not jinja }}\n"
    write_files(repo, {"configs/small/cog.yaml": text.replace(
        "run: \"predict.py:Predictor\"\n", "") + "run: \"predict.py:Predictor\"\n"})
    result = cli("init", cwd=repo)
    assert result.code == ExitCode.OK, result.err
    assert cli("render", "small", cwd=repo).code == ExitCode.OK
    assert (repo / ".cogfleet/build/small/cog.yaml").read_bytes() == after_select_script(
        repo, "script/select-model", "small", tmp_path / "small"
    )


def test_init_runs_the_script_without_credentials_or_cog(case_repo, cli, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_secret_value")
    outside = case_repo.parent  # the script's run is in a scratch copy: look from here
    # a script that goes on to push once it has selected
    write_files(case_repo, {"script/select-model": CASE_SELECT.replace(
        "esac\n", f"esac\necho \"token=${{REPLICATE_API_TOKEN:-none}}\" >> {outside}/seen\n"
                  "cog push r8.im/acme/$1\n")})
    write_files(outside, {"bin/cog": f"#!/bin/sh\ntouch {outside}/pushed\n"})
    (outside / "bin/cog").chmod(0o755)
    monkeypatch.setenv("PATH", f"{outside / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = cli("init", cwd=case_repo)
    assert result.code == ExitCode.OK, result.err
    assert (outside / "seen").read_text() == "token=none\ntoken=none\n"
    assert not (outside / "pushed").exists()


def test_a_script_that_links_each_variants_files_is_read_as_copying_them(case_repo, cli):
    write_files(case_repo, {"script/select-model": CASE_SELECT.replace("cp ", "ln -sf ")})
    result = cli("init", cwd=case_repo)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((case_repo / "variants.yaml").read_text())
    assert variants["variants"]["small"] == {
        "template": "cpu.yaml", "files": {"predict.py": "variants-src/predict_small.py"}
    }
    assert cli("render", "small", cwd=case_repo).code == ExitCode.OK
    build = case_repo / ".cogfleet/build/small"
    assert not (build / "cog.yaml").is_symlink()
    assert (build / "cog.yaml").read_text() == CASE["cpu.yaml"]


def test_a_changed_files_declaration_is_rendered_again(copying, cli):
    assert cli("init", cwd=copying).code == ExitCode.OK
    assert cli("render", "small", cwd=copying).code == ExitCode.OK
    build = copying / ".cogfleet/build/small"
    assert (build / "predict.py").is_file()
    # the same source file copied under another name: no file read differs, the
    # declaration does
    variants = copying / "variants.yaml"
    variants.write_text(variants.read_text().replace(
        'small: {files: {', 'small: {files: {"main.py": "predictors/small.py", '))
    result = cli("render", "small", cwd=copying)
    assert result.code == ExitCode.OK, result.err
    assert (build / "main.py").read_bytes() == COPYING["predictors/small.py"].encode()
