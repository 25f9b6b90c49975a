"""Mutation testing: how many small deliberate bugs do the tests catch?

Runs mutmut (``pip install -e '.[mutants]'``) over the modules ``[tool.mutmut]`` in
``pyproject.toml`` names: the schema compatibility rules, the checkers, the pipeline's
ordering (and the steps' verdict handling) and promotion/deployment. Each mutant (one
operator flipped, one constant changed, one call dropped...) runs the tests that cover
the mutated function; a mutant the tests still pass on "survived". The figure is the
kill rate, killed / (killed + survived + timeouts); the goal is at least 90 %.

Not part of the default test run (it takes a while: ``nox -s mutants``).

    python bench/mutants.py [--json bench/mutants.json] [--max-children N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("mutmut")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "mutmut", *args]
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)


def survivors() -> list[str]:
    """The names of the mutants that survived (``module.function__mutmut_N``)."""
    proc = _mutmut("results")
    return [m.group(1) for m in re.finditer(r"^\s*(\S+__mutmut_\d+): survived", proc.stdout,
                                            re.M)]


def run(max_children: int | None = None) -> dict[str, Any]:
    """Run mutmut; return the counts and the kill rate."""
    try:
        import mutmut  # noqa: F401
    except ImportError:
        return {"status": "failed", "error": "mutmut is not installed: pip install -e '.[mutants]'"}
    start = time.perf_counter()
    args = ["run"] + (["--max-children", str(max_children)] if max_children else [])
    proc = _mutmut(*args)
    seconds = time.perf_counter() - start
    modules = per_module()
    equivalent = mark_equivalent(modules)
    judged = sum(_rate_parts(figures["counts"])[1] for figures in modules.values())
    if proc.returncode != 0 or not judged:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"status": "failed",
                "error": f"mutmut run exited {proc.returncode}, no mutant judged: "
                         + (" | ".join(tail) or "no output")}
    counts: dict[str, int] = {}
    for figures in modules.values():
        for status, n in figures["counts"].items():
            counts[status] = counts.get(status, 0) + n
    counts["total"] = sum(figures["total"] for figures in modules.values())
    return {
        "status": "ok",
        "modules": _modules(),
        "counts": counts,
        "kill_rate": _rate(counts),
        # the same without the type check: what the tests alone catch
        "kill_rate_tests_only": _rate({k: n for k, n in counts.items()
                                       if k != "caught_by_type_check"}),
        "goal": 90.0,
        "per_module": modules,
        "equivalent": equivalent,
        "survivors": [name for name in survivors() if name not in equivalent],
        "seconds": round(seconds, 1),
    }


# A mutant is caught when a test fails on it, when it hangs the tests (timeout), or when
# the project's strict type check (``mypy src``, part of ``nox -s lint``) rejects it. One
# that no test runs ("no tests") counts as not caught.
CAUGHT = ("killed", "timeout", "caught_by_type_check")
NOT_CAUGHT = ("survived", "no_tests", "suspicious")


# Survivors no test can kill because they change nothing, each with its reason and the
# text of the mutated line: an entry counts only while `mutmut show` still shows that
# change (mutmut numbers a function's mutants anew when it changes), else the mutant
# stays a survivor and the run says the entry is stale. The rest are marked in the
# source with `# pragma: no mutate` and the reason.
EQUIVALENT: dict[str, tuple[str, str]] = {
    "cogfleet.schema._compat.x__number_bound__mutmut_18": (
        "bound[0] / narrows", "narrows is 1 or -1: dividing by it is multiplying by it"),
    "cogfleet.schema._compat.x__compare_number_bound__mutmut_29": (
        "old_bound[0]) / narrows", "narrows is 1 or -1: dividing by it is multiplying by it"),
    "cogfleet.schema._compat.x__compare_number_bound__mutmut_40": (
        "narrows >= 0", "narrows is 1 or -1, never 0"),
    "cogfleet.builtins.checkers.x__check_match_prompt__mutmut_16": (
        "(result.passed or not unverified)",
        "check_facts gives a verdict only when nothing is left unverified"),
    "cogfleet._pipeline.x_lint_build__mutmut_17": (
        "ruff_problems, ctx.build_dir, )", "the prefix's default is the empty string"),
}


def mark_equivalent(modules: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Move the listed equivalent survivors out of ``survived``; their reasons by name."""
    found = set(survivors())
    marked: dict[str, str] = {}
    for name, (change, reason) in EQUIVALENT.items():
        if name not in found:
            continue
        shown = _mutmut("show", name).stdout
        if not any(line.startswith("+") and change in line for line in shown.splitlines()):
            print(f"mutants: stale equivalent entry {name} (its change is not {change!r})",
                  file=sys.stderr)
            continue
        module = "src/" + name.split(".x_")[0].replace(".", "/") + ".py"
        counts = modules[module]["counts"]
        counts["survived"] -= 1
        counts["equivalent"] = counts.get("equivalent", 0) + 1
        modules[module]["kill_rate"] = _rate(counts)
        marked[name] = reason
    return marked


def _rate_parts(counts: dict[str, int]) -> tuple[int, int]:
    """(caught, judged): mutants not checked (a run stopped part way) are neither."""
    caught = sum(counts.get(k, 0) for k in CAUGHT)
    return caught, caught + sum(counts.get(k, 0) for k in NOT_CAUGHT)


def _rate(counts: dict[str, int]) -> float | None:
    caught, judged = _rate_parts(counts)
    return round(100.0 * caught / judged, 1) if judged else None


def per_module() -> dict[str, dict[str, Any]]:
    """The counts and the kill rate of each mutated module (from mutmut's result files)."""
    from mutmut.stats import status_by_exit_code

    out: dict[str, dict[str, Any]] = {}
    for module in _modules():
        meta = ROOT / "mutants" / f"{module}.meta"
        if not meta.exists():
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts: dict[str, int] = {}
        for code in codes.values():
            status = status_by_exit_code[code].replace(" ", "_")
            counts[status] = counts.get(status, 0) + 1
        out[module] = {"counts": counts, "kill_rate": _rate(counts), "total": len(codes)}
    return out


def _modules() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["mutmut"]["only_mutate"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "mutants.json")
    parser.add_argument("--max-children", type=int, default=None)
    args = parser.parse_args(argv)
    data = run(args.max_children)
    args.json.write_text(json.dumps(data, indent=2) + "\n")
    if data["status"] != "ok":
        print(f"mutants: {data['error']}", file=sys.stderr)
        return 1
    c = data["counts"]
    print(f"mutation kill rate: {data['kill_rate']} % (goal {data['goal']:g} %): "
          f"{c.get('killed', 0)} killed, {c.get('timeout', 0)} timed out, "
          f"{c.get('caught_by_type_check', 0)} caught by the type check, "
          f"{c.get('survived', 0)} survived, {c.get('no_tests', 0)} without tests, "
          f"of {c['total']} mutants in {data['seconds']:.0f} s")
    print(f"  the tests alone (type-check catches left out): {data['kill_rate_tests_only']} %")
    for module, figures in data["per_module"].items():
        print(f"  {module}: {figures['kill_rate']} % of {figures['total']}")
    for name, reason in data["equivalent"].items():
        print(f"  equivalent: {name} ({reason})")
    for name in data["survivors"]:
        print(f"  survived: {name}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
