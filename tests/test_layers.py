"""The layering contracts in pyproject.toml hold, and would catch a module that breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def _lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    found = found or shutil.which("lint-imports")
    assert found, "import-linter is a test dependency: pip install -e '.[test]'"
    return found


def _run_lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )


def test_the_layers_hold() -> None:
    proc = _run_lint_imports(REPO_ROOT, REPO_ROOT / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 kept, 0 broken" in proc.stdout


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package and its contracts that a test may break."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(
        REPO_ROOT / "src" / "cogfleet", root / "src" / "cogfleet",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


# (module that gets the import, the import, the contract that must break)
VIOLATIONS = [
    ("_errors.py", "import cogfleet.cli", "command line -> run -> pipeline"),
    ("builtins/lint.py", "import cogfleet.server", "the server is imported only by"),
    ("_pipeline.py", "import cogfleet.builtins.fuzz", "built-ins are plugins"),
    ("_render.py", "import cogfleet.cli._common", "private modules are imported only"),
    ("_checks.py", "import cogfleet._steps", "no import circles"),
    ("_newthing.py", "import cogfleet._errors", "command line -> run -> pipeline"),
]


@pytest.mark.parametrize(("module", "statement", "contract"), VIOLATIONS)
def test_a_violation_is_caught(
    package_copy: Path, module: str, statement: str, contract: str
) -> None:
    path = package_copy / "src" / "cogfleet" / module
    original = path.read_text(encoding="utf-8") if path.exists() else None
    path.write_text((original or "") + f"\n{statement}  # a deliberate break\n", encoding="utf-8")
    try:
        proc = _run_lint_imports(package_copy, package_copy / "src")
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_text(original, encoding="utf-8")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    broken = [line for line in proc.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(contract in line for line in broken), proc.stdout
