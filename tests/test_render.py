"""Rendering build folders: templates, includes, determinism, errors, side by side."""

from __future__ import annotations

import os
import subprocess

import yaml

from cogfleet import ExitCode


def _build(root, variant):
    return root / ".cogfleet" / "build" / variant


def test_render_writes_build_folder(make_repo, cli):
    root = make_repo()
    result = cli("render", "alpha", cwd=root)
    assert result.code == ExitCode.OK, result.err
    build = _build(root, "alpha")
    assert sorted(p.name for p in build.iterdir()) == [
        "cog-safe-push.yaml",
        "cog.yaml",
        "predict.py",
    ]
    cog = yaml.safe_load((build / "cog.yaml").read_text())
    assert cog["environment"] == ["STEPS=4"]  # from the included partial
    assert cog["predict"] == "predict.py:Predictor"
    config = yaml.safe_load((build / "cog-safe-push.yaml").read_text())
    assert config["model"] == "acme/alpha"  # config rendered through Jinja
    assert not (root / "cog.yaml").exists()  # nothing written to the repo root


def test_variants_render_side_by_side(make_repo, cli):
    root = make_repo()
    assert cli("render", cwd=root).code == ExitCode.OK
    alpha = yaml.safe_load((_build(root, "alpha") / "cog.yaml").read_text())
    beta = yaml.safe_load((_build(root, "beta") / "cog.yaml").read_text())
    assert alpha["environment"] == ["STEPS=4"]
    assert beta["environment"] == ["STEPS=8"]


def test_j2_files_rendered_without_suffix(make_repo, cli):
    root = make_repo(
        {
            "models/fam/settings.py.j2": "VARIANT = {{ variant | tojson }}\nSTEPS = {{ steps }}\n",
        }
    )
    assert cli("render", "beta", cwd=root).code == ExitCode.OK
    build = _build(root, "beta")
    assert (build / "settings.py").read_text() == 'VARIANT = "beta"\nSTEPS = 8\n'
    assert not (build / "settings.py.j2").exists()


def test_render_is_deterministic_and_skips_unchanged(make_repo, cli):
    root = make_repo()
    cli("render", "alpha", cwd=root)
    build = _build(root, "alpha")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in build.iterdir()}
    # make any rewrite visible in mtime
    for p in build.iterdir():
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    result = cli("render", "alpha", cwd=root)
    assert "0 changed" in result.out
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in build.iterdir()}
    assert {k: v[0] for k, v in before.items()} == {k: v[0] for k, v in after.items()}
    assert all(v[1] == 1_000_000_000 for v in after.values())


def test_stale_files_are_removed(make_repo, cli, tmp_path):
    root = make_repo({"models/fam/helper.py": "X = 1\n"})
    cli("render", "alpha", cwd=root)
    assert (_build(root, "alpha") / "helper.py").exists()
    (root / "models/fam/helper.py").unlink()
    result = cli("render", "alpha", cwd=root)
    assert result.code == ExitCode.OK
    assert not (_build(root, "alpha") / "helper.py").exists()


def test_undefined_variable_names_template_line_variable_variant(make_repo, cli):
    root = make_repo(
        {"templates/partials/env.yaml.j2": "environment:\n  - A=1\n  - B={{ missing_var }}\n"}
    )
    result = cli("render", "alpha", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err.strip() == (
        "error: templates/partials/env.yaml.j2:3: undefined variable 'missing_var' "
        "(variant 'alpha')"
    )
    assert not _build(root, "alpha").exists()  # nothing half-written


def test_template_error_in_one_variant_writes_no_variant(make_repo, cli):
    root = make_repo({"templates/cog.yaml.j2": "build:\n  python_version: '3.11'\n"
                      "predict: predict.py:Predictor\n"
                      "{% if variant == 'beta' %}{{ nope }}{% endif %}\n"})
    result = cli("render", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "'nope'" in result.err and "'beta'" in result.err
    assert not _build(root, "alpha").exists()


def test_config_include_and_variables(make_repo, cli):
    root = make_repo(
        {
            "cog-safe-push-configs/shared/cases.yaml.j2": """\
                - inputs: {prompt: shared}
                  exact_string: "shared:{{ steps }}"
                """,
            "cog-safe-push-configs/beta.yaml": """\
                model: acme/beta
                predict:
                  test_cases:
                {% filter indent(4, first=True) %}{% include "shared/cases.yaml.j2" %}
                {%- endfilter %}
                """,
        }
    )
    result = cli("render", "beta", cwd=root)
    assert result.code == ExitCode.OK, result.err
    config = yaml.safe_load((_build(root, "beta") / "cog-safe-push.yaml").read_text())
    assert config["predict"]["test_cases"][0]["exact_string"] == "shared:8"


def test_template_override_per_variant(make_repo, cli):
    root = make_repo(
        {
            "templates/gpu.yaml.j2": "build:\n  gpu: true\n  cuda: '12.4'\n"
            "  python_version: '3.11'\npredict: predict.py:Predictor\n",
            "models/fam/variants.yaml": """\
                alpha:
                  model: acme/alpha
                  variables: {steps: 4}
                  template: templates/gpu.yaml.j2
                beta:
                  model: acme/beta
                  variables: {steps: 8}
                """,
        }
    )
    assert cli("render", cwd=root).code == ExitCode.OK
    assert yaml.safe_load((_build(root, "alpha") / "cog.yaml").read_text())["build"]["gpu"]
    assert "gpu" not in yaml.safe_load((_build(root, "beta") / "cog.yaml").read_text())["build"]


def test_invalid_cog_yaml_is_an_error_and_leaves_nothing(make_repo, cli):
    root = make_repo(
        {"templates/cog.yaml.j2": "build:\n  python_version: 3.9\npredict: predict.py:Predictor\n"}
    )
    result = cli("render", "alpha", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "cog.yaml" in result.err and "python_version" in result.err
    assert not (_build(root, "alpha") / "cog.yaml").exists()


def test_model_mismatch_between_variant_and_config(make_repo, cli):
    root = make_repo({"cog-safe-push-configs/beta.yaml": "model: acme/other\n"})
    result = cli("render", "beta", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "cog-safe-push-configs/beta.yaml" in result.err and "acme/other" in result.err


def test_render_records_files_read(make_repo):
    from cogfleet._plugins import Plugins
    from cogfleet._render import render_in_memory
    from cogfleet._repo import Repo

    root = make_repo()
    repo = Repo.load(root)
    rendered = render_in_memory(repo, repo.variants["alpha"], Plugins(root))
    assert rendered.reads == {
        "models/fam/predict.py",
        "templates/cog.yaml.j2",
        "templates/partials/env.yaml.j2",
        "cog-safe-push-configs/alpha.yaml",
    }


def test_state_folder_is_ignored_by_git_in_any_repo(make_repo, cli):
    # a repo whose .gitignore says nothing of .cogfleet/: render must not litter git status
    root = make_repo()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    assert cli("render", cwd=root).code == 0
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
        capture_output=True, text=True, check=True,
    ).stdout
    assert (root / ".cogfleet" / "build" / "alpha" / "cog.yaml").is_file()
    assert ".cogfleet" not in status
    assert "models/fam/predict.py" in status  # the repo's own files still show
