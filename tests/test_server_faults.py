"""Fault injection of the local server: rate limit, injected 5xx, injected latency."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError

from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import push_build

FIXTURES = Path(__file__).parent / "fixtures" / "server"


def _statuses(srv: LocalServer, n: int) -> list[httpx.Response]:
    with httpx.Client(
        base_url=srv.base_url, headers={"Authorization": "Bearer t"}, timeout=10
    ) as http:
        return [http.get("/v1/account") for _ in range(n)]


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with LocalServer(state_dir=tmp_path, rate_limit=5) as srv:
        responses = _statuses(srv, 20)
        codes = [r.status_code for r in responses]
        # A burst well inside one second: the first 5 pass, the rest are throttled.
        assert codes[:5] == [200] * 5
        limited = [r for r in responses if r.status_code == 429]
        assert len(limited) >= 10
        for resp in limited:
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert resp.json()["status"] == 429
        # The client never retries a POST: the 429 reaches the caller with its status.
        client = replicate.Client(api_token="t", base_url=srv.base_url)
        with pytest.raises(ReplicateError) as info:
            for i in range(10):
                client.models.create(
                    owner="acme", name=f"m{i}", visibility="private", hardware="cpu"
                )
        assert info.value.status == 429
        # A GET is retried after Retry-After and then gets through.
        _statuses(srv, 10)
        assert client.accounts.current().username


def test_fail_rate_gives_that_share_of_503s_reproducibly(tmp_path: Path) -> None:
    def run(seed: int) -> list[int]:
        with LocalServer(state_dir=tmp_path / str(seed), fail_rate=0.3, fail_seed=seed) as srv:
            return [r.status_code for r in _statuses(srv, 200)]

    codes = run(7)
    assert set(codes) == {200, 503}
    share = codes.count(503) / len(codes)
    assert 0.2 <= share <= 0.4
    assert run(7) == codes
    assert run(8) != codes


def test_fail_rate_503_is_problem_json(tmp_path: Path) -> None:
    with LocalServer(state_dir=tmp_path, fail_rate=1.0, fail_seed=1) as srv:
        resp = _statuses(srv, 1)[0]
        assert resp.status_code == 503
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["status"] == 503


@pytest.mark.slow
def test_latency_delays_each_prediction(tmp_path: Path) -> None:
    latency = 1.0
    with LocalServer(state_dir=tmp_path, latency=latency) as srv:
        client = replicate.Client(api_token=srv.token, base_url=srv.base_url)
        client.models.create(owner="acme", name="slow", visibility="private", hardware="cpu")
        version = push_build(client, "acme", "slow", FIXTURES / "noop")
        vid = str(version["id"])
        # Warm the runner first so the measurement is the injected delay, not start-up.
        client.predictions.create(version=vid, input={}, wait=True)
        start = time.monotonic()
        pred = client.predictions.create(version=vid, input={"text": "t"}, wait=True)
        assert pred.status == "succeeded" and pred.output == "t"
        assert time.monotonic() - start >= latency
