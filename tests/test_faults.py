"""Faults held: 503s and 429s from the server never change a verdict.

A smaller version of ``bench/faults.py``: the demo's schnell variant is pushed twice
(a passing push, then one whose image-size case must fail) to a clean local server
and to one that answers a fifth of all requests 503 and throttles above a few
requests per second (429 with ``Retry-After``), as ``cogfleet serve --fail-rate 0.2
--rate-limit N`` does. Each push's verdict (exit code, result, every step's status,
every case's status) must be the same on both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cogfleet._target import make_client
from cogfleet.server._embedded import LocalServer
from tests.conftest import CliResult

pytestmark = pytest.mark.slow

SCHNELL = "cogfleet-demo/imagegen-schnell"


def verdict(result: CliResult, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "exit": result.code,
        "result": report["result"],
        "pushed": report["pushed"],
        "steps": {s["name"]: s["status"] for s in report["steps"]},
        "cases": sorted((c["kind"], c["index"], c["checker"] or "", c["status"])
                        for c in report["cases"]),
    }


def push_twice(cli: Callable[..., CliResult], repo: Path, server: LocalServer) -> list[Any]:
    client, _ = make_client(server.base_url, server.token)  # retries, as cogfleet does
    owner, name = SCHNELL.split("/")
    client.models.create(owner=owner, name=name, visibility="public", hardware="cpu")
    config = repo / "cog-safe-push-configs/schnell.yaml"
    text = config.read_text()
    verdicts = []
    for i, size in enumerate(("256x256", "8x8")):
        config.write_text(text.replace("image_size: 256x256", f"image_size: {size}"))
        report = repo / f"report-{i}.json"
        result = cli("push", "schnell", "--local-url", server.base_url,
                     "--report-json", str(report), cwd=repo)
        assert report.exists(), result.err
        verdicts.append(verdict(result, json.loads(report.read_text())))
    config.write_text(text)
    return verdicts


def test_same_verdicts_with_503s_and_429s(tmp_path, cli, demo_repo):
    import shutil

    other_repo = tmp_path / "demo-copy"
    shutil.copytree(demo_repo, other_repo)
    with LocalServer(state_dir=tmp_path / "clean") as clean:
        expected = push_twice(cli, demo_repo, clean)
    with LocalServer(state_dir=tmp_path / "faulty", fail_rate=0.2, fail_seed=11,
                     rate_limit=6) as faulty:
        got = push_twice(cli, other_repo, faulty)
    assert [v["result"] for v in expected] == ["passed", "failed"]
    failed_cases = [c for c in expected[1]["cases"] if c[3] == "failed"]
    assert [c[2] for c in failed_cases] == ["image_size"]
    assert got == expected
