"""``cogfleet matrix``: one line of JSON for GitHub Actions' ``strategy.matrix``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cogfleet import ExitCode
from cogfleet.runtime import installed_version
from tests.conftest import CliResult, run_console

COG = installed_version()  # no pin in these repos: the installed Cog SDK

# gamma declares no model in variants.yaml: the matrix takes it from its config
EXTRA = {
    "models/other/variants.yaml": "gamma:\n  variables: {steps: 2}\n",
    "models/other/predict.py": "from cog import BasePredictor\n",
    "models/other/cog.yaml": 'build:\n  python_version: "3.11"\nrun: "predict.py:Predictor"\n',
    "cog-safe-push-configs/gamma.yaml": "model: acme/gamma-from-config\n",
}

ALL = [
    {"variant": "alpha", "model": "acme/alpha", "cog_version": COG},
    {"variant": "beta", "model": "acme/beta", "cog_version": COG},
    {"variant": "gamma", "model": "acme/gamma-from-config", "cog_version": COG},
]


@pytest.fixture
def root(make_repo: Callable[..., Path]) -> Path:
    return make_repo(EXTRA)


def matrix_of(result: CliResult) -> list[dict[str, str]]:
    assert result.code == ExitCode.OK, result.err
    # exactly one line, as `echo "matrix=$(...)" >> "$GITHUB_OUTPUT"` needs
    assert result.out.endswith("\n") and result.out.count("\n") == 1
    doc = json.loads(result.out)
    assert set(doc) == {"include"}
    for entry in doc["include"]:
        assert set(entry) == {"variant", "model", "cog_version"}
    return list(doc["include"])


def test_every_variant_by_default(root: Path, cli: Callable[..., CliResult]):
    assert matrix_of(cli("matrix", cwd=root)) == ALL


def test_variants_flag(root: Path, cli: Callable[..., CliResult]):
    assert matrix_of(cli("matrix", "--variants", "gamma,alpha", cwd=root)) == [ALL[0], ALL[2]]
    assert matrix_of(cli("matrix", "--variants", " beta , ", cwd=root)) == [ALL[1]]
    assert matrix_of(cli("matrix", "--variants", "all", cwd=root)) == ALL


def test_unknown_variant_is_a_usage_error(root: Path, cli: Callable[..., CliResult]):
    result = cli("matrix", "--variants", "alpha,nope", cwd=root)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.out == ""
    assert result.err == "error: unknown variant 'nope'; valid: alpha, beta, gamma\n"
    empty = cli("matrix", "--variants", ",", cwd=root)
    assert empty.code == ExitCode.USAGE_ERROR
    assert "--variants" in empty.err
    # an empty value (an unset workflow input) is an error too, never "every variant"
    unset = cli("matrix", "--variants", "", cwd=root)
    assert unset.code == ExitCode.USAGE_ERROR and unset.out == ""
    assert "--variants" in unset.err


def git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def test_changed_since_and_variants_intersect(root: Path, cli: Callable[..., CliResult]):
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    assert matrix_of(cli("matrix", "--changed-since", "HEAD", cwd=root)) == []
    (root / "models/fam/predict.py").write_text("# changed\n")
    assert matrix_of(cli("matrix", "--changed-since", "HEAD", cwd=root)) == ALL[:2]
    assert matrix_of(
        cli("matrix", "--changed-since", "HEAD", "--variants", "beta,gamma", cwd=root)
    ) == [ALL[1]]
    (root / "cog-safe-push-configs/gamma.yaml").write_text("model: acme/gamma-renamed\n")
    renamed = {"variant": "gamma", "model": "acme/gamma-renamed", "cog_version": COG}
    assert matrix_of(cli("matrix", "--changed-since", "HEAD", "--variants", "gamma",
                         cwd=root)) == [renamed]


def test_console_script_output_is_only_the_json(root: Path):
    """A real process: nothing else on stdout, so $(cogfleet matrix) is the JSON."""
    result = run_console("matrix", "--variants", "alpha", cwd=root)
    assert result.code == 0, result.err
    assert result.out == (
        f'{{"include":[{{"variant":"alpha","model":"acme/alpha","cog_version":"{COG}"}}]}}\n'
    )


def test_demo_repo_matrix(demo_repo: Path, cli: Callable[..., CliResult]):
    assert matrix_of(cli("matrix", cwd=demo_repo)) == [
        {"variant": "caption", "model": "cogfleet-demo/captioner", "cog_version": COG},
        {"variant": "dev", "model": "cogfleet-demo/imagegen-dev", "cog_version": COG},
        {"variant": "schnell", "model": "cogfleet-demo/imagegen-schnell", "cog_version": COG},
        # variants.yaml pins toml-legacy to Cog 0.15.8: its CI job installs that cog CLI
        {"variant": "toml-legacy", "model": "cogfleet-demo/tomlparse-legacy",
         "cog_version": "0.15.8"},
        {"variant": "toml-one", "model": "cogfleet-demo/tomlparse-one", "cog_version": COG},
        {"variant": "toml-two", "model": "cogfleet-demo/tomlparse-two", "cog_version": COG},
    ]


def test_matrix_carries_each_variants_pinned_cog(
    root: Path, cli: Callable[..., CliResult]
) -> None:
    (root / "pyproject.toml").write_text('[tool.cogfleet]\ncog-version = "0.16.8"\n')
    variants = root / "models/fam/variants.yaml"
    variants.write_text(variants.read_text().replace(
        "model: acme/beta", 'model: acme/beta\n  cog_version: "0.15.8"'))
    pins = {e["variant"]: e["cog_version"] for e in matrix_of(cli("matrix", cwd=root))}
    assert pins == {"alpha": "0.16.8", "beta": "0.15.8", "gamma": "0.16.8"}
    assert cli("cog-version", cwd=root).out == "0.16.8\n"
    assert cli("cog-version", "beta", cwd=root).out == "0.15.8\n"
    assert cli("cog-version", "beta", "-v", cwd=root).out == (
        "0.15.8 (models/fam/variants.yaml:6)\n"
    )
