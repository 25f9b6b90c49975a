"""Isolated environments: cold build time, the cost a built one adds to a push, disk.

1. **Cold build.** A copy of the demo monorepo is rendered and the environment of each
   variant of the ``tomlparse`` family (tomli<2 / tomli>=2 under Cog 0.23.1, and Cog
   0.15.8) is built into an empty store, one after the other, as the first push of
   each would. uv's download cache is the machine's (``--cold-cache``: an empty one,
   so every wheel is downloaded too).
2. **Added push cost.** An embedded local server pushes one variant's build folder
   N times with ``environment=isolated`` (its environment already built) and N times
   with ``environment=current``; the median of each (after one warm-up push) and
   their difference: what finding the built environment adds to a push. Goal: under
   0.2 s.
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
PUSHED = "toml-two"


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
    from cogfleet._render import render_variants
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
    """Median push time with the environment built vs ``--env current``, and the gap."""
    import replicate

    from cogfleet.runtime import RuntimeOptions
    from cogfleet.server import LocalServer, push_build

    times: dict[str, list[float]] = {"isolated": [], "current": []}
    with LocalServer(state_dir=state) as server:
        client = replicate.Client(api_token=server.token, base_url=server.base_url)
        client.models.create(owner="bench", name="envs", visibility="private", hardware="cpu")
        for environment in ("isolated", "current"):
            options = RuntimeOptions(
                cog_version=cog, environment="current" if environment == "current" else "isolated"
            )
            push_build(client, "bench", "envs", build_dir, options=options)  # warm-up
            for _ in range(pushes):
                start = time.perf_counter()
                push_build(client, "bench", "envs", build_dir, options=options)
                times[environment].append(time.perf_counter() - start)
    isolated = statistics.median(times["isolated"])
    current = statistics.median(times["current"])
    return {
        "pushes": pushes,
        "isolated_p50_s": round(isolated, 4),
        "current_p50_s": round(current, 4),
        "added_s": round(isolated - current, 4),
        "goal_s": 0.2,
        "met": isolated - current < 0.2,
    }


def run(*, quick: bool = False, cold_cache: bool = False, pushes: int = 10) -> dict[str, Any]:
    """Every figure of this benchmark as one JSON-able dict."""
    variants = (PUSHED,) if quick else FAMILY
    pushes = 3 if quick else pushes
    with tempfile.TemporaryDirectory(prefix="cogfleet-bench-envs-") as tmp:
        work = Path(tmp)
        saved = {k: os.environ.get(k) for k in ("COGFLEET_ENV_DIR", "UV_CACHE_DIR")}
        os.environ["COGFLEET_ENV_DIR"] = str(work / "envs")
        if cold_cache:
            os.environ["UV_CACHE_DIR"] = str(work / "uv-cache")
        try:
            builds, repo = _render(work / "repo", variants)
            pins = {name: repo.pin_for(repo.variants[name]).version for name in builds}
            rows = cold_builds(work / "envs", builds, pins)
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
    rows.append((
        f"environments: push with the environment built vs --env current (n={cost['pushes']})",
        f"{cost['isolated_p50_s'] * 1000:.0f} ms vs {cost['current_p50_s'] * 1000:.0f} ms: "
        f"+{cost['added_s'] * 1000:.0f} ms (goal < 200 ms: {'met' if cost['met'] else 'missed'})",
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
