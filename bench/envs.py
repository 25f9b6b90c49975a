"""Isolated environments: cold build time, the cost a built one adds to a push, disk.

1. **Cold build.** A copy of the demo monorepo is rendered and the environment of each
   variant of the ``tomlparse`` family (tomli<2 / tomli>=2 under the installed Cog, and Cog
   0.15.8) is built into an empty store, one after the other, as the first push of
   each would. uv's download cache is the machine's (``--cold-cache``: an empty one,
   so every wheel is downloaded too).
2. **Added push cost.** An embedded local server takes N pushes of a changed build
   of ``schnell`` (whose Pillow cogfleet has too, so it runs either way) with
   ``environment=isolated`` (its environment already built) and N with
   ``environment=current``, alternating, each followed by its first prediction
   (which starts the predictor under the environment's Python, or cogfleet's). The
   medians of the push alone and of push + first prediction, and their differences:
   what running in the built environment adds. Goal: under 0.2 s.
3. **Disk.** Per environment: bytes of its own (files not linked from uv's cache)
   and apparent size (every file counted).

    python bench/envs.py [--quick] [--cold-cache] [--pushes 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO_PARTS = ("models", "templates", "cog-safe-push-configs", "plugins")
FAMILY = ("toml-one", "toml-two", "toml-legacy")
PUSHED = "schnell"
"""The push-cost variant: its requirement (Pillow) is next to cogfleet too, so it also
runs under ``--env current`` (the tomlparse variants need a tomli cogfleet lacks)."""
PUSHED_INPUT = {"prompt": "a red fox", "seed": 42}


def _apparent(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _render(dest: Path, variants: tuple[str, ...]) -> tuple[dict[str, Path], Any]:
    """Render ``variants`` of a copy of the demo monorepo; (build folders, the repo)."""
    from cogfleet._plugins import Plugins
    from cogfleet._render_folder import render_variants
    from cogfleet._repo import Repo

    for part in DEMO_PARTS:
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    repo = Repo.load(dest)
    rendered = render_variants(repo, repo.select(list(variants)), Plugins(dest))
    return {r.variant.name: r.build_dir for r in rendered}, repo


def cold_builds(
    store_dir: Path, builds: dict[str, Path], pins: dict[str, str]
) -> list[dict[str, Any]]:
    """Build each variant's environment into an empty store; seconds and disk of each."""
    from cogfleet.runtime import EnvStore, disk_usage, read_build_spec

    store = EnvStore(store_dir)
    rows = []
    for name, build_dir in builds.items():
        cog = pins[name]
        start = time.perf_counter()
        env = store.ensure(read_build_spec(build_dir, cog), cog)
        seconds = time.perf_counter() - start
        rows.append({
            "variant": name,
            "cog_version": cog,
            "python": env.python_version,
            "environment_id": env.key,
            "built": env.built,
            "build_s": round(seconds, 3),
            "own_bytes": disk_usage(env.path),
            "apparent_bytes": _apparent(env.path),
        })
    return rows


def push_cost(state: Path, build_dir: Path, cog: str, pushes: int) -> dict[str, Any]:
    """A push and its first prediction with the environment built vs ``--env current``.

    Every push uploads a changed build (a comment appended to predict.py), so it is a
    new version whose schema is generated, whose environment is looked up, and whose
    first prediction starts a predictor process: under the environment's Python
    (isolated) or cogfleet's own (current). The two kinds alternate, after one
    warm-up push of each (the first builds the environment).
    """
    import replicate

    from cogfleet.runtime import RuntimeOptions
    from cogfleet.server import LocalServer, push_build

    predict_py = build_dir / "predict.py"
    original = predict_py.read_text()
    kinds = ("isolated", "current")
    push_s: dict[str, list[float]] = {k: [] for k in kinds}
    total_s: dict[str, list[float]] = {k: [] for k in kinds}
    with LocalServer(state_dir=state) as server:
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        client.models.create(owner="bench", name="envs", visibility="private", hardware="cpu")
        for index in range(pushes + 1):
            for kind in kinds:
                options = RuntimeOptions(
                    cog_version=cog, environment="current" if kind == "current" else "isolated"
                )
                predict_py.write_text(f"{original}\n# bench push {kind} {index}\n")
                start = time.perf_counter()
                version = push_build(client, "bench", "envs", build_dir, options=options)
                pushed = time.perf_counter()
                pred = client.predictions.create(
                    version=version["id"], input=PUSHED_INPUT, wait=True
                )
                pred.wait()
                done = time.perf_counter()
                if pred.status != "succeeded":
                    raise RuntimeError(f"{kind} prediction {pred.id} {pred.status}: {pred.error}")
                if index:  # the first of each kind is the warm-up
                    push_s[kind].append(pushed - start)
                    total_s[kind].append(done - start)
    predict_py.write_text(original)
    medians = {
        f"{kind}_{what}_p50_s": round(statistics.median(samples[kind]), 4)
        for what, samples in (("push", push_s), ("total", total_s))
        for kind in kinds
    }
    added_push = statistics.median(push_s["isolated"]) - statistics.median(push_s["current"])
    added = statistics.median(total_s["isolated"]) - statistics.median(total_s["current"])
    return {
        "pushes": pushes,
        **medians,
        "added_push_s": round(added_push, 4),
        "added_s": round(added, 4),
        "goal_s": 0.2,
        "met": added < 0.2,
    }


def run(*, quick: bool = False, cold_cache: bool = False, pushes: int = 10) -> dict[str, Any]:
    """Every figure of this benchmark as one JSON-able dict."""
    variants = ("toml-two",) if quick else FAMILY
    pushes = 3 if quick else pushes
    with tempfile.TemporaryDirectory(prefix="cogfleet-bench-envs-") as tmp:
        work = Path(tmp)
        saved = {k: os.environ.get(k) for k in ("COGFLEET_ENV_DIR", "UV_CACHE_DIR")}
        os.environ["COGFLEET_ENV_DIR"] = str(work / "envs")
        if cold_cache:
            os.environ["UV_CACHE_DIR"] = str(work / "uv-cache")
        try:
            builds, repo = _render(work / "repo", (*variants, PUSHED))
            pins = {name: repo.pin_for(repo.variants[name]).version for name in builds}
            rows = cold_builds(work / "envs", {v: builds[v] for v in variants}, pins)
            cost = push_cost(work / "state", builds[PUSHED], pins[PUSHED], pushes)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return {
        "status": "ok",
        "params": {"variants": list(variants), "pushes": pushes, "cold_cache": cold_cache},
        "cold_builds": rows,
        "cold_build_total_s": round(sum(r["build_s"] for r in rows), 3),
        "push_cost": cost,
        "disk_own_bytes_per_env": round(statistics.mean(r["own_bytes"] for r in rows)),
        "disk_apparent_bytes_per_env": round(statistics.mean(r["apparent_bytes"] for r in rows)),
    }


def table_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for the summary table."""
    rows = []
    cache = "empty uv cache" if data["params"]["cold_cache"] else "machine's uv cache"
    for row in data["cold_builds"]:
        rows.append((
            f"environments: cold build of {row['variant']} (Cog {row['cog_version']})",
            f"{row['build_s']:.2f} s ({cache}); disk {row['own_bytes'] / 1e6:.1f} MB own, "
            f"{row['apparent_bytes'] / 1e6:.1f} MB apparent",
        ))
    cost = data["push_cost"]
    n = cost["pushes"]
    rows.append((
        f"environments: push (upload) with the environment built vs --env current (n={n})",
        f"{cost['isolated_push_p50_s'] * 1000:.0f} ms vs {cost['current_push_p50_s'] * 1000:.0f}"
        f" ms: {cost['added_push_s'] * 1000:+.0f} ms",
    ))
    rows.append((
        f"environments: push + first prediction, environment built vs --env current (n={n})",
        f"{cost['isolated_total_p50_s'] * 1000:.0f} ms vs "
        f"{cost['current_total_p50_s'] * 1000:.0f} ms: {cost['added_s'] * 1000:+.0f} ms "
        f"(goal < 200 ms: {'met' if cost['met'] else 'missed'})",
    ))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one variant, three pushes")
    parser.add_argument("--cold-cache", action="store_true", help="an empty uv cache too")
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    data = run(quick=args.quick, cold_cache=args.cold_cache, pushes=args.pushes)
    for figure, value in table_rows(data):
        print(f"| {figure} | {value}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
