"""Built-in lint: ruff on the predictor and trainer files, as cog-safe-push does.

``cog.yaml`` and the config are validated while rendering (see ``cogfleet._render``),
so by the time this hook runs they are known good.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from cogfleet import hookimpl
from cogfleet._repo import Variant


def _source_files(build_dir: Path) -> list[str]:
    data = yaml.safe_load((build_dir / "cog.yaml").read_text(encoding="utf-8")) or {}
    files = []
    for key in ("run", "predict", "train"):
        ref = data.get(key)
        if isinstance(ref, str) and ".py:" in ref:
            files.append(ref.split(".py:", 1)[0] + ".py")
    return sorted(set(files))


@hookimpl
def cogfleet_lint(variant: Variant, build_dir: Path) -> list[str]:
    """Run ``ruff check --ignore=E402`` (ruff's default rules) on the run/predict/train files."""
    return ruff_problems(build_dir, f".cogfleet/build/{variant.name}/")


def ruff_problems(build_dir: Path, prefix: str) -> list[str]:
    """ruff's findings on the build folder's run/predict/train files, each naming the file."""
    files = _source_files(build_dir)
    if not files:
        return []
    proc = subprocess.run(
        [
            sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache",
            "--ignore=E402", "--output-format=concise", *files,
        ],
        cwd=build_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return []
    problems = [
        prefix + line.strip()
        for line in proc.stdout.splitlines()
        if line.strip() and ":" in line and not line.startswith(("Found ", "[*]"))
    ]
    if not problems:
        problems = [f"{prefix}: ruff failed: {(proc.stderr or proc.stdout).strip()[:300]}"]
    return problems
