"""Scale: command times on a generated monorepo of many variants (200 across 10 families).

Each family is a copy of the demo ``models/imagegen`` family (``predict.py.j2`` and
its requirements) declaring its share of the variants; every variant has a config
that includes the shared demo test cases. The repo is a git repository, so
``cogfleet matrix --changed-since`` sees one touched family. Timed through the real
command line, each command run ``--repeat`` times (median):

* ``cogfleet list``
* ``cogfleet render`` of every variant, cold (no build folders) and warm (again)
* ``cogfleet matrix --changed-since HEAD`` after touching one family
* ``nox -l`` with this repository's ``noxfile.py``

    python bench/scale.py [--variants 200] [--families 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost",
}

CONFIG = """\
model: bench/{name}
test_hardware: cpu
predict:
  compare_outputs: true
  test_cases:
    - inputs: {{prompt: a green hill, seed: 7}}
      image_size: 256x256
{{% include "cog-safe-push-configs/shared/imagegen-cases.yaml.j2" %}}
  fuzz:
    iterations: 4
"""

VARIANT = """\
{name}:
  model: bench/{name}
  variables:
    max_steps: {steps}
    default_steps: {steps}
    gpu: false
    python_version: "3.11"
    python_requirements: requirements.txt
    environment:
      - IMAGEGEN_PROFILE={name}
"""


def make_repo(dest: Path, *, variants: int, families: int) -> list[str]:
    """Write the generated monorepo at ``dest`` (a git repo, one commit); return family names."""
    if variants < families or families < 1:
        raise ValueError("need at least one family and one variant per family")
    for part in ("templates", "plugins"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "cog-safe-push-configs" / "shared", dest / "cog-safe-push-configs" /
                    "shared")
    shutil.copy2(ROOT / "noxfile.py", dest / "noxfile.py")
    source = ROOT / "models" / "imagegen"
    names = [f"fam{f:02d}" for f in range(families)]
    for f, family in enumerate(names):
        fam_dir = dest / "models" / family
        fam_dir.mkdir(parents=True)
        for item in ("predict.py.j2", "requirements.txt"):
            shutil.copy2(source / item, fam_dir / item)
        # variants are spread as evenly as possible over the families
        count = variants // families + (1 if f < variants % families else 0)
        declared = []
        for v in range(count):
            name = f"{family}-v{v:03d}"
            declared.append(VARIANT.format(name=name, steps=1 + v % 50))
            (dest / "cog-safe-push-configs" / f"{name}.yaml").write_text(CONFIG.format(name=name))
        (fam_dir / "variants.yaml").write_text("".join(declared))
    # as in any Python repo: bytecode (the plugins/ folder gets some) is never a change
    (dest / ".gitignore").write_text(".cogfleet/\n.nox/\n__pycache__/\n")
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "generated"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True)
    return names


# The environment of a user's shell: without PYTHONDONTWRITEBYTECODE (some sandboxes set
# it), so the first run writes the bytecode caches and the median run reads them.
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(
        args, cwd=cwd, env=USER_ENV, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - start, proc


def _timed(
    args: list[str], cwd: Path, repeat: int, before: Any = None
) -> dict[str, Any]:
    """Median wall time of ``args`` over ``repeat`` runs (``before`` runs untimed first)."""
    times = []
    proc = None
    for _ in range(repeat):
        if before is not None:
            before()
        elapsed, proc = _run(args, cwd)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"status": "failed", "exit": proc.returncode, "error": " | ".join(tail)}
        times.append(elapsed)
    assert proc is not None
    return {
        "status": "ok",
        "seconds": round(statistics.median(times), 3),
        "runs": [round(t, 3) for t in times],
        "stdout_lines": len(proc.stdout.splitlines()),
    }


def _matrix_available(cwd: Path) -> bool:
    _, proc = _run([str(BIN / "cogfleet"), "matrix", "--help"], cwd)
    return proc.returncode == 0


def run(
    *, variants: int = 200, families: int = 10, repeat: int = 3, workdir: Path | None = None
) -> dict[str, Any]:
    """Generate the repo, time every command, return the figures."""
    cogfleet = str(BIN / "cogfleet")
    with tempfile.TemporaryDirectory(prefix="cogfleet-scale-", dir=workdir) as tmp:
        repo = Path(tmp) / "repo"
        names = make_repo(repo, variants=variants, families=families)
        state = repo / ".cogfleet"  # build folders and caches: cold means none of them
        results: dict[str, Any] = {}
        results["list"] = _timed([cogfleet, "list"], repo, repeat)
        results["render_cold"] = _timed(
            [cogfleet, "render"], repo, repeat,
            before=lambda: shutil.rmtree(state, ignore_errors=True),
        )
        results["render_warm"] = _timed([cogfleet, "render"], repo, repeat)
        touched = repo / "models" / names[len(names) // 2] / "predict.py.j2"
        touched.write_text(touched.read_text() + "\n# touched by the benchmark\n")
        if _matrix_available(repo):
            results["matrix_changed"] = _timed(
                [cogfleet, "matrix", "--changed-since", "HEAD"], repo, repeat
            )
            if results["matrix_changed"]["status"] == "ok":
                _, proc = _run([cogfleet, "matrix", "--changed-since", "HEAD"], repo)
                try:  # the variants of the touched family, and only those, should be in it
                    included = json.loads(proc.stdout)["include"]
                    results["matrix_changed"]["variants"] = len(included)
                except (ValueError, KeyError, TypeError):
                    results["matrix_changed"]["variants"] = None
        else:
            results["matrix_changed"] = {
                "status": "not available", "error": "`cogfleet matrix` is not implemented yet"
            }
        results["nox_list"] = _timed([str(BIN / "nox"), "-l"], repo, repeat)
    warm, cold = results["render_warm"], results["render_cold"]
    speedup = (
        round(cold["seconds"] / warm["seconds"], 2)
        if cold.get("status") == warm.get("status") == "ok" and warm["seconds"] else None
    )
    return {
        "params": {"variants": variants, "families": families, "repeat": repeat},
        # variants of the touched family: what the changed-since matrix should hold
        "touched_family_variants": variants // families
        + (1 if families // 2 < variants % families else 0),
        "commands": results,
        "render_warm_speedup": speedup,
    }


LABELS = {
    "list": "cogfleet list",
    "render_cold": "cogfleet render (all, cold)",
    "render_warm": "cogfleet render (all, warm)",
    "matrix_changed": "cogfleet matrix --changed-since (1 family touched)",
    "nox_list": "nox -l",
}


def table_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for the summary table."""
    n = data["params"]["variants"]
    rows = []
    for key, label in LABELS.items():
        item = data["commands"][key]
        value = f"{item['seconds']:.2f} s" if item["status"] == "ok" else item["status"]
        if item.get("variants") is not None:
            value += f" ({item['variants']} variants in the matrix)"
        if item["status"] == "failed":
            value += f": {item['error'][:80]}"
        rows.append((f"scale ({n} variants): {label}", value))
    if data["render_warm_speedup"] is not None:
        speedup = f"{data['render_warm_speedup']}x"
        rows.append((f"scale ({n} variants): render cold / warm", speedup))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the figures, optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=200)
    parser.add_argument("--families", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (median)")
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.variants, args.families, args.repeat = 4, 2, 1
    data = run(variants=args.variants, families=args.families, repeat=args.repeat)
    for name, value in table_rows(data):
        print(f"{name:<60} {value}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
