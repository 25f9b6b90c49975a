"""Overhead of the local server per prediction, excluding the model's own time.

The server runs as users run it: ``cogfleet serve`` in a process of its own, with
its access log, and the clients are threads of this process (``--server embedded``
runs it in a thread of this process instead, as ``cogfleet push`` does, sharing
one interpreter lock with the clients). For a no-op async predictor
(``tests/fixtures/server/noop``, ``concurrency.max: 8``) every prediction is
created with ``Prefer: wait`` through the official ``replicate`` client, and the
overhead is the client's wall time minus ``metrics.predict_time`` (what coglet
measured inside the predictor). Scenarios:

* ``sequential``: one client, the no-op model;
* ``N concurrent clients``: N client threads at once, the no-op model (every
  prediction is pure overhead, so this measures how much work one prediction costs);
* ``N client processes``: the same with each client a process of its own, as N
  separate programs would be: no client waits for another client's interpreter lock
  (the clients' own CPU still shares the machine with the server);
* ``N clients, model M ms``: 1, 2, 4 and N client threads, the model waiting M ms
  (an ``asyncio.sleep``, no CPU): requests that a server handles concurrently
  overlap, so throughput grows with the clients until the CPU is busy.

The last line is how much of one core a busy process got while the benchmark ran
(the machine may be shared): figures from a busy machine are higher.

    python bench/server_overhead.py [--requests 200] [--threads 8] [--model-ms 50]
                                    [--server {process,embedded}]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import replicate

from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build

_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
NOOP = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "server" / "noop"


def _one(client: replicate.Client, version: str, sleep: float) -> tuple[float, float]:
    start = time.perf_counter()
    pred = client.predictions.create(
        version=version, input={"text": "x", "sleep": sleep}, wait=True
    )
    wall = time.perf_counter() - start
    if pred.status != "succeeded":
        raise RuntimeError(f"prediction {pred.id} ended {pred.status}: {pred.error}")
    predict_time = float((pred.metrics or {}).get("predict_time", 0.0))
    return wall, wall - predict_time


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _row(label: str, samples: list[tuple[float, float]], elapsed: float) -> str:
    over = [o * 1000 for _, o in samples]
    wall = [w * 1000 for w, _ in samples]
    return (
        f"| {label:<26} | {len(samples):>5} | {_pct(over, 0.5):>8.2f} | {_pct(over, 0.95):>8.2f} "
        f"| {statistics.median(wall):>8.2f} | {len(samples) / elapsed:>7.1f} |"
    )


def _scenario(
    base_url: str, token: str, version: str, threads: int, total: int, sleep: float
) -> tuple[list[tuple[float, float]], float]:
    # One client per thread, as separate processes or workers would have.
    clients = [replicate.Client(api_token=token, base_url=base_url) for _ in range(threads)]
    per_thread = max(1, total // threads)

    def worker(c: replicate.Client) -> list[tuple[float, float]]:
        return [_one(c, version, sleep) for _ in range(per_thread)]

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        samples = [s for chunk in pool.map(worker, clients) for s in chunk]
    return samples, time.perf_counter() - start


def _client_process(
    base_url: str, token: str, version: str, n: int, sleep: float, go: Any, out: Any
) -> None:
    """One client program: its own connection warmed first, then ``n`` predictions."""
    client = replicate.Client(api_token=token, base_url=base_url)
    for _ in range(3):
        _one(client, version, 0.0)
    go.wait()
    out.put([_one(client, version, sleep) for _ in range(n)])


def _scenario_processes(
    base_url: str, token: str, version: str, clients: int, total: int, sleep: float
) -> tuple[list[tuple[float, float]], float]:
    """As :func:`_scenario`, each client a process of its own (as separate programs are,
    none waiting for another's interpreter lock); timed from when all are ready."""
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Barrier(clients + 1), ctx.Queue()
    each = max(1, total // clients)
    procs = [
        ctx.Process(target=_client_process, args=(base_url, token, version, each, sleep, go, out))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    go.wait(timeout=120)
    start = time.perf_counter()
    samples = [s for _ in procs for s in out.get(timeout=600)]
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join(30)
    return samples, elapsed


_PROBE = """
import sys, time
used = spent = 0.0
while not sys.stdin.readline().startswith("stop"):
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < 0.02:
        pass
    used += time.process_time() - c0
    spent += time.perf_counter() - t0
print(used / spent if spent else 0.0)
"""


class _CpuShare:
    """How much of one core a spinning process got while the benchmark ran.

    The probe spins 20 ms every 200 ms in a process of its own, so it takes little
    from the benchmark and measures what the machine had to give.
    """

    def __init__(self) -> None:
        self.share = 0.0
        self._proc: subprocess.Popen[str] | None = None
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        while not self._stop.wait(0.2):
            self._proc.stdin.write("go\n")
            self._proc.stdin.flush()

    def __enter__(self) -> _CpuShare:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join()
        assert self._proc is not None
        out, _ = self._proc.communicate("stop\n", timeout=30)
        self.share = float(out.strip() or 0.0)


@contextlib.contextmanager
def _served(mode: str, state: str) -> Iterator[tuple[str, str]]:
    """A server on a loopback port until the block ends: (base URL, token)."""
    if mode == "embedded":
        with LocalServer(state_dir=state) as srv:
            yield srv.base_url, srv.token
        return
    token = "bench-token"
    # --port 0: the server binds a free port and announces it (no probe to race)
    args = [sys.executable, "-m", "cogfleet", "serve", "--host", "127.0.0.1",
            "--port", "0", "--state", state, "--token", f"{token}=bench"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = threading.Event()
    seen: list[str] = []

    def drain() -> None:  # the access log goes on; reading it keeps the pipe open
        assert proc.stderr is not None
        for line in proc.stderr:
            if not ready.is_set():
                seen.append(line.rstrip())
                if _RUNNING.search(line):
                    ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        ready.wait(60)
        running = [m for m in map(_RUNNING.search, seen) if m]
        if proc.poll() is not None or not running:
            raise RuntimeError("cogfleet serve did not start: " + " | ".join(seen[-3:]))
        yield f"http://127.0.0.1:{running[0].group(1)}", token
    finally:
        proc.terminate()
        proc.wait(30)
        reader.join(5)


def main() -> None:
    """Run the benchmark against an embedded server and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="predictions per scenario")
    parser.add_argument("--threads", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--model-ms", type=float, default=50.0, help="model wait in ms")
    parser.add_argument(
        "--server",
        choices=["process", "embedded"],
        default="process",
        help="cogfleet serve in its own process (default), or in a thread of this one",
    )
    args = parser.parse_args()
    sleep = args.model_ms / 1000

    rows = []
    with tempfile.TemporaryDirectory() as state, _served(args.server, state) as (base, token):
        client = replicate.Client(api_token=token, base_url=base)
        client.models.create(owner="bench", name="noop", visibility="private", hardware="cpu")
        version = str(push_build(client, "bench", "noop", NOOP)["id"])
        for _ in range(10):  # start the runner and warm both sides' connections
            _one(client, version, 0.0)

        def run(label: str, threads: int, total: int, wait: float) -> None:
            samples, elapsed = _scenario(base, token, version, threads, total, wait)
            rows.append(_row(label, samples, elapsed))

        with _CpuShare() as probe:
            run("sequential", 1, args.requests, 0.0)
            run(f"{args.threads} concurrent clients", args.threads, args.requests, 0.0)
            samples, elapsed = _scenario_processes(
                base, token, version, args.threads, args.requests, 0.0
            )
            rows.append(_row(f"{args.threads} client processes", samples, elapsed))
            counts = sorted({1 << i for i in range(args.threads.bit_length())} | {args.threads})
            for threads in [c for c in counts if c <= args.threads]:
                plural = "client" if threads == 1 else "clients"
                # Fewer predictions for one client: each takes the model's time.
                total = max(threads, args.requests * threads // args.threads)
                run(f"{threads} {plural}, model {args.model_ms:g} ms", threads, total, sleep)

    print("| scenario                   |     n | p50 (ms) | p95 (ms) | wall p50 |   req/s |")
    print("|----------------------------|------:|---------:|---------:|---------:|--------:|")
    for row in rows:
        print(row)
    print("overhead = client wall time - metrics.predict_time; wall p50 includes the model.")
    where = "its own process" if args.server == "process" else "a thread of the benchmark"
    print(f"server: cogfleet serve in {where}.")
    print(f"a spinning process got {probe.share:.0%} of a core during the run.")


if __name__ == "__main__":
    main()
