"""Affected-variant detection on throw-away git repositories.

Each test commits a base, changes one kind of file, and asks ``cogfleet affected``
which variants that change affects. The repo has three variants: ``alpha`` and
``beta`` (family ``fam``, shared ``templates/cog.yaml.j2`` which includes a partial;
alpha's config includes a shared case file) and ``gamma`` (family ``other``, its own
template which imports a macro file and uses a plugin's filter).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cogfleet import ExitCode
from cogfleet._affected import affected_variants, changed_files, is_global
from cogfleet._repo import Repo
from cogfleet.runtime import installed_version
from tests.conftest import BASIC_REPO, PREDICT_PY, CliResult, write_files

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}

FILES: dict[str, str | bytes | None] = {
    "cog-safe-push-configs/alpha.yaml": """\
        model: {{ model }}
        predict:
          test_cases:
        {% include "cog-safe-push-configs/shared/cases.yaml.j2" %}
        """,
    # bytes: written as-is (no dedent), the indentation is part of the YAML
    "cog-safe-push-configs/shared/cases.yaml.j2": (
        b"    - inputs: {prompt: hi}\n      exact_string: \"hi:4\"\n"
    ),
    "models/other/variants.yaml": """\
        gamma:
          model: acme/gamma
          template: templates/gamma.yaml.j2
          variables: {steps: 2}
        """,
    "models/other/predict.py": PREDICT_PY,
    "templates/gamma.yaml.j2": """\
        {% import "macros.j2" as m %}
        # {{ variant | shout }}
        build:
          python_version: "3.11"
        run: "predict.py:Predictor"
        {{ m.env(steps) }}
        """,
    "templates/macros.j2": """\
        {% macro env(n) %}environment:
          - STEPS={{ n }}
        {% endmacro %}
        """,
    "cog-safe-push-configs/gamma.yaml": "model: acme/gamma\n",
    "cog-safe-push-configs/beta.yaml": """\
        model: acme/beta
        predict:
          test_cases:
            - inputs: {prompt: hi}
              match_url: cog-safe-push-configs/reference/beta.txt
        """,
    "cog-safe-push-configs/reference/beta.txt": "hi:8\n",
    "plugins/shout.py": """\
        from cogfleet import hookimpl


        @hookimpl
        def cogfleet_template_filters(register):
            register("shout", str.upper)
        """,
    "pyproject.toml": "[project]\nname = 'demo'\n",
    "noxfile.py": "import nox\n",
    "README.md": "# demo\n",
    ".gitignore": ".cogfleet/\n__pycache__/\n",
}


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=root, env={**os.environ, **GIT_ENV},
        capture_output=True, text=True, check=True,
    )
    return proc.stdout.strip()


def commit(root: Path, files: dict[str, str | bytes | None], message: str = "change") -> str:
    write_files(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    root = make_repo(FILES)
    git(root, "init", "-q", "-b", "main")
    commit(root, {}, "base")
    return root


Affect = Callable[..., dict[str, list[str]]]


@pytest.fixture
def affected(cli: Callable[..., CliResult]) -> Affect:
    """``affected(root, base)`` -> {variant: [changed files]} from ``--explain``."""

    def run(root: Path, base: str = "main~1") -> dict[str, list[str]]:
        result = cli("affected", "--since", base, "--explain", cwd=root)
        assert result.code == ExitCode.OK, result.err
        out: dict[str, list[str]] = {}
        for line in result.out.splitlines():
            name, _, why = line.partition(": ")
            out.setdefault(name, []).append(why)
        return out

    return run


def test_template_include_affects_the_variants_rendering_it(repo: Path, affected: Affect):
    commit(repo, {"templates/partials/env.yaml.j2": "environment:\n  - STEPS=9\n"})
    assert affected(repo) == {
        "alpha": ["templates/partials/env.yaml.j2"],
        "beta": ["templates/partials/env.yaml.j2"],
    }


def test_imported_macro_file_affects_its_variant_only(repo: Path, affected: Affect):
    commit(repo, {"templates/macros.j2": "{% macro env(n) %}{% endmacro %}\n"})
    assert affected(repo) == {"gamma": ["templates/macros.j2"]}


def test_family_source_affects_the_family(repo: Path, affected: Affect):
    commit(repo, {"models/fam/predict.py": PREDICT_PY + "\n# tweak\n"})
    assert affected(repo) == {
        "alpha": ["models/fam/predict.py"], "beta": ["models/fam/predict.py"],
    }


def test_new_family_file_affects_the_family(repo: Path, affected: Affect):
    commit(repo, {"models/other/weights.txt": "w\n"})
    assert affected(repo) == {"gamma": ["models/other/weights.txt"]}


def test_config_include_affects_the_variant_that_includes_it(repo: Path, affected: Affect):
    commit(repo, {"cog-safe-push-configs/shared/cases.yaml.j2": (
        b"    - inputs: {prompt: yo}\n      exact_string: \"yo:4\"\n"
    )})
    assert affected(repo) == {"alpha": ["cog-safe-push-configs/shared/cases.yaml.j2"]}


def test_config_itself(repo: Path, affected: Affect):
    commit(repo, {"cog-safe-push-configs/beta.yaml": "model: acme/beta\ntest_hardware: cpu\n"})
    assert affected(repo) == {"beta": ["cog-safe-push-configs/beta.yaml"]}


def test_dependencies_follow_what_rendering_reads(repo: Path, affected: Affect):
    """Once beta's config includes the shared cases too, a change to them affects beta."""
    commit(repo, {"cog-safe-push-configs/beta.yaml": """\
        model: acme/beta
        predict:
          test_cases:
        {% include "cog-safe-push-configs/shared/cases.yaml.j2" %}
        """})
    commit(repo, {"cog-safe-push-configs/shared/cases.yaml.j2": b"    - inputs: {prompt: x}\n"})
    assert affected(repo) == {
        "alpha": ["cog-safe-push-configs/shared/cases.yaml.j2"],
        "beta": ["cog-safe-push-configs/shared/cases.yaml.j2"],
    }


def test_reference_output_named_in_the_config(repo: Path, affected: Affect):
    commit(repo, {"cog-safe-push-configs/reference/beta.txt": "hi:6\n"})
    assert affected(repo) == {"beta": ["cog-safe-push-configs/reference/beta.txt"]}


@pytest.mark.parametrize("path", ["plugins/shout.py", "plugins/new_plugin.py",
                                  "pyproject.toml", "noxfile.py"])
def test_global_files_affect_every_variant(repo: Path, affected: Affect, path: str):
    content = "# changed\n" if path.endswith(".py") else "[project]\nname = 'demo2'\n"
    if path == "plugins/shout.py":
        content = (repo / path).read_text() + "# changed\n"
    commit(repo, {path: content})
    assert affected(repo) == {name: [path] for name in ("alpha", "beta", "gamma")}


def test_unrelated_file_affects_nothing(
    repo: Path, affected: Affect, cli: Callable[..., CliResult]
):
    commit(repo, {"README.md": "# demo, documented\n", "docs/notes.md": "notes\n"})
    assert affected(repo) == {}
    result = cli("matrix", "--changed-since", "main~1", cwd=repo)
    assert result.code == ExitCode.OK
    assert result.out == '{"include":[]}\n'


def test_variant_declaration_change_affects_that_variant_only(repo: Path, affected: Affect):
    text = (repo / "models/fam/variants.yaml").read_text().replace("steps: 8", "steps: 6")
    commit(repo, {"models/fam/variants.yaml": text})
    assert affected(repo) == {"beta": ["models/fam/variants.yaml"]}


@pytest.mark.parametrize(
    "added",
    [
        "official_model: acme/beta-prod",
        "replace: {python_version: python_version}",
        "jinja: {templates: [templates/cog.yaml.j2], trim_blocks: true}",
        "cog_version: '0.15.8'",
    ],
)
def test_any_key_of_a_variant_declaration_affects_that_variant(
    repo: Path, affected: Affect, added: str
):
    text = (repo / "models/fam/variants.yaml").read_text()
    text = text.replace("  variables: {steps: 8}\n", f"  variables: {{steps: 8}}\n  {added}\n")
    commit(repo, {"models/fam/variants.yaml": text})
    assert affected(repo) == {"beta": ["models/fam/variants.yaml"]}


def test_comment_in_variants_yaml_affects_nothing(repo: Path, affected: Affect):
    text = (repo / "models/fam/variants.yaml").read_text()
    commit(repo, {"models/fam/variants.yaml": "# the fam family\n" + text})
    assert affected(repo) == {}


def test_new_variant_is_affected_and_appears_in_the_matrix(
    repo: Path, affected: Affect, cli: Callable[..., CliResult]
):
    text = (repo / "models/fam/variants.yaml").read_text()
    commit(repo, {
        "models/fam/variants.yaml": text + "delta:\n  model: acme/delta\n  variables: {steps: 2}\n",
        "cog-safe-push-configs/delta.yaml": "model: acme/delta\n",
    })
    assert affected(repo) == {"delta": [
        "cog-safe-push-configs/delta.yaml", "models/fam/variants.yaml (new variant)",
    ]}
    result = cli("matrix", "--changed-since", "main~1", cwd=repo)
    cog = installed_version()  # no pin in this repo
    assert result.out == (
        f'{{"include":[{{"variant":"delta","model":"acme/delta","cog_version":"{cog}"}}]}}\n'
    )


def test_deleted_file_read_only_at_the_base(repo: Path, affected: Affect):
    """The template falls back to another partial once the first is deleted: nothing at
    HEAD reads the deleted file, but alpha and beta read it at the base."""
    commit(repo, {
        "templates/cog.yaml.j2": """\
            # {{ variant }}
            build:
              python_version: "3.11"
            {% include ["partials/override.yaml.j2", "partials/env.yaml.j2"] %}
            run: "predict.py:Predictor"
            """,
        "templates/partials/override.yaml.j2": "environment:\n  - STEPS=1\n",
    })
    commit(repo, {"templates/partials/override.yaml.j2": None})
    assert affected(repo) == {
        "alpha": ["templates/partials/override.yaml.j2"],
        "beta": ["templates/partials/override.yaml.j2"],
    }


def test_rename_counts_both_paths(repo: Path, affected: Affect):
    git(repo, "mv", "templates/macros.j2", "templates/macros2.j2")
    text = (repo / "templates/gamma.yaml.j2").read_text().replace("macros.j2", "macros2.j2")
    commit(repo, {"templates/gamma.yaml.j2": text})
    assert affected(repo) == {"gamma": [
        "templates/gamma.yaml.j2", "templates/macros.j2", "templates/macros2.j2",
    ]}


def test_uncommitted_and_untracked_changes_count(repo: Path, affected: Affect):
    write_files(repo, {"models/other/predict.py": PREDICT_PY + "# wip\n",
                       "models/fam/notes.txt": "untracked\n"})
    assert affected(repo, "HEAD") == {
        "alpha": ["models/fam/notes.txt"], "beta": ["models/fam/notes.txt"],
        "gamma": ["models/other/predict.py"],
    }


def test_merge_base_ignores_changes_made_on_the_base_branch(repo: Path, affected: Affect):
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"templates/macros.j2": "{% macro env(n) %}{% endmacro %}\n"})
    git(repo, "checkout", "-q", "main")
    commit(repo, {"models/fam/predict.py": PREDICT_PY + "# on main\n"})
    git(repo, "checkout", "-q", "feature")
    assert affected(repo, "main") == {"gamma": ["templates/macros.j2"]}


def test_shallow_clone_with_the_base_fetched(repo: Path, tmp_path: Path, affected: Affect,
                                             cli: Callable[..., CliResult]):
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"models/other/predict.py": PREDICT_PY + "# feature\n"})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth=1", "--branch", "feature",
        f"file://{repo}", str(clone))
    missing = cli("affected", "--since", "origin/main", cwd=clone)
    assert missing.code == ExitCode.USAGE_ERROR
    assert missing.err == ("error: base ref 'origin/main' not found; fetch it "
                           "(e.g. git fetch --depth=1 origin main)\n")
    git(clone, "fetch", "-q", "--depth=1", "origin", "main:refs/remotes/origin/main")
    assert affected(clone, "origin/main") == {"gamma": ["models/other/predict.py"]}


def test_monorepo_in_a_subfolder_of_the_git_repo(tmp_path: Path, affected: Affect):
    top = tmp_path / "top"
    sub = top / "ml"
    write_files(sub, {**BASIC_REPO, **FILES})
    write_files(top, {"app/main.py": "print()\n"})
    git(top, "init", "-q", "-b", "main")
    commit(top, {}, "base")
    commit(top, {"app/main.py": "print(1)\n",
                 "ml/templates/macros.j2": "{% macro env(n) %}{% endmacro %}\n"})
    assert affected(sub) == {"gamma": ["templates/macros.j2"]}
    assert changed_files(sub, "main~1")[1] == ["templates/macros.j2"]


def test_null_base_means_every_variant(repo: Path, cli: Callable[..., CliResult]):
    result = cli("matrix", "--changed-since", "0" * 40, cwd=repo)
    assert result.code == ExitCode.OK
    assert [e["variant"] for e in json.loads(result.out)["include"]] == [
        "alpha", "beta", "gamma",
    ]


def test_not_a_git_repository(make_repo: Callable[..., Path], cli: Callable[..., CliResult],
                              monkeypatch: pytest.MonkeyPatch):
    root = make_repo()
    # keep git from finding a repository above the temporary folder
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(root.parent))
    result = cli("affected", "--since", "main", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert "is not inside a git work tree" in result.err
    assert result.err.count("\n") == 1


def test_plain_output_lists_names(repo: Path, cli: Callable[..., CliResult]):
    commit(repo, {"models/fam/predict.py": PREDICT_PY + "# x\n"})
    result = cli("affected", "--since", "main~1", cwd=repo)
    assert (result.code, result.out) == (ExitCode.OK, "alpha\nbeta\n")
    unchanged = cli("affected", "--since", "HEAD", cwd=repo)
    assert (unchanged.out, unchanged.err) == (
        "", "no variant is affected by the changes since HEAD\n"
    )


def test_library_api(repo: Path):
    commit(repo, {"templates/partials/env.yaml.j2": "environment: []\n"})
    found = affected_variants(Repo.load(repo), "main~1")
    assert [(a.variant, a.model) for a in found] == [("alpha", "acme/alpha"), ("beta", "acme/beta")]
    assert is_global("plugins/sub/x.py") and is_global("noxfile.py")
    assert not is_global("models/plugins/x.py")


def test_json_output(repo: Path, cli: Callable[..., CliResult]):
    commit(repo, {"templates/macros.j2": "{% macro env(n) %}{% endmacro %}\n"})
    result = cli("affected", "--since", "main~1", "--json", cwd=repo)
    assert result.code == ExitCode.OK
    assert json.loads(result.out) == [
        {"variant": "gamma", "model": "acme/gamma", "changed": ["templates/macros.j2"]},
    ]


def test_unreadable_base_counts_deleted_files_for_every_variant(repo: Path, affected: Affect):
    """At the base a config had no variant (the repo did not load); what each variant
    read there is unknown, so the deleted files are counted for all of them."""
    commit(repo, {"cog-safe-push-configs/orphan.yaml": "model: acme/orphan\n",
                  "models/fam/extra.txt": "x\n"})
    commit(repo, {"cog-safe-push-configs/orphan.yaml": None, "models/fam/extra.txt": None})
    expected = ["cog-safe-push-configs/orphan.yaml", "models/fam/extra.txt"]
    assert affected(repo) == {"alpha": expected, "beta": expected, "gamma": expected}


def test_bytecode_caches_are_never_inputs(repo: Path, affected: Affect):
    # a repo that does not git-ignore __pycache__: importing a plugin writes bytecode
    # under plugins/, which must not make every variant affected
    commit(repo, {".gitignore": ".cogfleet/\n"})
    write_files(repo, {
        "plugins/__pycache__/shout.cpython-311.pyc": b"\x00bytecode",
        "models/fam/__pycache__/predict.cpython-311.pyc": b"\x00bytecode",
        "models/fam/helper.pyc": b"\x00bytecode",
    })
    assert affected(repo, "main") == {}
