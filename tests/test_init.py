"""`cogfleet init`: adopting a model-ci-template repo in place, scaffolding a new one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cogfleet import ExitCode
from tests import mci_repo
from tests.conftest import PREDICT_PY, assert_select_sends_the_build, write_files
from tests.test_workflows import tool


@pytest.fixture
def mci(tmp_path: Path) -> Path:
    root = tmp_path / "flux"
    write_files(root, dict(mci_repo.FILES))
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*") if p.is_file() and ".cogfleet" not in p.parts
    }


def test_init_adopts_in_place_then_list_and_render_work(mci, cli):
    before = _snapshot(mci)
    result = cli("init", cwd=mci)
    assert result.code == ExitCode.OK, result.err
    after = _snapshot(mci)
    # nothing of the repo was moved or rewritten; two files are new
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(set(after) - set(before)) == ["pyproject.toml", "variants.yaml"]
    settings = (mci / "pyproject.toml").read_text()
    assert 'configs-dir = "safe-push-configs"' in settings
    assert 'cog-version = "0.16.8"' in settings  # what the push workflow installs
    listed = cli("list", cwd=mci)
    assert [line.split()[0] for line in listed.out.splitlines()] == ["dev", "krea-dev", "schnell"]
    assert cli("render", cwd=mci).code == ExitCode.OK
    for variant, expected in mci_repo.YQ_OUTPUT.items():
        cog = yaml.safe_load((mci / ".cogfleet/build" / variant / "cog.yaml").read_text())
        assert cog == expected, variant


def test_init_adopts_a_select_script_merging_with_yq_star_lists_replaced(mci, cli):
    # `ireduce` over the two files with `*` (not `*+`): an overlay's list replaces the base's
    script = mci_repo.FILES["script/select.sh"].replace(
        "'select(fileIndex == 0) *+ select(fileIndex == 1)'",
        "'. as $item ireduce ({}; . * $item)'")
    write_files(mci, {"script/select.sh": script})
    result = cli("init", cwd=mci)
    assert result.code == ExitCode.OK, result.err
    variants = yaml.safe_load((mci / "variants.yaml").read_text())
    assert variants["defaults"]["merge"] == "replace-lists"
    assert cli("render", cwd=mci).code == ExitCode.OK
    replaced = {"dev": ("build", "run", ["echo dev"]),
                "krea-dev": ("environment", None, ["MCI_KREA=1"])}
    for variant, expected in mci_repo.YQ_OUTPUT.items():
        cog = yaml.safe_load((mci / ".cogfleet/build" / variant / "cog.yaml").read_text())
        if variant in replaced:
            top, inner, value = replaced[variant]
            expected = {**expected, top: {**expected[top], inner: value} if inner else value}
        assert cog == expected, variant
    # another expression is refused, naming the script and what it found
    write_files(mci, {"script/select.sh": script.replace(". * $item", ". *d $item")})
    (mci / "variants.yaml").unlink()
    (mci / "pyproject.toml").unlink()
    result = cli("init", cwd=mci)
    assert result.code == ExitCode.USAGE_ERROR
    assert "script/select.sh: merges with '. as $item ireduce ({}; . *d $item)'" in result.err


def test_init_leaves_git_two_new_files_to_commit(mci, cli):
    # what cogfleet keeps for itself (.cogfleet/, compiled templates included) is ignored
    # by git without touching the repo's own .gitignore
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", *args],
                              cwd=mci, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "the repo as it was")
    assert cli("init", cwd=mci).code == ExitCode.OK
    assert (mci / ".cogfleet").is_dir()
    assert sorted(git("status", "--porcelain").splitlines()) == [
        "?? pyproject.toml", "?? variants.yaml"
    ]


def test_init_reads_official_models_from_the_workflow(mci, cli):
    assert cli("init", cwd=mci).code == ExitCode.OK
    listed = {v["name"]: v for v in yaml.safe_load(cli("list", "--json", cwd=mci).out)}
    assert listed["dev"]["official_model"] == "acme-official/flux-dev"
    assert listed["schnell"]["official_model"] == "acme-official/flux-schnell"
    assert "official_model" not in listed["krea-dev"]  # the workflow skips its push


def test_init_appends_to_an_existing_pyproject(mci, cli):
    original = "[project]\nname = \"flux\"\n\n[tool.ruff]\nline-length = 88\n"
    (mci / "pyproject.toml").write_text(original)
    assert cli("init", cwd=mci).code == ExitCode.OK
    text = (mci / "pyproject.toml").read_text()
    assert text.startswith(original) and "[tool.cogfleet]" in text


def test_dry_run_writes_nothing_and_shows_the_files(mci, cli):
    before = _snapshot(mci)
    result = cli("init", "--dry-run", cwd=mci)
    assert result.code == ExitCode.OK, result.err
    assert _snapshot(mci) == before
    assert "would write variants.yaml" in result.out
    assert "overlay: model-cog-configs/{variant}.yaml" in result.out
    assert 'configs-dir = "safe-push-configs"' in result.out


def test_overlays_without_a_config_are_skipped_with_a_note(mci, cli):
    write_files(mci, {"model-cog-configs/test.yaml": 'predict: "predict.py:DevPredictor"\n'})
    result = cli("init", cwd=mci)
    assert result.code == ExitCode.OK, result.err
    assert "skipped test: model-cog-configs/test.yaml has no config" in result.out + result.err
    assert "test" not in cli("list", cwd=mci).out.split()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"safe-push-configs/extra.yaml": "model: acme/extra\n"},
         "safe-push-configs/extra.yaml has no overlay model-cog-configs/extra.yaml"),
        ({"cog-safe-push-configs/dev.yaml": "model: acme/dev\n", "script/select.sh": None},
         "ambiguous cog-safe-push configs: found safe-push-configs/<variant>.yaml and "
         "cog-safe-push-configs/<variant>.yaml"),
        ({"cog.yaml.j2": "build: {}\n", "script/select.sh": None},
         "ambiguous base cog.yaml: found cog.yaml.template and cog.yaml.j2"),
        ({"safe-push-configs/dev.yaml": None, "safe-push-configs/schnell.yaml": None,
          "safe-push-configs/krea-dev.yaml": None, "script/select.sh": None},
         "missing one cog-safe-push config per variant"),
        ({"cog.yaml.template": None, "script/select.sh": None},
         "missing the base cog.yaml"),
    ],
)
def test_bad_or_ambiguous_layouts_exit_2_naming_found_and_missing(mci, cli, change, message):
    write_files(mci, change)
    if (mci / "safe-push-configs").is_dir() and not any((mci / "safe-push-configs").iterdir()):
        (mci / "safe-push-configs").rmdir()
    before = _snapshot(mci)
    result = cli("init", cwd=mci)
    assert result.code == ExitCode.USAGE_ERROR
    assert message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
    assert _snapshot(mci) == before  # nothing written


def test_a_variant_that_does_not_render_leaves_nothing_written(mci, cli):
    # the dev overlay appends to build.run, a string in this base: the merge fails
    write_files(mci, {"cog.yaml.template": "build:\n  python_version: '3.11'\n  run: echo\n"})
    before = _snapshot(mci)
    result = cli("init", cwd=mci)
    assert result.code == ExitCode.USAGE_ERROR
    assert "model-cog-configs/dev.yaml" in result.err and "wrote nothing" in result.err
    assert _snapshot(mci) == before


def test_init_twice_says_it_is_already_a_monorepo(mci, cli):
    assert cli("init", cwd=mci).code == ExitCode.OK
    result = cli("init", cwd=mci)
    assert result.code == ExitCode.USAGE_ERROR
    assert "already a cogfleet monorepo (variants.yaml exists)" in result.err


def test_a_folder_that_is_neither_empty_nor_adoptable(tmp_path, cli):
    write_files(tmp_path / "x", {"notes.txt": "hi\n"})
    result = cli("init", cwd=tmp_path / "x")
    assert result.code == ExitCode.USAGE_ERROR
    assert "found notes.txt" in result.err and "missing" in result.err
    assert "a select script that writes cog.yaml, such as script/select.sh" in result.err
    assert len(result.err.strip().splitlines()) == 1


_PLAIN_COG = {"cog.yaml": 'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n',
              "predict.py": PREDICT_PY, "README.md": "# a model\n"}


def test_a_plain_cog_folder_with_its_config_is_one_variant(tmp_path, cli):
    root = tmp_path / "fast-model"
    write_files(root, {**_PLAIN_COG, "cog-safe-push.yaml": "model: acme/fast\n"})
    result = cli("adopt", cwd=root)  # `adopt` is init's other name
    assert result.code == ExitCode.OK, result.err
    assert "found: one Cog folder (cog.yaml at the top); its config cog-safe-push.yaml" \
        in result.out
    listed = json.loads(cli("list", "--json", cwd=root).out)
    assert [(v["name"], v["model"]) for v in listed] == [("fast", "acme/fast")]
    assert cli("lint", cwd=root).code == ExitCode.OK
    build = root / ".cogfleet/build/fast"
    assert (build / "cog.yaml").read_bytes() == (root / "cog.yaml").read_bytes()
    assert (build / "cog-safe-push.yaml").read_bytes() == (root / "cog-safe-push.yaml").read_bytes()
    assert (build / "predict.py").is_file() and (build / "README.md").is_file()
    # select leaves the root cog.yaml as it is (it is the variant's) and never removes it
    result = cli("select", "fast", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert (root / "cog.yaml").read_text() == _PLAIN_COG["cog.yaml"]
    assert_select_sends_the_build(root, "fast")
    assert cli("select", "--clear", cwd=root).code == ExitCode.OK
    assert (root / "cog.yaml").read_text() == _PLAIN_COG["cog.yaml"]
    assert (root / "cog-safe-push.yaml").read_text() == "model: acme/fast\n"


def test_a_plain_cog_folder_names_its_model_by_cog_yaml_image_or_exits_2(tmp_path, cli):
    root = tmp_path / "plain"
    write_files(root, dict(_PLAIN_COG))
    result = cli("init", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.strip() == (
        "error: cannot adopt this repo: it is one Cog folder (cog.yaml at the top) with no "
        "cog-safe-push.yaml and no `image: r8.im/<owner>/<name>` in cog.yaml, so the model it "
        "pushes is unknown; write cog-safe-push.yaml with `model: <owner>/<name>`, then run "
        "init again"
    )
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "cog.yaml", "predict.py"]
    write_files(root, {"cog.yaml": _PLAIN_COG["cog.yaml"] + 'image: "r8.im/acme/plain-v2"\n'})
    result = cli("init", cwd=root)
    assert result.code == ExitCode.OK, result.err
    assert (root / "cog-safe-push-configs/plain-v2.yaml").read_text().endswith(
        "model: acme/plain-v2\n")
    listed = json.loads(cli("list", "--json", cwd=root).out)
    assert [(v["name"], v["model"]) for v in listed] == [("plain-v2", "acme/plain-v2")]
    assert cli("render", cwd=root).code == ExitCode.OK


def test_scaffold_in_an_empty_folder_dry_run(tmp_path, cli):
    empty = tmp_path / "new"
    empty.mkdir()
    result = cli("init", "--dry-run", cwd=empty)
    assert result.code == ExitCode.OK
    assert list(empty.iterdir()) == []
    assert "would write models/hello/variants.yaml" in result.out


@pytest.mark.slow
def test_scaffold_pushes_at_once(tmp_path, cli):
    empty = tmp_path / "new"
    empty.mkdir()
    result = cli("init", cwd=empty)
    assert result.code == ExitCode.OK, result.err
    for rel in ("models/hello/variants.yaml", "models/hello/predict.py", "templates/cog.yaml.j2",
                "cog-safe-push-configs/hello.yaml", "noxfile.py", ".github/workflows/ci.yaml",
                ".github/workflows/push.yaml"):
        assert (empty / rel).is_file(), rel
    assert cli("lint", cwd=empty).code == ExitCode.OK
    result = cli("push", "hello", cwd=empty)
    assert result.code == ExitCode.OK, result.out + result.err
    # nox lists the sessions (the noxfile imports and is well formed)
    listed = subprocess.run([sys.executable, "-m", "nox", "-l"], cwd=empty,
                            capture_output=True, text=True, check=False)
    assert listed.returncode == 0 and "push" in listed.stdout


def test_scaffold_noxfile_keeps_exit_code_2_for_bad_input(tmp_path, cli):
    empty = tmp_path / "new"
    empty.mkdir()
    assert cli("init", cwd=empty).code == ExitCode.OK
    proc = subprocess.run([sys.executable, "-m", "nox", "-s", "push", "--", "nope"], cwd=empty,
                          capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("nox >")]
    assert errors == ["error: unknown variant 'nope'; valid: hello"]


def test_scaffold_workflows_pass_actionlint(tmp_path, cli):
    empty = tmp_path / "new"
    empty.mkdir()
    assert cli("init", cwd=empty).code == ExitCode.OK
    binary = tool("actionlint")
    if binary is None:
        pytest.skip("actionlint is not installed (pip install '.[test]')")
    shellcheck = tool("shellcheck")
    extra = [f"-shellcheck={shellcheck}"] if shellcheck else []
    workflows = sorted(str(p) for p in (empty / ".github/workflows").glob("*.yaml"))
    assert len(workflows) == 2
    proc = subprocess.run([binary, "-no-color", *extra, *workflows], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scaffold_workflows_install_each_variants_pinned_cog(tmp_path, cli):
    empty = tmp_path / "new"
    empty.mkdir()
    assert cli("init", cwd=empty).code == ExitCode.OK
    for name in ("ci.yaml", "push.yaml"):
        text = (empty / ".github/workflows" / name).read_text()
        assert "releases/latest" not in text, name
        assert "COG_VERSION: ${{ matrix.cog_version }}" in text, name
        assert "COG_RELEASES: https://github.com/replicate/cog/releases/download\n" in text
        assert '"$COG_RELEASES/v${COG_VERSION}/cog_' in text, name
    # and the matrix the workflows read names that version for every variant
    matrix = cli("matrix", "--variants", "all", cwd=empty)
    entries = json.loads(matrix.out)["include"]
    assert entries and all(e["cog_version"] for e in entries), matrix.out

