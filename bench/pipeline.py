"""Pipeline vs critical path: one safe push of a 6-case, 10-fuzz config at ``parallel: 4``.

A throw-away copy of the demo monorepo gets a schnell config with six test cases
(four checked without AI, two ``match_prompt`` descriptions that need the AI judge),
ten fuzz iterations and output comparison. ``cogfleet serve --latency L`` runs as a
subprocess (its access log is the server-side request count) and a local Messages
API answers every request after a fixed delay. The variant is pushed twice through
the real command line (``cogfleet push schnell --local-url ...``): the first push
creates the live version, the second one is measured.

Printed: wall time of the second push, its critical path (see :func:`critical_path`)
and their ratio, plus API requests per prediction counted on the server.

    python bench/pipeline.py [--latency 1] [--ai-latency 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the fake Messages API lives in tests/fakes
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from replicate.client import Client  # noqa: E402

from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402

VARIANT = "schnell"
MODEL = "cogfleet-demo/imagegen-schnell"
TEST_MODEL = "cogfleet-demo/imagegen-schnell-test"
# The parts of the demo monorepo a push of schnell reads.
DEMO_PARTS = ("models", "templates", "cog-safe-push-configs", "plugins")

# Six cases: four need no AI (reference image, two sizes, an expected error); the two
# descriptions carry content words that only the judge can verify.
CASES = """\
    - inputs: {prompt: a red fox, seed: 42}
      match_url: cog-safe-push-configs/reference/schnell-red-fox.webp
    - inputs: {prompt: a green hill, seed: 7}
      image_size: 256x256
    - inputs: {prompt: ""}
      error_contains: prompt
    - inputs: {prompt: a wide mountain landscape, seed: 3, aspect_ratio: "16:9", num_outputs: 2}
      image_size: 256x144
    - inputs: {prompt: a blue square on a white background, seed: 1, output_format: png}
      match_prompt: a 256x256px png image with a blue background
    - inputs: {prompt: a red fox, seed: 5}
      match_prompt: a reddish abstract picture
"""


def config_text(*, parallel: int, fuzz: int, cases: int) -> str:
    """The benchmark's schnell config (cog-safe-push format)."""
    entries = CASES.split("    - ")[1:]
    if not 1 <= cases <= len(entries):
        raise ValueError(f"cases must be 1..{len(entries)}, got {cases}")
    chosen = "".join("    - " + e for e in entries[-cases:])  # the AI cases come last
    return (
        f"model: {MODEL}\n"
        f"test_model: {TEST_MODEL}\n"
        "test_hardware: cpu\n"
        f"parallel: {parallel}\n"
        "predict:\n"
        "  compare_outputs: true\n"
        "  predict_timeout: 120\n"
        "  test_cases:\n"
        f"{chosen}"
        "  fuzz:\n"
        "    fixed_inputs: {num_outputs: 1}\n"
        "    disabled_inputs: [seed]\n"
        f"    iterations: {fuzz}\n"
        "    prompt: Short everyday scene descriptions.\n"
    )


def make_repo(dest: Path, *, parallel: int, fuzz: int, cases: int) -> Path:
    """Copy the demo monorepo to ``dest`` and give schnell the benchmark config."""
    for part in DEMO_PARTS:
        shutil.copytree(
            ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    (dest / "cog-safe-push-configs" / f"{VARIANT}.yaml").write_text(
        config_text(parallel=parallel, fuzz=fuzz, cases=cases)
    )
    return dest


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell for the commands measured.

    Without ``PYTHONDONTWRITEBYTECODE`` (some sandboxes and CI images set it): a user's
    Python keeps compiled bytecode, so only the first, unmeasured run compiles the
    modules it imports. With it set, every ``cogfleet`` command would compile all of
    them again (seconds on a busy 2-core machine), which no user's machine does.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


class ServeProcess:
    """``cogfleet serve --latency L`` as a subprocess; its access log is kept in memory."""

    _ACCESS_RE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')

    _RUNNING_RE = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")

    _TIMED_RE = re.compile(
        r"request (GET|POST|PUT|PATCH|DELETE) (\S+) (\d{3}) ([\d.]+) ([\d.]+)$"
    )

    def __init__(self, state: Path, latency: float, request_latency: float = 0.0,
                 extra_args: list[str] | None = None) -> None:
        self.port = 0  # the server binds a free port and announces it (no probe to race)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cogfleet", "serve", "--port", "0",
             "--state", str(state), "--latency", str(latency),
             "--request-latency", str(request_latency), *(extra_args or [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,  # access log: stdout
            env=user_env(),
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(60) or not self.port or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("cogfleet serve did not start:\n" + "".join(self.lines[-20:]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
            running = self._RUNNING_RE.search(line)
            if running and not self._ready.is_set():
                self.port = int(running.group(1))
                self._ready.set()
        self._ready.set()  # the process ended: wake the starter so it can report it

    def mark(self) -> int:
        """The position in the access log after every request answered so far.

        The log arrives through a pipe and a reader thread, so a request that was just
        answered may not be in ``lines`` yet: a marker request is sent and its own
        line awaited; everything before it has been read.
        """
        token = f"/bench-sync-{uuid.uuid4().hex}"
        with httpx.Client() as http:
            http.get(self.url + token)  # a 404, logged like any request
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(token in line for line in reversed(self.lines)), timeout=30
            )
            if not found:
                raise RuntimeError("the server's access log did not show the marker request")
            return next(i for i in range(len(self.lines) - 1, -1, -1) if token in self.lines[i])

    def requests_between(self, start: int, end: int) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every request logged between two marks."""
        with self._changed:
            lines = self.lines[start + 1 : end]
        found = []
        for line in lines:
            match = self._ACCESS_RE.search(line)
            if match and not match.group(2).startswith("/bench-sync-"):  # a mark's own line
                found.append((match.group(1), match.group(2).split("?")[0], int(match.group(3))))
        return found

    def timed_between(self, start: int, end: int) -> list[Request]:
        """Requests logged by ``--request-latency`` between two marks, with their times."""
        with self._changed:
            lines = self.lines[start + 1 : end]
        found = []
        for line in lines:
            match = self._TIMED_RE.search(line.strip())
            if match and not match.group(2).startswith("/bench-sync-"):
                found.append(Request(match.group(1), match.group(2), int(match.group(3)),
                                     float(match.group(4)), float(match.group(5))))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=10)


def classify(method: str, path: str) -> str:
    """Group a request path into what it is for."""
    if path.startswith("/v1/predictions"):
        if method == "POST" and path == "/v1/predictions":
            return "prediction create"
        if path.endswith("/cancel"):
            return "prediction cancel"
        return "prediction get/list"
    if path.startswith("/v1/files") or path.startswith("/files") or "/output" in path:
        return "files"
    if "/versions" in path:
        return "versions"
    if path.startswith("/v1/models"):
        return "models"
    return "other"


CHECK_STEPS = ("compare-outputs", "test-cases", "fuzz")


@dataclass(frozen=True)
class Request:
    """One API request as the server logged it (start and end: wall-clock seconds)."""

    method: str
    path: str
    status: int
    start: float
    end: float

    @property
    def kind(self) -> str:
        return classify(self.method, self.path)


def is_prediction_work(request: Request) -> bool:
    """Requests that belong to the predictions themselves (runs, their files, uploads)."""
    return request.kind.startswith("prediction") or request.kind == "files"


def sequential_chain(requests: list[Request]) -> list[Request]:
    """The longest chain of requests outside the predictions that ran one after another.

    Each request in the chain starts after the previous one ended; requests that
    overlap (a look-up sent while the push uploads) count once. Greedy by earliest
    end gives the longest such chain.
    """
    chain: list[Request] = []
    for request in sorted((r for r in requests if not is_prediction_work(r)),
                          key=lambda r: r.end):
        if not chain or request.start >= chain[-1].end:
            chain.append(request)
    return chain


def repeated_fetches(requests: list[Request]) -> list[str]:
    """``GET`` requests outside the predictions made more than once (fetched twice)."""
    counts = Counter(f"{r.method} {r.path}" for r in requests
                     if r.method == "GET" and not is_prediction_work(r))
    return sorted(k for k, n in counts.items() if n > 1)


@dataclass
class CriticalPath:
    """The parts of the unavoidable sequence and their sum (seconds)."""

    steps_s: float  # measured: lint, push-test, schema gates, promote, release steps
    cold_start_s: float  # measured: the new version's predictor starting up
    waves: int
    wave_s: float  # one prediction: L + model time
    prediction_waves_s: float
    ai_before_fuzz_s: float  # the fuzz proposal, where it cannot hide behind other waves
    ai_after_last_wave_s: float  # a judge round after the last wave, where it must follow
    check_bound_s: float
    total_s: float


def critical_path(
    *,
    steps_s: float,
    cold_start_s: float,
    predictions: int,
    fuzz_predictions: int,
    parallel: int,
    latency: float,
    model_s: float,
    ai_latency: float,
    fuzz_proposals: int,
    judged_cases: int,
) -> CriticalPath:
    """The shortest time the measured push could take on this target, given ``parallel``.

    ``steps_s`` is measured: the report's durations of every step outside the
    concurrent check phase (lint, push to the test model, schema gates, promotion,
    release). ``cold_start_s`` is measured on the server: the new version's
    predictor has to start before its first prediction runs, as on Replicate.
    The check phase cannot be shorter than any of:

    * the prediction slots: ``ceil(N / parallel)`` waves of ``L + model`` each;
    * the fuzz chain: the AI proposal (one request) must return before the fuzz
      predictions start, then ``ceil(F / parallel)`` waves of them;
    * a judged case: its prediction, then one judge round (the votes of one case are
      independent requests, so one round is the floor);
    * the model itself: one predictor process runs the ``N`` predictions one by one.

    The bound is the largest of these; a scheduler that starts the judged cases and
    the AI proposal first reaches it. Everything else (interpreter start, imports,
    plugin loading, rendering, reporting, idle slots) is overhead the ratio exposes.
    """
    wave_s = latency + model_s
    waves = math.ceil(predictions / parallel) if predictions else 0
    slots = waves * wave_s
    fuzz_chain = ai_latency * fuzz_proposals + math.ceil(fuzz_predictions / parallel) * wave_s
    judge_chain = (wave_s + ai_latency) if judged_cases else 0.0
    model_serial = predictions * model_s + latency
    bound = max(slots, fuzz_chain, judge_chain, model_serial)
    return CriticalPath(
        steps_s=steps_s,
        cold_start_s=cold_start_s,
        waves=waves,
        wave_s=wave_s,
        prediction_waves_s=slots,
        ai_before_fuzz_s=max(0.0, fuzz_chain - slots),
        ai_after_last_wave_s=max(0.0, judge_chain - max(slots, fuzz_chain)),
        check_bound_s=bound,
        total_s=steps_s + cold_start_s + bound,
    )


def cold_start(predictions: list[dict[str, Any]], latency: float) -> float:
    """How long the slowest prediction waited beyond the typical one (the predictor starting).

    Per prediction the server-side wait is ``total_time - latency - predict_time``
    (queueing in the client is not in it: a prediction is created only when a slot
    is free). The slowest minus the median is the start-up of a new version's
    predictor; on a re-push of an already running version it is about zero.
    """
    waits = []
    for p in predictions:
        metrics = p.get("metrics") or {}
        if "total_time" in metrics:
            waits.append(
                float(metrics["total_time"]) - latency - float(metrics.get("predict_time", 0.0))
            )
    if not waits:
        return 0.0
    return max(0.0, max(waits) - statistics.median(waits))


def _push(repo: Path, url: str, env: dict[str, str], report: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cogfleet", "push", VARIANT, "--local-url", url,
         "--report-json", str(report)],
        cwd=repo, env=env, capture_output=True, text=True, check=False,
    )
    return time.perf_counter() - start, proc.returncode, proc.stdout + proc.stderr


def _predictions_since(client: Client, ids: set[str]) -> list[dict[str, Any]]:
    docs = []
    page = client.predictions.list()
    while True:
        for item in page.results:
            if item.id in ids:
                docs.append(item.dict())
        if not page.next:
            break
        page = client.predictions.list(cursor=page.next)
    return docs


def run(
    *,
    latency: float = 1.0,
    ai_latency: float = 1.0,
    parallel: int = 4,
    cases: int = 6,
    fuzz: int = 10,
    changed: bool = True,
    workdir: Path | None = None,
    request_latency: float = 0.0,
) -> dict[str, Any]:
    """Run the benchmark; return its figures (see the module docstring).

    With ``request_latency`` R, every API request waits R seconds on the server (an API
    R away) and the figures include ``round_trips``: how many requests outside the
    predictions ran one after another (see :func:`sequential_chain`).
    """
    with tempfile.TemporaryDirectory(prefix="cogfleet-bench-", dir=workdir) as tmp:
        base = Path(tmp)
        repo = make_repo(base / "repo", parallel=parallel, fuzz=fuzz, cases=cases)
        server = ServeProcess(base / "state", latency, request_latency)
        try:
            with FakeAnthropic(api_key=None, latency=ai_latency) as fake:
                env = user_env(
                    ANTHROPIC_API_KEY="sk-ant-bench",
                    ANTHROPIC_BASE_URL=fake.base_url,
                    COGFLEET_LOCAL_TOKEN="bench",
                    NO_COLOR="1",
                )
                env.pop("GITHUB_STEP_SUMMARY", None)
                client = Client(api_token="bench", base_url=server.url)
                owner, name = MODEL.split("/")
                client.models.create(owner=owner, name=name, visibility="public", hardware="cpu")
                owner, name = TEST_MODEL.split("/")
                client.models.create(owner=owner, name=name, visibility="private", hardware="cpu")
                first_s, code, out = _push(repo, server.url, env, base / "first.json")
                if code != 0:
                    raise RuntimeError(f"first push failed (exit {code}):\n{out[-3000:]}")
                if changed:  # a new build: same behaviour, different content hash
                    predictor = repo / "models" / "imagegen" / "predict.py.j2"
                    predictor.write_text(predictor.read_text() + "\n# benchmark edit\n")
                log_start, ai_mark = server.mark(), len(fake.requests)
                wall_s, code, out = _push(repo, server.url, env, base / "second.json")
                if code != 0:
                    raise RuntimeError(f"measured push failed (exit {code}):\n{out[-3000:]}")
                log_end = server.mark()
                requests = server.requests_between(log_start, log_end)
                timed = server.timed_between(log_start, log_end)
                ai_requests = fake.requests[ai_mark:]
                report = json.loads((base / "second.json").read_text())
                report = report[0] if isinstance(report, list) else report
                created_ids = set()
                for case in report["cases"]:
                    if case.get("prediction_id"):
                        created_ids.add(case["prediction_id"])
                predictions = _predictions_since(client, created_ids)
        finally:
            server.stop()

    kinds = Counter(classify(m, p) for m, p, _ in requests)
    created = kinds["prediction create"]
    model_times = [
        float((p.get("metrics") or {}).get("predict_time", 0.0)) for p in predictions
    ]
    model_s = statistics.median(model_times) if model_times else 0.0
    steps = {s["name"]: s for s in report["steps"]}
    check_wall = max((s["duration_s"] for n, s in steps.items() if n in CHECK_STEPS), default=0.0)
    steps_s = sum(s["duration_s"] for n, s in steps.items() if n not in CHECK_STEPS)
    fuzz_predictions = sum(1 for c in report["cases"] if c["kind"] == "fuzz")
    proposals = sum(1 for r in ai_requests if r.body and "system" not in r.body)
    judge_calls = len(ai_requests) - proposals
    judged = sum(
        1 for c in report["cases"]
        if c.get("checker") == "match_prompt" and "AI judge" in (c.get("message") or "")
    )
    path = critical_path(
        steps_s=steps_s,
        cold_start_s=cold_start(predictions, latency),
        predictions=created,
        fuzz_predictions=fuzz_predictions,
        parallel=parallel,
        latency=latency + request_latency,  # each prediction is one request, R away too
        model_s=model_s,
        ai_latency=ai_latency,
        fuzz_proposals=min(1, proposals),
        judged_cases=judged,
    )
    prediction_requests = sum(v for k, v in kinds.items() if k.startswith("prediction"))
    return {
        "params": {
            "latency_s": latency, "ai_latency_s": ai_latency, "parallel": parallel,
            "test_cases": cases, "fuzz_iterations": fuzz, "compare_outputs": True,
        },
        "result": report["result"],
        "first_push_s": round(first_s, 3),
        "wall_s": round(wall_s, 3),
        "check_phase_s": round(check_wall, 3),
        "outside_steps_s": round(wall_s - steps_s - check_wall, 3),
        "steps": {n: round(s["duration_s"], 3) for n, s in steps.items()},
        "critical_path": {k: round(v, 3) if isinstance(v, float) else v
                          for k, v in asdict(path).items()},
        "ratio": round(wall_s / path.total_s, 3) if path.total_s else None,
        "predictions": created,
        "model_time_s": round(model_s, 4),
        "api_requests": dict(sorted(kinds.items())),
        "api_requests_total": len(requests),
        "prediction_requests_per_prediction": (
            round(prediction_requests / created, 3) if created else None
        ),
        "api_requests_per_prediction": round(len(requests) / created, 3) if created else None,
        "ai_requests": {"fuzz_proposals": proposals, "judge": judge_calls},
        **({"round_trips": round_trips(timed, request_latency)} if request_latency else {}),
    }


def round_trips(timed: list[Request], request_latency: float) -> dict[str, Any]:
    """The sequential round trips of the measured push outside its predictions."""
    chain = sequential_chain(timed)
    outside = [r for r in timed if not is_prediction_work(r)]
    return {
        "request_latency_s": request_latency,
        "sequential": len(chain),
        "chain": [f"{r.method} {r.path}" for r in chain],
        "requests_outside_predictions": len(outside),
        "outside_predictions": sorted(f"{r.method} {r.path}" for r in outside),
        "repeated_fetches": repeated_fetches(timed),
    }


def table_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for the summary table."""
    cp = data["critical_path"]
    extra = ""
    if cp["ai_before_fuzz_s"]:
        extra += f", +{cp['ai_before_fuzz_s']:.2f} AI before fuzz"
    if cp["ai_after_last_wave_s"]:
        extra += f", +{cp['ai_after_last_wave_s']:.2f} AI after the last wave"
    return [
        ("pipeline: wall time of the measured push", f"{data['wall_s']:.2f} s"),
        ("pipeline: critical path", (
            f"{cp['total_s']:.2f} s = {cp['steps_s']:.2f} steps + {cp['cold_start_s']:.2f} "
            f"cold start + {cp['waves']} waves x {cp['wave_s']:.2f} s{extra}"
        )),
        ("pipeline: CLI start-up/teardown outside steps", f"{data['outside_steps_s']:.2f} s"),
        ("pipeline: wall / critical path", f"{data['ratio']:.2f}"),
        ("pipeline: predictions (model time p50)",
         f"{data['predictions']} ({data['model_time_s'] * 1000:.0f} ms)"),
        ("pipeline: prediction API requests / prediction",
         f"{data['prediction_requests_per_prediction']:.2f}"),
        ("pipeline: all API requests / prediction", f"{data['api_requests_per_prediction']:.2f}"),
        ("pipeline: AI requests (fuzz proposal + judge)",
         f"{data['ai_requests']['fuzz_proposals']} + {data['ai_requests']['judge']}"),
    ] + round_trip_rows(data)


def round_trip_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows of a run with ``request_latency`` (none otherwise)."""
    trips = data.get("round_trips")
    if not trips:
        return []
    return [
        (f"round trips: sequential outside predictions (API {trips['request_latency_s']:g} s away)",
         f"{trips['sequential']} ({', '.join(trips['chain'])})"),
        ("round trips: requests outside predictions / fetched twice",
         f"{trips['requests_outside_predictions']} / {len(trips['repeated_fetches'])}"),
    ]


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the figures, optionally write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="server seconds/prediction")
    parser.add_argument("--ai-latency", type=float, default=1.0, help="seconds per AI request")
    parser.add_argument(
        "--request-latency", type=float, default=0.0, metavar="R",
        help="server seconds per API request (an API R away); adds the round-trip figures",
    )
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--cases", type=int, default=6, help="test cases (1..6)")
    parser.add_argument("--fuzz", type=int, default=10, help="fuzz iterations")
    parser.add_argument(
        "--same-build", action="store_true", help="re-push identical content (no new version)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.latency, args.ai_latency, args.cases, args.fuzz = 0.05, 0.05, 2, 2
    data = run(latency=args.latency, ai_latency=args.ai_latency, parallel=args.parallel,
               cases=args.cases, fuzz=args.fuzz, changed=not args.same_build,
               request_latency=args.request_latency)
    for name, value in table_rows(data):
        print(f"{name:<50} {value}")
    print(json.dumps(data["api_requests"]))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
