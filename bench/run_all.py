"""Run every benchmark, print one table and write ``bench/results.json``.

Runs, in order: the pipeline vs critical path (``bench/pipeline.py``), the same push
with the API a fixed latency away per request (sequential round trips), the scale
figures (``bench/scale.py``), start-up times (``bench/startup.py``), the local
server's overhead (``bench/server_overhead.py``, run as its own process and its table
read back), the isolated environments (``bench/envs.py``: cold builds, push cost,
disk) and, except with ``--quick``, faults held (``bench/faults.py``: ten pushes with
503s and 429s give the verdicts of ten without).
On a 2-core machine the default run takes about two minutes (see ``bench/README.md``).

    python bench/run_all.py [--quick] [--output bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script: the sibling benchmarks import by name
    sys.path.insert(0, str(HERE))

import envs  # noqa: E402
import faults  # noqa: E402
import pipeline  # noqa: E402
import scale  # noqa: E402
import startup  # noqa: E402

_ROW_RE = re.compile(
    r"^\|\s*(?P<scenario>[^|]+?)\s*\|\s*(?P<n>\d+)\s*\|\s*(?P<p50>[\d.]+)\s*\|"
    r"\s*(?P<p95>[\d.]+)\s*\|\s*(?P<wall>[\d.]+)\s*\|\s*(?P<rps>[\d.]+)\s*\|$"
)


_SHARE_RE = re.compile(r"a spinning process got (\d+)% of a core")


def parse_overhead_table(text: str) -> list[dict[str, Any]]:
    """The rows of ``server_overhead.py``'s Markdown table."""
    rows = []
    for line in text.splitlines():
        match = _ROW_RE.match(line.strip())
        if match:
            rows.append({
                "scenario": match["scenario"],
                "n": int(match["n"]),
                "overhead_p50_ms": float(match["p50"]),
                "overhead_p95_ms": float(match["p95"]),
                "wall_p50_ms": float(match["wall"]),
                "requests_per_s": float(match["rps"]),
            })
    return rows


def run_server_overhead(requests: int, threads: int) -> dict[str, Any]:
    """Run ``bench/server_overhead.py`` in its own process and read its table back."""
    args = [sys.executable, str(HERE / "server_overhead.py"),
            "--requests", str(requests), "--threads", str(threads)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return {"status": "failed", "exit": proc.returncode, "error": tail}
    rows = parse_overhead_table(proc.stdout)
    if not rows:
        return {"status": "failed", "error": "no table in its output", "output": proc.stdout}
    data: dict[str, Any] = {
        "status": "ok",
        "params": {"requests": requests, "threads": threads, "server": "process"},
        "rows": rows,
    }
    share = _SHARE_RE.search(proc.stdout)
    if share:  # how much of a core the machine gave a spinning process meanwhile
        data["cpu_share"] = int(share.group(1)) / 100
    return data


def overhead_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for the summary table."""
    if data["status"] != "ok":
        return [("server overhead", f"{data['status']}: {data.get('error', '')[:80]}")]
    return [
        (f"server overhead: {row['scenario']} (n={row['n']})",
         f"p50 {row['overhead_p50_ms']:.1f} ms, p95 {row['overhead_p95_ms']:.1f} ms, "
         f"{row['requests_per_s']:.1f} req/s")
        for row in data["rows"]
    ]


def _section(name: str, fn: Any) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    try:
        data = fn()
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        data = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000]}
    else:
        data.setdefault("status", "ok")
    elapsed = time.perf_counter() - start
    print(f"[{name}: {elapsed:.1f} s]", file=sys.stderr, flush=True)
    return data, elapsed


def main(argv: list[str] | None = None) -> int:
    """Run everything; print the table; write the JSON; exit 1 if a benchmark failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny parameters (smoke test)")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--latency", type=float, default=1.0, help="pipeline: L per prediction")
    parser.add_argument("--ai-latency", type=float, default=1.0, help="pipeline: s per AI call")
    parser.add_argument("--request-latency", type=float, default=0.5,
                        help="round trips: seconds the API is away (per request)")
    args = parser.parse_args(argv)

    if args.quick:
        pipe_kw: dict[str, Any] = {"latency": 0.05, "ai_latency": 0.05, "cases": 2, "fuzz": 2}
        trips_kw: dict[str, Any] = {**pipe_kw, "latency": 0.0, "request_latency": 0.05}
        scale_kw: dict[str, Any] = {"variants": 4, "families": 2, "repeat": 1}
        startup_kw: dict[str, Any] = {"variants": 4, "families": 2, "repeat": 2}
        overhead_kw = {"requests": 8, "threads": 2}
    else:
        pipe_kw = {"latency": args.latency, "ai_latency": args.ai_latency}
        # the same push with every API request R away (and no extra prediction latency)
        trips_kw = {"latency": 0.0, "ai_latency": args.ai_latency,
                    "request_latency": args.request_latency}
        scale_kw = {}
        startup_kw = {}
        overhead_kw = {"requests": 200, "threads": 8}

    started = time.perf_counter()
    pipe, pipe_s = _section("pipeline", lambda: pipeline.run(**pipe_kw))
    trips, trips_s = _section("round trips", lambda: pipeline.run(**trips_kw))
    scl, scale_s = _section("scale", lambda: scale.run(**scale_kw))
    start, startup_s = _section("startup", lambda: startup.run(**startup_kw))
    over, over_s = _section("server overhead", lambda: run_server_overhead(**overhead_kw))
    env, env_s = _section("environments", lambda: envs.run(quick=args.quick))
    if args.quick:  # twenty pushes are not a smoke test; tests/test_faults.py runs a small one
        held: dict[str, Any] = {"status": "skipped", "error": "not run with --quick"}
        held_s = 0.0
    else:
        held, held_s = _section("faults", faults.run)

    rows: list[tuple[str, str]] = []
    for name, data, table in (
        ("pipeline", pipe, pipeline.table_rows),
        ("scale", scl, scale.table_rows),
        ("startup", start, startup.table_rows),
    ):
        rows += table(data) if data["status"] == "ok" else [(name, f"failed: {data['error']}")]
    rows += (pipeline.round_trip_rows(trips) + [
        ("round trips: wall time of the measured push", f"{trips['wall_s']:.2f} s")
    ]) if trips["status"] == "ok" else [("round trips", f"failed: {trips['error']}")]
    rows += overhead_rows(over)
    rows += faults.table_rows(held) if held["status"] == "ok" else [
        ("faults held", f"{held['status']}: {held.get('error', '')}")]
    rows += (
        envs.table_rows(env) if env["status"] == "ok"
        else [("environments", f"failed: {env['error']}")]
    )  # fmt: skip

    width = max(len(r[0]) for r in rows)
    print(f"| {'figure':<{width}} | value")
    print(f"|{'-' * (width + 2)}|------")
    for figure, value in rows:
        print(f"| {figure:<{width}} | {value}")

    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "cpus": _cpus(),
                    "platform": platform.platform()},
        "pipeline": pipe,
        "round_trips": trips,
        "scale": scl,
        "startup": start,
        "server_overhead": over,
        "environments": env,
        "faults": held,
        "seconds": {"pipeline": round(pipe_s, 1), "round_trips": round(trips_s, 1),
                    "scale": round(scale_s, 1), "startup": round(startup_s, 1),
                    "server_overhead": round(over_s, 1), "environments": round(env_s, 1),
                    "faults": round(held_s, 1),
                    "total": round(time.perf_counter() - started, 1)},
        "table": [{"figure": f, "value": v} for f, v in rows],
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    failed = [n for n, d in (("pipeline", pipe), ("round trips", trips), ("scale", scl),
                             ("startup", start), ("server overhead", over),
                             ("environments", env), ("faults", held))
              if d["status"] not in ("ok", "skipped")]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def _cpus() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
