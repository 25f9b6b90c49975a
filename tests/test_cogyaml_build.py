"""Tests for cogfleet._cogyaml_build: the build: rules that depend on the pinned Cog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cogfleet._cogyaml import validate_cog_yaml
from cogfleet._errors import ConfigError
from tests.conftest import CliResult
from tests.test_bad_input import TEMPLATE, assert_rejected


def check(tmp_path: Path, build: str, cog: str | None = "0.23.1") -> str | None:
    """The error message for a cog.yaml with ``build`` lines, or None when it is valid."""
    path = tmp_path / "cog.yaml"
    path.write_text("predict: predict.py:Predictor\nbuild:\n" + build)
    try:
        validate_cog_yaml(path, cog_version=cog)
    except ConfigError as exc:
        return exc.message
    return None


@pytest.mark.parametrize(
    ("python", "cog", "problem"),
    [
        ('"3.99"', "0.23.1",
         "'3.99' is not a released Python: Cog 0.23.1 builds Python 3.10 to 3.15"),
        ('"4.0"', "0.23.1",
         "'4.0' is not a released Python: Cog 0.23.1 builds Python 3.10 to 3.15"),
        ("3.16", "0.23.1",
         "'3.16' is not a released Python: Cog 0.23.1 builds Python 3.10 to 3.15"),
        ('"3.9"', "0.17.0", "'3.9' is too old: Cog 0.17.0 needs Python 3.10 or newer"),
        ('"3.7"', "0.15.8", "'3.7' is too old: Cog 0.15.8 needs Python 3.8 or newer"),
        ('"2.7"', "0.9.26", "'2.7' is too old: Cog 0.9.26 needs Python 3.8 or newer"),
    ],
)
def test_python_outside_the_pinned_cogs_range_is_refused(
    tmp_path: Path, python: str, cog: str, problem: str
) -> None:
    assert check(tmp_path, f"  python_version: {python}\n", cog) == (
        f"build.python_version: {problem}"
    )


@pytest.mark.parametrize(
    ("python", "cog"),
    [("3.10", "0.23.1"), ('"3.15.2"', "0.23.1"), ('"3.9"', "0.15.8"), ('"3.8"', "0.9.26")],
)
def test_python_inside_the_pinned_cogs_range_is_accepted(
    tmp_path: Path, python: str, cog: str
) -> None:
    assert check(tmp_path, f"  python_version: {python}\n", cog) is None


def test_gpu_cuda_must_have_a_base_image_in_the_pinned_cog(tmp_path: Path) -> None:
    base = '  python_version: "3.11"\n  gpu: true\n'
    assert check(tmp_path, base + '  cuda: "12.7"\n') == (
        "build.cuda: CUDA 12.7 is not supported by Cog 0.23.1 (it has images for CUDA 11.0, "
        "11.1, 11.2, 11.3, 11.4, 11.5, 11.6, 11.7, 11.8, 12.0, 12.1, 12.2, 12.3, 12.4, 12.5, "
        "12.6, 12.8, 12.9, 13.0, 13.1, 13.2)"
    )
    assert check(tmp_path, base + '  cuda: "12.4.9"\n') is not None  # no 12.4.9 image
    assert check(tmp_path, base + '  cuda: "12.4.1"\n') is None
    # CUDA 13 images came with Cog 0.17
    assert check(tmp_path, base + '  cuda: "13.0"\n', "0.17.0") is None
    assert "CUDA 13.0 is not supported by Cog 0.16.12" in (
        check(tmp_path, base + '  cuda: "13.0"\n', "0.16.12") or ""
    )
    # without gpu: true Cog ignores cuda, and so does the check
    assert check(tmp_path, '  python_version: "3.11"\n  cuda: "12.7"\n') is None


def test_gpu_cudnn_must_match_the_cuda_image(tmp_path: Path) -> None:
    base = '  python_version: "3.11"\n  gpu: true\n'
    assert check(tmp_path, base + '  cuda: "12.4"\n  cudnn: "8"\n') == (
        "build.cudnn: CuDNN '8' does not go with CUDA 12.4 in Cog 0.23.1 (compatible: 9)"
    )
    assert check(tmp_path, base + '  cuda: "11.8"\n  cudnn: "8"\n') is None


@pytest.mark.parametrize(
    ("sdk", "problem"),
    [
        ('"0.15.8"', "'0.15.8' is below the oldest SDK Cog installs (0.16.0)"),
        ('"latest"', "expected a Cog SDK version such as \"0.23.1\" or \"prerelease\", "
                     "got 'latest'"),
    ],
)
def test_sdk_version_is_checked(tmp_path: Path, sdk: str, problem: str) -> None:
    assert check(tmp_path, f'  python_version: "3.11"\n  sdk_version: {sdk}\n') == (
        f"build.sdk_version: {problem}"
    )
    assert check(tmp_path, '  python_version: "3.11"\n  sdk_version: prerelease\n') is None
    assert check(tmp_path, '  python_version: "3.11"\n  sdk_version: "0.18.0a1"\n') is None


def test_an_unreleased_python_stops_push_before_anything_is_built(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    root = make_repo({TEMPLATE: """\
        # {{ variant }}
        build:
          python_version: "3.99"
        predict: "predict.py:Predictor"
        """})
    for command in ("render", "lint", "push"):
        result = cli(command, "alpha", "--report-json", "report.json", cwd=root) if (
            command == "push") else cli(command, "alpha", cwd=root)
        assert_rejected(result, root, f"{TEMPLATE}:3:", "build.python_version: '3.99' is not "
                        "a released Python")
