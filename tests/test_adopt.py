"""A model-ci-template shaped repo under cogfleet: overlays, the root as family source."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from cogfleet._dockerignore import DockerIgnore, walk
from tests import mci_repo
from tests.conftest import REPO_ROOT, assert_select_sends_the_build, write_files


@pytest.fixture
def adopted(tmp_path: Path) -> Path:
    """The model-ci-template repo with a hand-written variants.yaml and settings."""
    root = tmp_path / "flux"
    write_files(root, dict(mci_repo.FILES))
    write_files(root, {"variants.yaml": mci_repo.VARIANTS_YAML,
                       "pyproject.toml": mci_repo.PYPROJECT})
    return root


def test_list_shows_every_variant(adopted, cli):
    result = cli("list", cwd=adopted)
    assert result.code == ExitCode.OK, result.err
    assert [line.split()[0] for line in result.out.splitlines()] == ["dev", "krea-dev", "schnell"]
    assert all(line.split()[1] == "flux" for line in result.out.splitlines())
    # variants.yaml names no model: each comes from the variant's config, as matrix has it
    assert [line.split()[2] for line in result.out.splitlines()] == [
        "acme/flux-dev", "acme/flux-krea-dev", "acme/flux-schnell"
    ]
    listed = json.loads(cli("list", "--json", cwd=adopted).out)
    assert [v["model"] for v in listed] == ["acme/flux-dev", "acme/flux-krea-dev",
                                            "acme/flux-schnell"]
    matrix = json.loads(cli("matrix", cwd=adopted).out)
    assert [e["model"] for e in matrix["include"]] == [v["model"] for v in listed]


def test_list_shows_a_dash_for_a_config_without_a_model(adopted, cli):
    write_files(adopted, {"safe-push-configs/dev.yaml": "test_hardware: cpu\n"})
    result = cli("list", cwd=adopted)
    assert result.code == ExitCode.OK, result.err
    assert result.out.splitlines()[0].split() == ["dev", "flux", "-"]


def test_render_merges_base_and_overlay_as_yq(adopted, cli):
    result = cli("render", cwd=adopted)
    assert result.code == ExitCode.OK, result.err
    # warnings say which variant they are about
    assert "warning: krea-dev: predict: deprecated since cog 0.20; use run" in result.err
    for variant, expected in mci_repo.YQ_OUTPUT.items():
        cog = yaml.safe_load((adopted / ".cogfleet/build" / variant / "cog.yaml").read_text())
        assert cog == expected, variant
        assert list(cog) == list(expected)  # key order as yq keeps it


def test_render_copies_what_a_cog_build_of_the_root_takes(adopted, cli):
    (adopted / "cog.yaml").write_text("stale: output of a select\n")  # never a source
    (adopted / ".venv/lib").mkdir(parents=True)
    (adopted / ".venv/lib/x.py").write_text("")
    assert cli("render", "dev", cwd=adopted).code == ExitCode.OK
    build = adopted / ".cogfleet/build/dev"
    files = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()}
    # everything the repo's .dockerignore lets through, as it is: the base, every overlay,
    # the configs, the scripts, .dockerignore itself; not cogfleet's own (variants.yaml, a
    # pyproject.toml that only holds [tool.cogfleet], .cogfleet/), nor local environments
    sent = set(mci_repo.FILES) - {"model-cache/weights.bin"}
    assert files == sent | {"cog.yaml", "cog-safe-push.yaml"}
    for rel in sent:
        assert (build / rel).read_bytes() == (adopted / rel).read_bytes(), rel
    assert yaml.safe_load((build / "cog.yaml").read_text())["predict"] == "predict.py:DevPredictor"
    # the lines `cogfleet select` adds to the root's .dockerignore are not the user's:
    # the build folder stays as it was
    before = {rel: (build / rel).read_bytes() for rel in files}
    assert cli("select", "schnell", cwd=adopted).code == ExitCode.OK
    assert "variants.yaml" in (adopted / ".dockerignore").read_text().splitlines()
    assert cli("render", "dev", cwd=adopted).code == ExitCode.OK
    assert {rel: (build / rel).read_bytes() for rel in files} == before
    assert {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file()} == files
    # a pyproject.toml of the model's own is sent without the table init appended to it
    write_files(adopted, {"pyproject.toml": "[project]\nname = 'flux'\n\n" + mci_repo.PYPROJECT})
    assert cli("render", "dev", cwd=adopted).code == ExitCode.OK
    assert (build / "pyproject.toml").read_text() == "[project]\nname = 'flux'\n"


def test_overlay_errors_name_the_overlay(adopted, cli):
    # the dev overlay appends to build.run, which this base has as a string: yq fails too
    write_files(adopted, {"cog.yaml.template": "build:\n  python_version: '3.11'\n  run: echo\n"})
    result = cli("render", "dev", cwd=adopted)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith(
        "error: model-cog-configs/dev.yaml:3: build.run: cannot merge a list into the scalar"
    ), result.err
    # schnell's overlay adds nothing there: Cog's rules name the base, where the value is
    result = cli("render", "schnell", cwd=adopted)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith("error: cog.yaml.template:3: build.run: 'echo' is not of type")
    assert "variant 'schnell'" in result.err
    assert not (adopted / ".cogfleet/build/schnell").exists()


def test_missing_overlay_is_a_config_error_naming_it(adopted, cli):
    (adopted / "model-cog-configs/dev.yaml").unlink()
    result = cli("list", cwd=adopted)
    assert result.code == ExitCode.USAGE_ERROR
    assert "variants.yaml" in result.err
    assert "overlay file 'model-cog-configs/dev.yaml' does not exist" in result.err


def test_base_may_be_a_jinja_template(adopted, cli):
    write_files(adopted, {
        "cog.yaml.j2": "build:\n  gpu: false\n  python_version: \"{{ py }}\"\n"
                       "environment:\n  - VARIANT={{ variant }}\n",
        "variants.yaml": mci_repo.VARIANTS_YAML.replace("cog.yaml.template", "cog.yaml.j2")
        .replace("schnell: {}", "schnell: {variables: {py: '3.12'}}")
        .replace("dev: {}", "dev: {variables: {py: '3.11'}}")
        .replace("krea-dev: {}", "krea-dev: {variables: {py: '3.11'}}"),
    })
    assert cli("render", cwd=adopted).code == ExitCode.OK
    cog = yaml.safe_load((adopted / ".cogfleet/build/schnell/cog.yaml").read_text())
    assert cog == {
        "build": {"gpu": False, "python_version": "3.12"},
        "environment": ["VARIANT=schnell"],
        "predict": "predict.py:SchnellPredictor",
    }
    cog = yaml.safe_load((adopted / ".cogfleet/build/krea-dev/cog.yaml").read_text())
    assert cog["environment"] == ["VARIANT=krea-dev", "MCI_KREA=1"]


def test_overlay_per_variant_in_a_models_family(make_repo, cli):
    root = make_repo({
        "models/fam/variants.yaml": """\
            alpha:
              model: acme/alpha
              variables: {steps: 4}
              overlay: models/fam/overlays/alpha.yaml
            beta:
              model: acme/beta
              variables: {steps: 8}
            """,
        "models/fam/overlays/alpha.yaml": "environment:\n  - EXTRA=1\nbuild:\n  gpu: false\n",
    })
    assert cli("render", cwd=root).code == ExitCode.OK
    cog = yaml.safe_load((root / ".cogfleet/build/alpha/cog.yaml").read_text())
    assert cog["environment"] == ["STEPS=4", "EXTRA=1"]
    assert cog["build"] == {"python_version": "3.11", "gpu": False}
    assert not (root / ".cogfleet/build/alpha/overlays").exists()


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_affected_tracks_base_and_overlay(adopted, cli):
    _git(adopted, "init", "-q", "-b", "main")
    _git(adopted, "-c", "user.email=a@b", "-c", "user.name=a", "add", "-A")
    _git(adopted, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "base")
    write_files(adopted, {"model-cog-configs/dev.yaml": 'predict: "predict.py:DevPredictor"\n'})
    result = cli("affected", "--since", "HEAD", "--explain", cwd=adopted)
    assert result.out.splitlines() == ["dev: model-cog-configs/dev.yaml"]
    write_files(adopted, {"cog.yaml.template": mci_repo.FILES["cog.yaml.template"] + "# x\n"})
    result = cli("affected", "--since", "HEAD", cwd=adopted)
    assert result.out.split() == ["dev", "krea-dev", "schnell"]


def test_select_leaves_the_root_a_cog_folder_as_the_select_script_did(adopted, cli):
    result = cli("select", "krea-dev", cwd=adopted)
    assert result.code == ExitCode.OK, result.err
    cog = yaml.safe_load((adopted / "cog.yaml").read_text())
    assert cog == mci_repo.YQ_OUTPUT["krea-dev"]  # what script/select.sh writes, in meaning
    assert yaml.safe_load((adopted / "cog-safe-push.yaml").read_text())["model"] == (
        "acme/flux-krea-dev"
    )
    # nothing else is written to the root: the predictor and its modules are already there
    assert sorted(line.split()[-1] for line in result.out.splitlines()) == [
        ".dockerignore", "cog-safe-push.yaml", "cog.yaml",
    ]
    ignore_text = (adopted / ".dockerignore").read_text()
    assert ignore_text.startswith(mci_repo.FILES[".dockerignore"])  # the user's lines stay
    # what `cog build` of the root takes: the model's files, not cogfleet's or other variants'
    (adopted / ".cogfleet/local").mkdir(parents=True, exist_ok=True)
    (adopted / ".cogfleet/local/state.db").write_text("")
    taken = set(walk(adopted, DockerIgnore.read(adopted)))
    assert {"predict.py", "common.py", "helpers/text.py", "helpers/__init__.py",
            "cog.yaml"} <= taken
    for rel in taken:
        assert not rel.startswith((".cogfleet/", "model-cache/", ".git/")), rel
    assert "variants.yaml" not in taken and "pyproject.toml" not in taken
    # as the select script and `cog build` had it: the base, overlays and configs are sent,
    # as they are in the variant's build folder
    assert {"cog.yaml.template", "model-cog-configs/dev.yaml", "safe-push-configs/dev.yaml",
            "cog-safe-push.yaml"} <= taken
    assert_select_sends_the_build(adopted, "krea-dev")
    # selecting again changes only what differs
    again = cli("select", "dev", cwd=adopted)
    assert sorted(line.split()[-1] for line in again.out.splitlines()) == [
        "cog-safe-push.yaml", "cog.yaml",
    ]
    assert (adopted / ".dockerignore").read_text() == ignore_text


@pytest.mark.slow
def test_safe_push_of_the_selected_root_runs_the_multi_module_predictor(adopted, cli):
    script = adopted / "script" / "select-model"
    shutil.copy(REPO_ROOT / "script" / "select-model", script)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    chosen = subprocess.run([str(script), "schnell"], cwd=adopted, env=env,
                            capture_output=True, text=True, check=False)
    assert chosen.returncode == 0, chosen.stderr
    report = adopted.parent / "report.json"
    result = cli("safe-push", "--report-json", str(report), cwd=adopted)
    assert result.code == ExitCode.OK, result.out + result.err
    run = json.loads(report.read_text())  # one variant: one document
    assert run["result"] == "passed" and run["model"] == "acme/flux-schnell"
    # each case runs code from the sibling module, the second from the package too
    cases = sorted(run["cases"], key=lambda c: c["index"])
    assert [(c["status"], c["message"]) for c in cases] == [
        ("passed", "output is 'flux:a cat:4'"), ("passed", "output is 'FLUX:A DOG:4!'"),
    ]
    builds = list((adopted / ".cogfleet/local/builds").iterdir())
    assert len(builds) == 1
    pushed = {p.relative_to(builds[0]).as_posix() for p in builds[0].rglob("*") if p.is_file()}
    assert {"predict.py", "common.py", "helpers/text.py", "cog.yaml"} <= pushed
    assert not any(p.startswith(("model-cache/", ".cogfleet/")) for p in pushed), pushed
    # as the select script and `cog build` sent them: the base, overlays and configs too
    assert {"cog.yaml.template", "model-cog-configs/schnell.yaml",
            "safe-push-configs/schnell.yaml"} <= pushed


OFFICIAL_VARIANTS = mci_repo.VARIANTS_YAML.replace(
    "      overlay: model-cog-configs/{variant}.yaml\n",
    "      overlay: model-cog-configs/{variant}.yaml\n"
    "      official_model: acme-official/flux-{variant}\n",
).replace("      dev: {}", "      dev: {official_model: null}")


def test_official_model_missing_for_one_variant_stops_before_anything_runs(adopted, cli):
    write_files(adopted, {"variants.yaml": OFFICIAL_VARIANTS})
    result = cli("push", "dev", "--push-official-model", cwd=adopted)
    assert result.code == ExitCode.USAGE_ERROR
    assert "--push-official-model: dev has no official_model" in result.err
    assert not (adopted / ".cogfleet/local").exists()  # no server was even started


def test_official_model_in_variants_yaml_and_config_must_agree(adopted, cli):
    write_files(adopted, {"variants.yaml": OFFICIAL_VARIANTS})
    config = adopted / "safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "official_model: acme/other\n")
    result = cli("render", "schnell", cwd=adopted)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.startswith("error: safe-push-configs/schnell.yaml:9: official_model: "
                                 "'acme/other' differs from 'acme-official/flux-schnell'")


@pytest.mark.slow
def test_official_model_per_variant_skips_the_variant_without_one(adopted, cli):
    write_files(adopted, {"variants.yaml": OFFICIAL_VARIANTS})
    report = adopted.parent / "report.json"
    result = cli("push", "schnell", "dev", "--push-official-model", "--fuzz-iterations", "0",
                 "--report-json", str(report), cwd=adopted)
    assert result.code == ExitCode.OK, result.out + result.err
    assert "note: dev has no official_model; its official-model push is skipped" in result.err
    reports = json.loads(report.read_text())
    runs = {r["variant"]: {s["name"]: s for s in r["steps"]} for r in reports}
    assert runs["dev"]["official-model"]["status"] == "skipped"
    assert runs["dev"]["promote"]["status"] == "passed"
    assert runs["schnell"]["official-model"]["status"] == "passed"
    assert runs["schnell"]["official-model"]["message"].startswith(
        "pushed acme-official/flux-schnell:"
    )
    assert runs["schnell"]["fuzz"]["status"] == "skipped"
    assert runs["schnell"]["fuzz"]["message"] == "fuzzing disabled (iterations: 0)"
