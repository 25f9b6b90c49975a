"""Overhead of the local server per prediction, excluding the model's own time.

For a no-op predictor (``tests/fixtures/server/noop``, async, ``concurrency.max: 8``)
every prediction is created with ``Prefer: wait`` through the official ``replicate``
client, and the overhead is the client's wall time minus ``metrics.predict_time``
(what coglet measured inside the predictor). Measured sequentially and with 8
client threads at once; prints p50/p95 in milliseconds.

    python bench/server_overhead.py [--requests 200] [--threads 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import replicate

from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build

NOOP = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "server" / "noop"


def _one(client: replicate.Client, version: str) -> tuple[float, float]:
    start = time.perf_counter()
    pred = client.predictions.create(version=version, input={"text": "x"}, wait=True)
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
        f"| {label:<22} | {len(samples):>5} | {_pct(over, 0.5):>8.2f} | {_pct(over, 0.95):>8.2f} "
        f"| {statistics.median(wall):>8.2f} | {len(samples) / elapsed:>7.1f} |"
    )


def main() -> None:
    """Run the benchmark against an embedded server and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="predictions per scenario")
    parser.add_argument("--threads", type=int, default=8, help="concurrent client threads")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as state, LocalServer(state_dir=state) as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="bench", name="noop", visibility="private", hardware="cpu")
        version = str(push_build(client, "bench", "noop", NOOP)["id"])
        for _ in range(10):  # start the runner and warm both sides' connections
            _one(client, version)

        start = time.perf_counter()
        sequential = [_one(client, version) for _ in range(args.requests)]
        seq_elapsed = time.perf_counter() - start

        # One client per thread, as separate processes or workers would have.
        clients = [
            replicate.Client(api_token=srv.token, base_url=srv.base_url)
            for _ in range(args.threads)
        ]
        per_thread = max(1, args.requests // args.threads)

        def worker(c: replicate.Client) -> list[tuple[float, float]]:
            return [_one(c, version) for _ in range(per_thread)]

        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            concurrent = [s for chunk in pool.map(worker, clients) for s in chunk]
        conc_elapsed = time.perf_counter() - start

    print("| scenario               |     n | p50 (ms) | p95 (ms) | wall p50 |   req/s |")
    print("|------------------------|------:|---------:|---------:|---------:|--------:|")
    print(_row("sequential", sequential, seq_elapsed))
    print(_row(f"{args.threads} concurrent clients", concurrent, conc_elapsed))
    print("overhead = client wall time - metrics.predict_time; wall p50 includes the model.")


if __name__ == "__main__":
    main()
