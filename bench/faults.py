"""Faults held: safe pushes against a server that fails and throttles give the same verdicts.

Two ``cogfleet serve`` processes run side by side: a clean one, and one started with
``--fail-rate 0.2 --rate-limit R`` (a fifth of all API requests answered 503, and 429
with ``Retry-After`` above R requests per second). A throw-away copy of the demo
monorepo pushes the schnell variant N times to each (``cogfleet push schnell
--local-url ...``, the real command line); every other push carries a test case that
must fail (an image size the model does not make), so both verdicts are exercised and
passing pushes compare their outputs with the version promoted before.

For each push the verdict is the exit code, the result, every step's status and every
case's status; the figure is how many of the N faulty pushes agree with the clean
ones (the goal: all), with the 503 and 429 answers counted in the faulty server's
access log.

    python bench/faults.py [--pushes 10] [--fail-rate 0.2] [--rate-limit 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from pipeline import DEMO_PARTS, ServeProcess  # noqa: E402

VARIANT = "schnell"
MODEL = "cogfleet-demo/imagegen-schnell"
PASSING_SIZE = "image_size: 256x256"
FAILING_SIZE = "image_size: 8x8"


def make_repo(dest: Path) -> Path:
    for part in DEMO_PARTS:
        shutil.copytree(ROOT / part, dest / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".cogfleet"))
    return dest


def create_model(url: str, token: str = "cogfleet-local") -> None:
    """Create the live model (the retrying client rides out the injected faults)."""
    from cogfleet._target import make_client

    client, _ = make_client(url, token)
    owner, name = MODEL.split("/")
    client.models.create(owner=owner, name=name, visibility="public", hardware="cpu")


def verdict(code: int, report: dict[str, Any] | None) -> dict[str, Any]:
    if report is None:
        return {"exit": code, "report": None}
    return {
        "exit": code,
        "result": report["result"],
        "pushed": report["pushed"],
        "steps": {s["name"]: s["status"] for s in report["steps"]},
        "cases": sorted([c["kind"], c["index"], c["checker"] or "", c["status"]]
                        for c in report["cases"]),
    }


def push_series(repo: Path, url: str, pushes: int) -> tuple[list[dict[str, Any]], float]:
    """Push schnell ``pushes`` times (every other push must fail); verdicts and seconds."""
    config = repo / "cog-safe-push-configs" / f"{VARIANT}.yaml"
    text = config.read_text()
    assert PASSING_SIZE in text, "the demo config changed; update bench/faults.py"
    verdicts = []
    start = time.perf_counter()
    for i in range(pushes):
        config.write_text(text if i % 2 == 0 else text.replace(PASSING_SIZE, FAILING_SIZE))
        report_path = repo / f"report-{i}.json"
        proc = subprocess.run(
            [sys.executable, "-m", "cogfleet", "push", VARIANT, "--local-url", url,
             "--report-json", str(report_path)],
            cwd=repo, capture_output=True, text=True, check=False, timeout=900,
            env={**os.environ, "NO_COLOR": "1"},
        )
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        found = verdict(proc.returncode, report)
        if report is None:
            found["stderr"] = proc.stderr.strip().splitlines()[-3:]
        verdicts.append(found)
    config.write_text(text)
    return verdicts, time.perf_counter() - start


def run(*, pushes: int = 10, fail_rate: float = 0.2, rate_limit: float | None = 8.0,
        seed: int = 7) -> dict[str, Any]:
    """Run the series on both servers; the agreement and what the faulty server injected."""
    with tempfile.TemporaryDirectory(prefix="cogfleet-bench-faults-") as tmp:
        base = Path(tmp)
        clean = ServeProcess(base / "clean-state", latency=0.0)
        extra = ["--fail-rate", str(fail_rate), "--fail-seed", str(seed)]
        if rate_limit is not None:
            extra += ["--rate-limit", str(rate_limit)]
        faulty = ServeProcess(base / "faulty-state", latency=0.0, extra_args=extra)
        try:
            create_model(clean.url)
            create_model(faulty.url)
            clean_verdicts, clean_s = push_series(make_repo(base / "clean"), clean.url, pushes)
            start = faulty.mark()
            faulty_verdicts, faulty_s = push_series(make_repo(base / "faulty"), faulty.url,
                                                    pushes)
            logged = faulty.requests_between(start, faulty.mark())
        finally:
            clean.stop()
            faulty.stop()
    agree = sum(a == b for a, b in zip(clean_verdicts, faulty_verdicts, strict=True))
    statuses = [status for _, _, status in logged]
    return {
        "status": "ok" if agree == pushes else "failed",
        "error": "" if agree == pushes else f"{pushes - agree} verdicts changed under faults",
        "pushes": pushes,
        "fail_rate": fail_rate,
        "rate_limit": rate_limit,
        "agree": agree,
        "requests": len(statuses),
        "injected_503": statuses.count(503),
        "injected_429": statuses.count(429),
        "seconds": {"clean": round(clean_s, 1), "faulty": round(faulty_s, 1)},
        "verdicts": {"passed": sum(v.get("result") == "passed" for v in clean_verdicts),
                     "failed": sum(v.get("result") == "failed" for v in clean_verdicts)},
        "disagreements": [
            {"push": i, "clean": a, "faulty": b}
            for i, (a, b) in enumerate(zip(clean_verdicts, faulty_verdicts, strict=True))
            if a != b
        ],
    }


def table_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"faults held: {data['pushes']} pushes, fail-rate {data['fail_rate']:g}, "
         f"rate-limit {data['rate_limit']}",
         f"{data['agree']}/{data['pushes']} verdicts as without faults "
         f"({data['injected_503']} x 503 and {data['injected_429']} x 429 "
         f"of {data['requests']} requests; {data['seconds']['faulty']:.0f} s vs "
         f"{data['seconds']['clean']:.0f} s clean)"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--rate-limit", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    data = run(pushes=args.pushes, fail_rate=args.fail_rate, rate_limit=args.rate_limit,
               seed=args.seed)
    for figure, value in table_rows(data):
        print(f"{figure}: {value}")
    for item in data["disagreements"]:
        print(f"push {item['push']}: clean {item['clean']} / faulty {item['faulty']}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if data["agree"] == data["pushes"] else 1


if __name__ == "__main__":
    sys.exit(main())
