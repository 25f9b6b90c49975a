"""Adopting repos that keep each variant's cog-safe-push config somewhere of its own.

Not every select-script repo has a configs folder of ``<variant>.yaml`` files: some keep
``models/<name>/cog-safe-push.yaml`` (or ``<name>/cog-safe-push.yaml``) next to each
variant's cog.yaml, some ``cog-safe-push-<name>.yaml`` at the top (the workflow passes
``--config=cog-safe-push-dev.yaml``), some ``safe-push-configs/cog-safe-push-<name>.yaml``.
``init`` declares where they are (``config:`` in ``defaults``), and every command finds
each variant's config there.
"""

from __future__ import annotations

import json

import pytest
import yaml

from cogfleet import ExitCode
from tests.conftest import (
    DESCRIBED_PREDICTORS,
    after_select_script,
    assert_select_sends_the_build,
    write_files,
)

CONFIG = """\
model: acme/{name}
predict:
  test_cases:
    - inputs: {{text: hi}}
      exact_string: "{expected}"
  fuzz:
    iterations: 0
"""


def _cog(folder: str, predictor: str) -> str:
    return (f"# the {predictor} model\nbuild:\n  python_version: '3.11'\n"
            f"predict: \"{folder}predict.py:{predictor}\"\n")


def _per_model_folders(folder: str) -> dict[str, str]:
    """``<folder><name>/cog.yaml`` and ``cog-safe-push.yaml`` side by side, and a select
    script that copies both to the root."""
    return {
        "script/select-model": (
            "#!/bin/bash\nset -euo pipefail\n"
            f"test -f \"{folder}$1/cog.yaml\" || {{ echo \"unknown model: $1\" >&2; exit 1; }}\n"
            f"cp \"{folder}$1/cog.yaml\" cog.yaml\n"
            f"cp \"{folder}$1/cog-safe-push.yaml\" cog-safe-push.yaml\n"
        ),
        "predict.py": DESCRIBED_PREDICTORS,
        f"{folder}small/cog.yaml": _cog("", "Predictor"),
        f"{folder}small/cog-safe-push.yaml": CONFIG.format(name="small", expected="hi"),
        f"{folder}large/cog.yaml": _cog("", "LargePredictor"),
        f"{folder}large/cog-safe-push.yaml": CONFIG.format(name="large", expected="hihi"),
    }


@pytest.mark.parametrize("folder", ["models/", ""])
def test_configs_beside_each_models_cog_yaml(tmp_path, cli, folder):
    root = tmp_path / "permodel"
    files = _per_model_folders(folder)
    write_files(root, files)
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert f"2 configs ({folder}<variant>/cog-safe-push.yaml)" in result.out
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"] == {
        "template": f"{folder}{{variant}}/cog.yaml",
        "config": f"{folder}{{variant}}/cog-safe-push.yaml",
    }
    assert not (root / "pyproject.toml").exists()  # no configs folder to name
    listed = json.loads(cli("list", "--json", cwd=root).out)
    assert [(v["name"], v["model"], v["config"]) for v in listed] == [
        ("large", "acme/large", f"{folder}large/cog-safe-push.yaml"),
        ("small", "acme/small", f"{folder}small/cog-safe-push.yaml"),
    ]
    assert cli("render", cwd=root).code == ExitCode.OK
    for name in ("small", "large"):
        build = root / ".cogfleet/build" / name
        assert (build / "cog.yaml").read_bytes() == after_select_script(
            root, "script/select-model", name, tmp_path / name
        )
        # the configs are in the build as `cog build` of the root sends them; the variant's
        # own is cog-safe-push.yaml too
        configs = sorted(p.relative_to(build).as_posix() for p in build.rglob("cog-safe-push*"))
        assert configs == sorted([f"{folder}large/cog-safe-push.yaml", "cog-safe-push.yaml",
                                  f"{folder}small/cog-safe-push.yaml"]), name
        assert (build / "cog-safe-push.yaml").read_bytes() == (
            root / f"{folder}{name}/cog-safe-push.yaml").read_bytes()
    assert cli("lint", "large", cwd=root).code == ExitCode.OK
    # from a variant's folder, the repo is still found
    assert cli("list", cwd=root / f"{folder}small").code == ExitCode.OK
    assert cli("select", "small", cwd=root).code == ExitCode.OK
    assert (root / "cog-safe-push.yaml").read_text() == files[f"{folder}small/cog-safe-push.yaml"]
    assert_select_sends_the_build(root, "small")  # every config, as the build folder has


@pytest.mark.slow
def test_a_variant_with_its_config_in_its_folder_is_tested(tmp_path, cli):
    root = tmp_path / "permodel"
    write_files(root, _per_model_folders("models/"))
    assert cli("init", cwd=root).code == ExitCode.OK
    report = tmp_path / "report.json"
    result = cli("test", "large", "--report-json", str(report), cwd=root)
    assert result.code == ExitCode.OK, result.out + result.err
    run = json.loads(report.read_text())
    assert run["model"] == "acme/large"
    assert [(c["status"], c["message"]) for c in run["cases"]] == [
        ("passed", "output is 'hihi'")
    ]


# -- cog-flux's first shape: concatenated overlays, cog-safe-push-<name>.yaml at the top ----
# (replicate/cog-flux at 02f32be6710a, script/select.sh with cat: init, then its ten
# variants render the cog.yaml the script writes, byte for byte)

CAT_SELECT = """\
#!/bin/bash

cat cog.yaml.template > cog.yaml
cat model-cog-configs/$1.yaml >> cog.yaml
"""

WORKFLOW = """\
name: Push
on: workflow_dispatch
jobs:
  push:
    runs-on: ubuntu-latest
    steps:
      - run: ./script/select.sh schnell
      - run: cog-safe-push -vv --config={config_schnell}
      - run: ./script/select.sh dev
      - run: cog-safe-push -vv --config={config_dev}
"""

TOP = {
    "script/select.sh": CAT_SELECT,
    "cog.yaml.template": "build:\n  python_version: '3.11'\n",
    "model-cog-configs/dev.yaml": "predict: \"predict.py:Predictor\"\n",
    "model-cog-configs/schnell.yaml": "predict: \"predict.py:LargePredictor\"\n",
    "model-cog-configs/test.yaml": "predict: \"predict.py:Predictor\"\n",
    "predict.py": DESCRIBED_PREDICTORS,
    "cog-safe-push-dev.yaml": "model: acme/flux-dev\n",
    "cog-safe-push-schnell.yaml": "model: acme/flux-schnell\n",
    ".github/workflows/push.yaml": WORKFLOW.format(config_schnell="cog-safe-push-schnell.yaml",
                                                  config_dev="cog-safe-push-dev.yaml"),
}


@pytest.mark.parametrize("folder", ["", "safe-push-configs/"])
def test_cog_safe_push_name_yaml_configs(tmp_path, cli, folder):
    root = tmp_path / "flux"
    files = {(folder + k if k.startswith("cog-safe-push-") else k): v for k, v in TOP.items()}
    write_files(root, files)
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert "note: skipped test: model-cog-configs/test.yaml has no config " \
           f"{folder}cog-safe-push-test.yaml" in result.out
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"]["config"] == f"{folder}cog-safe-push-{{variant}}.yaml"
    assert variants["defaults"]["merge"] == "concatenate"
    assert sorted(variants["variants"]) == ["dev", "schnell"]
    listed = cli("list", cwd=root)
    assert [line.split()[::2] for line in listed.out.splitlines()] == [
        ["dev", "acme/flux-dev"], ["schnell", "acme/flux-schnell"]
    ]
    assert cli("render", cwd=root).code == ExitCode.OK
    for name in ("dev", "schnell"):
        assert (root / ".cogfleet/build" / name / "cog.yaml").read_bytes() == (
            after_select_script(root, "script/select.sh", name, tmp_path / name)
        )
    build = root / ".cogfleet/build/dev"
    # every config is in the build as `cog build` of the root sends it, the variant's own
    # as cog-safe-push.yaml too
    assert sorted(p.relative_to(build).as_posix() for p in build.rglob("cog-safe-push*")) == sorted(
        [f"{folder}cog-safe-push-dev.yaml", f"{folder}cog-safe-push-schnell.yaml",
         "cog-safe-push.yaml"]
    )
    assert (build / "cog-safe-push.yaml").read_bytes() == (
        root / f"{folder}cog-safe-push-dev.yaml").read_bytes()


def test_the_workflows_config_option_names_an_unusual_place(tmp_path, cli):
    root = tmp_path / "flux"
    files = {k: v for k, v in TOP.items() if not k.startswith("cog-safe-push-")}
    files |= {
        "ci/dev/safe-push.yaml": "model: acme/flux-dev\n",
        "ci/schnell/safe-push.yaml": "model: acme/flux-schnell\n",
        ".github/workflows/push.yaml": (
            "on: workflow_dispatch\njobs:\n  push:\n    runs-on: ubuntu-latest\n"
            "    strategy:\n      matrix:\n        model: [dev, schnell]\n    steps:\n"
            "      - run: |\n          ./script/select.sh ${{ matrix.model }}\n"
            "          cog-safe-push --config ci/${{ matrix.model }}/safe-push.yaml\n"
        ),
    }
    write_files(root, files)
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"]["config"] == "ci/{variant}/safe-push.yaml"
    listed = json.loads(cli("list", "--json", cwd=root).out)
    assert [v["config"] for v in listed] == ["ci/dev/safe-push.yaml",
                                             "ci/schnell/safe-push.yaml"]


def test_two_places_of_configs_are_ambiguous(tmp_path, cli):
    root = tmp_path / "flux"
    write_files(root, {**TOP, "safe-push-configs/dev.yaml": "model: acme/flux-dev\n",
                       ".github/workflows/push.yaml": None})
    result = cli("init", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.strip().splitlines() == [
        "error: ambiguous cog-safe-push configs: found safe-push-configs/<variant>.yaml and "
        "cog-safe-push-<variant>.yaml; keep one (or write variants.yaml by hand)"
    ]
    assert not (root / "variants.yaml").exists()


@pytest.mark.parametrize(("value", "message"), [
    ("../outside.yaml", "config: '../outside.yaml' is not a file path inside the repo"),
    ("[a, b]", "config: ['a', 'b'] is not a file path inside the repo"),
    ("nowhere/{variant}.yaml", "variant 'dev' has no config file nowhere/dev.yaml"),
])
def test_a_bad_config_declaration_is_one_line(tmp_path, cli, value, message):
    root = tmp_path / "flux"
    write_files(root, TOP)
    assert cli("init", cwd=root).code == ExitCode.OK
    text = (root / "variants.yaml").read_text()
    write_files(root, {"variants.yaml": text.replace(
        "config: cog-safe-push-{variant}.yaml", f"config: {value}")})
    result = cli("list", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith("error: variants.yaml") and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1


# -- one Cog folder per variant, no select script (`cd models/<name> && cog push`) ----------


def _own_folders(folder: str) -> dict[str, str]:
    files = {}
    for name, predictor, expected in (("small", "Predictor", "hi"),
                                      ("large", "LargePredictor", "hihi")):
        files |= {
            f"{folder}{name}/cog.yaml": _cog("", predictor),
            f"{folder}{name}/predict.py": DESCRIBED_PREDICTORS,
            f"{folder}{name}/helpers/__init__.py": f"NAME = {name!r}\n",
            f"{folder}{name}/cog-safe-push.yaml": CONFIG.format(name=name, expected=expected),
        }
    return files | {"README.md": "models, one folder each\n"}


@pytest.mark.parametrize("folder", ["models/", ""])
def test_one_cog_folder_per_variant_is_each_variants_source(tmp_path, cli, folder):
    root = tmp_path / "folders"
    write_files(root, _own_folders(folder))
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert f"2 model folders ({folder}<variant>/ with cog.yaml and cog-safe-push.yaml)" \
        in result.out
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"] == {
        "source": f"{folder}{{variant}}", "template": f"{folder}{{variant}}/cog.yaml",
        "config": f"{folder}{{variant}}/cog-safe-push.yaml",
    }
    assert cli("render", cwd=root).code == ExitCode.OK
    for name in ("small", "large"):
        build = root / ".cogfleet/build" / name
        # what `cog build` in the folder takes: its files, its cog.yaml as written
        assert sorted(p.relative_to(build).as_posix() for p in build.rglob("*")
                      if p.is_file() and p.name != "cog-safe-push.yaml") == [
            "cog.yaml", "helpers/__init__.py", "predict.py"]
        assert (build / "cog.yaml").read_bytes() == (root / folder / name / "cog.yaml").read_bytes()
    assert cli("lint", "small", "large", cwd=root).code == ExitCode.OK
    assert cli("list", cwd=root / f"{folder}large").code == ExitCode.OK


@pytest.mark.slow
def test_a_variant_in_its_own_cog_folder_is_tested(tmp_path, cli):
    root = tmp_path / "folders"
    write_files(root, _own_folders("models/"))
    assert cli("init", cwd=root).code == ExitCode.OK
    report = tmp_path / "report.json"
    result = cli("test", "large", "--report-json", str(report), cwd=root)
    assert result.code == ExitCode.OK, result.out + result.err
    assert [c["message"] for c in json.loads(report.read_text())["cases"]] == [
        "output is 'hihi'"
    ]


@pytest.mark.parametrize("value", ["nowhere/{variant}", "../{variant}", "[a]"])
def test_a_bad_source_folder_is_one_line(tmp_path, cli, value):
    root = tmp_path / "folders"
    write_files(root, _own_folders("models/"))
    assert cli("init", cwd=root).code == ExitCode.OK
    text = (root / "variants.yaml").read_text()
    write_files(root, {"variants.yaml": text.replace("source: models/{variant}",
                                                     f"source: {value}")})
    result = cli("list", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    shown = repr(value.replace("{variant}", "large")) if value != "[a]" else "['a']"
    assert result.err.strip().splitlines() == [
        f"error: variants.yaml:7: variant 'large': source: {shown} is not a folder inside "
        "the repo"
    ]


# -- a Cog folder at the top with a config per variant, no select script --------------------


def test_one_cog_yaml_at_the_top_with_a_config_per_variant(tmp_path, cli):
    root = tmp_path / "kontext"
    cog = _cog("", "LargePredictor")
    write_files(root, {
        "cog.yaml": cog,
        "predict.py": DESCRIBED_PREDICTORS,
        "cog-safe-push-configs/dev.yaml": CONFIG.format(name="dev", expected="hihi"),
        "cog-safe-push-configs/pro.yaml": CONFIG.format(name="pro", expected="hihi"),
    })
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert "cog.yaml at the top, 2 configs in cog-safe-push-configs/" in result.out
    variants = yaml.safe_load((root / "variants.yaml").read_text())
    assert variants["defaults"] == {"template": "cog.yaml"}
    assert sorted(variants["variants"]) == ["dev", "pro"]
    assert cli("render", cwd=root).code == ExitCode.OK
    for name in ("dev", "pro"):
        assert (root / ".cogfleet/build" / name / "cog.yaml").read_text() == cog
    assert cli("lint", "dev", "pro", cwd=root).code == ExitCode.OK
    # the root already is the Cog folder: select leaves cog.yaml and writes the config
    selected = cli("select", "pro", cwd=root)
    assert selected.code == ExitCode.OK, selected.err
    assert (root / "cog.yaml").read_text() == cog
    assert (root / "cog-safe-push.yaml").read_text() == CONFIG.format(name="pro", expected="hihi")
    assert_select_sends_the_build(root, "pro")
    # a root cog.yaml the variant would change is refused (select would overwrite it)
    overlaid = "template: cog.yaml\n  overlay: cog-safe-push-configs/{variant}.yaml"
    write_files(root, {"variants.yaml": (root / "variants.yaml").read_text().replace(
        "template: cog.yaml", overlaid)})
    selected = cli("select", "pro", cwd=root)
    assert selected.code == ExitCode.USAGE_ERROR
    assert "its cog.yaml is made from the root cog.yaml, which select would overwrite" \
        in selected.err
    assert (root / "cog.yaml").read_text() == cog
