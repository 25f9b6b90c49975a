"""The replicate target (through a fake `cog` that pushes into the local server),
interrupts, and a flaky server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import replicate

from cogfleet import ExitCode
from cogfleet._target import has_fast_push, parse_cog_push_version
from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import version_id_for
from tests.conftest import write_fake_cog
from tests.test_pipeline import SCHNELL, Pusher, create_model, steps, versions

HEX = "0123456789abcdef" * 4
OTHER = "fedcba9876543210" * 4


@pytest.mark.parametrize(
    "output",
    [
        # cog <= 0.16: docker push's digest line (the tag may not be `latest`)
        f"#3 FROM r8.im/cog-base@sha256:{OTHER}\nv1: digest: sha256:{HEX} size: 3269\n",
        # cog >= 0.17 with COG_PUSH_OCI=1: only the image line
        f"#3 FROM r8.im/cog-base@sha256:{OTHER}\nPushing layers...\n\n"
        f"  image  r8.im/acme/m@sha256:{HEX}\n",
        # cog <= 0.16 fast push
        f"Uploading...\nNew Version: {HEX}\n",
    ],
)
def test_version_id_parsed_from_cog_output(output):
    assert parse_cog_push_version(output) == HEX


def test_no_version_id_in_cog_output():
    assert parse_cog_push_version(f"FROM base@sha256:{OTHER}\nerror: denied\n") is None


@pytest.fixture
def fake_cog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `cog` on PATH that pushes into the local server and prints cog's output."""
    bin_dir = write_fake_cog(tmp_path / "bin").parent
    log = tmp_path / "cog-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_COG_LOG", str(log))
    return log


@pytest.fixture
def replicate_env(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_BASE_URL", server.base_url)
    monkeypatch.setenv("REPLICATE_API_TOKEN", server.token)


@pytest.fixture
def server(tmp_path: Path):
    with LocalServer(state_dir=tmp_path / "state") as srv:
        yield srv


@pytest.fixture
def client(server: LocalServer) -> replicate.Client:
    return replicate.Client(api_token=server.token, base_url=server.base_url)


@pytest.fixture
def run(cli, demo_repo):
    def _run(*args: str):
        report = demo_repo / "report.json"
        report.unlink(missing_ok=True)
        result = cli(*args, "--report-json", str(report), cwd=demo_repo)
        return result, (json.loads(report.read_text()) if report.exists() else None)

    return _run


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
def test_replicate_target_pushes_with_cog(fake_cog, replicate_env, client, run, demo_repo):
    create_model(client, SCHNELL)
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "use_cog_base_image: false\n")
    result, report = run("push", "schnell", "--target", "replicate", "--no-compare-outputs",
                         "--separate-weights", "--secret", "id=hf,src=/run/hf-token")
    assert result.code == ExitCode.OK, result.err
    build = demo_repo / ".cogfleet/build/schnell"
    assert report["target"] == "replicate"
    # parsed from cog's output
    assert report["test_version"] == version_id_for(build, f"{SCHNELL}-test")
    calls = _calls(fake_cog)
    assert [c["argv"][:2] for c in calls] == [
        ["push", f"r8.im/{SCHNELL}-test"],
        ["push", f"r8.im/{SCHNELL}"],  # promotion: the same build folder, pushed again
    ]
    assert all(c["cwd"] == str(build) for c in calls)
    assert all("--use-cog-base-image=false" in c["argv"] for c in calls)
    assert all("--separate-weights" in c["argv"] for c in calls)
    assert all(c["secrets"] == [{"id": "hf", "src": "/run/hf-token", "existed": False}]
               for c in calls)
    assert versions(client, SCHNELL) == [report["version"]]


@pytest.mark.parametrize(("cli", "has"), [
    ("0.14.3", True), ("0.16.12", True), ("0.17.0", False), ("0.23.1", False), ("", False),
])
def test_fast_push_is_a_flag_of_cog_up_to_0_16(cli, has):
    assert has_fast_push(cli) is has


@pytest.mark.slow
def test_fast_push_where_the_cog_cli_has_no_fast_push(
    fake_cog, replicate_env, client, run, demo_repo
):
    """cog-safe-push passes ``fast_push`` on as ``--x-fast``, which Cog 0.17 removed (the
    fake cog refuses it as the real one does): such a CLI pushes as usual, with a note."""
    create_model(client, SCHNELL)
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "fast_push: true\n")
    result, report = run("test", "schnell", "--target", "replicate", "--no-compare-outputs")
    assert result.code == ExitCode.OK, result.err
    assert all("--x-fast" not in c["argv"] for c in _calls(fake_cog))
    message = next(s["message"] for s in report["steps"] if s["name"] == "push-test")
    assert "fast_push: the cog CLI 0.23.1 has no fast push" in message


@pytest.mark.slow
def test_fast_push_passes_x_fast_to_a_cog_cli_that_has_it(
    fake_cog, replicate_env, client, run, demo_repo, monkeypatch
):
    create_model(client, SCHNELL)
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "fast_push: true\n")
    monkeypatch.setenv("FAKE_COG_VERSION", "0.16.8")
    monkeypatch.setenv("FAKE_COG_FAIL_FOR", f"{SCHNELL}-test")  # the argv is all we need
    result, _ = run("test", "schnell", "--target", "replicate")
    assert result.code == ExitCode.CHECKS_FAILED
    assert [c["argv"][:3] for c in _calls(fake_cog)] == [
        ["push", f"r8.im/{SCHNELL}-test", "--x-fast"]
    ]


@pytest.mark.slow
def test_replicate_target_needs_a_token(run, monkeypatch, fake_cog):
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    result, _ = run("test", "schnell", "--target", "replicate")
    assert result.code == ExitCode.USAGE_ERROR
    assert "REPLICATE_API_TOKEN" in result.err


@pytest.mark.slow
def test_official_key_file_removed_when_push_fails_midway(
    fake_cog, replicate_env, client, run, demo_repo, monkeypatch
):
    create_model(client, SCHNELL)
    config = demo_repo / "cog-safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "official_model: cogfleet-official/schnell\n")
    secret = "r8_proxy-secret-value-42"
    monkeypatch.setenv("COGFLEET_OFFICIAL_MODEL_API_KEY", secret)
    monkeypatch.setenv("FAKE_COG_FAIL_FOR", "cogfleet-official/schnell")
    result, report = run(
        "push", "schnell", "--target", "replicate", "--no-compare-outputs",
        "--push-official-model",
    )
    assert result.code == ExitCode.CHECKS_FAILED
    assert steps(report)["promote"] == "passed"
    assert steps(report)["official-model"] == "failed"
    official = [c for c in _calls(fake_cog) if c["argv"][1] == "r8.im/cogfleet-official/schnell"]
    given = official[0]["secrets"][0]
    assert given["id"] == "api_key" and given["existed"] is True  # given to the build
    build = demo_repo / ".cogfleet/build/schnell"
    assert not Path(given["src"]).is_relative_to(build)  # never inside the build folder
    assert not Path(given["src"]).exists() and not Path(given["src"]).parent.exists()
    assert not any(secret in p.read_text(errors="ignore") for p in build.rglob("*") if p.is_file())
    assert secret not in result.out + result.err + json.dumps(report)


@pytest.mark.slow
def test_flaky_server_gives_the_same_verdicts(tmp_path, cli, demo_repo):
    with LocalServer(state_dir=tmp_path / "flaky", fail_rate=0.3, fail_seed=7) as flaky:
        flaky_client = replicate.Client(api_token=flaky.token, base_url=flaky.base_url)
        for _ in range(20):  # the client itself retries GETs but not this POST
            try:
                create_model(flaky_client, SCHNELL)
                break
            except replicate.exceptions.ReplicateError:
                continue
        push = Pusher(cli, demo_repo, flaky)
        result, report = push("push", "schnell", "--no-compare-outputs")
        assert result.code == ExitCode.OK, result.err
        assert all(c["status"] == "passed" for c in report["cases"])
        config = demo_repo / "cog-safe-push-configs/schnell.yaml"
        config.write_text(config.read_text().replace("image_size: 256x256", "image_size: 8x8"))
        failing, report2 = push("push", "schnell", "--no-compare-outputs")
        assert failing.code == ExitCode.CHECKS_FAILED
        failed = [c["checker"] for c in report2["cases"] if c["status"] == "failed"]
        assert failed == ["image_size"]  # the real failure only, never a transient one


@pytest.mark.slow
def test_ctrl_c_cancels_in_flight_predictions(tmp_path, demo_repo):
    with LocalServer(state_dir=tmp_path / "slow", latency=30) as slow:
        client = replicate.Client(api_token=slow.token, base_url=slow.base_url)
        create_model(client, SCHNELL)
        proc = subprocess.Popen(
            [sys.executable, "-m", "cogfleet", "test", "schnell", "--local-url", slow.base_url,
             "--no-compare-outputs"],
            cwd=demo_repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            running: list = []
            while time.monotonic() < deadline and len(running) < 4:
                running = [p for p in client.predictions.list().results
                           if p.status in ("starting", "processing")]
                time.sleep(0.2)
            assert len(running) >= 4, "the run never reached its predictions"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == ExitCode.INTERRUPTED, err
        assert "canceled" in err
        statuses = {p.id: p.status for p in client.predictions.list().results}
        assert statuses and all(s == "canceled" for s in statuses.values()), statuses
