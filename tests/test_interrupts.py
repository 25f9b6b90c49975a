"""Interrupts tell the truth: SIGINT at each phase of a safe push, as a terminal sends it.

A repo plugin sends SIGINT to the whole process group of a real ``cogfleet`` process at
an exact point of the run (a step starting, the checks done, a lint hook running), so
each phase is hit every time. Each test asserts the exit code, the one line on stderr
saying what was canceled and where the model stands, the JSON report, and the state of
the models on the server (read with the official client).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import replicate

from cogfleet import ExitCode
from cogfleet.server._embedded import LocalServer
from cogfleet.server._push import version_id_for
from tests.conftest import write_files

pytestmark = pytest.mark.slow

SCHNELL = "cogfleet-demo/imagegen-schnell"
SCHNELL_TEST = "cogfleet-demo/imagegen-schnell-test"

# Sends SIGINT to its own process group (what Ctrl-C in a terminal does) once, when
# the event named by COGFLEET_TEST_SIGINT_AT happens: "step-start:<step>",
# "checks-done" (every check step has ended) or "lint" (the lint hook runs).
INTERRUPT_PLUGIN = '''\
import os
import signal

from cogfleet import hookimpl

AT = os.environ.get("COGFLEET_TEST_SIGINT_AT", "")
CHECKS = {"compare-outputs", "test-cases", "fuzz", "train"}
sent = []


def _sigint():
    if not sent:
        sent.append(True)
        os.killpg(os.getpgid(0), signal.SIGINT)


@hookimpl
def cogfleet_progress(event):
    if event.kind == "step-start" and AT == f"step-start:{event.step.name}":
        _sigint()
    if AT == "checks-done" and event.kind == "step-done":
        done = {s.name for s in event.result.steps}
        if CHECKS <= done:
            _sigint()


@hookimpl
def cogfleet_lint(variant, build_dir):
    if AT == "lint":
        _sigint()
    return []
'''


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path / "state") as srv:
        yield srv


@pytest.fixture
def client(server: LocalServer) -> replicate.Client:
    return replicate.Client(api_token=server.token, base_url=server.base_url)


@pytest.fixture
def repo(demo_repo: Path, client: replicate.Client) -> Path:
    write_files(demo_repo, {"plugins/zz_sigint.py": INTERRUPT_PLUGIN})
    client.models.create(owner="cogfleet-demo", name="imagegen-schnell",
                         visibility="public", hardware="cpu")
    return demo_repo


def versions(client: replicate.Client, model: str) -> list[str]:
    try:
        return [v.id for v in client.models.get(model).versions.list()]
    except replicate.exceptions.ReplicateError:
        return []


def run_interrupted(
    repo: Path, server: LocalServer, at: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """``cogfleet ARGS`` in its own process group, SIGINT at ``at``; (process, report)."""
    report = repo / "report.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "cogfleet", *args, "--local-url", server.base_url,
         "--report-json", str(report)],
        cwd=repo, env={**os.environ, "COGFLEET_TEST_SIGINT_AT": at},
        capture_output=True, text=True, timeout=300, start_new_session=True, check=False,
    )
    return proc, (json.loads(report.read_text()) if report.exists() else None)


def summary_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1, stderr
    return lines[0]


def steps(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["name"]: (s["status"], s["message"]) for s in report["steps"]}


def assert_nothing_promoted(report: dict[str, Any], client: replicate.Client) -> None:
    assert report["interrupted"] is True
    assert report["result"] == "failed"
    assert report["pushed"] is False and report["version"] is None
    assert versions(client, SCHNELL) == []
    assert all(s["status"] == "skipped" for s in report["steps"]
               if s["name"] in ("promote", "deployment", "official-model"))


def assert_no_prediction_running(client: replicate.Client) -> None:
    running = [p.id for p in client.predictions.list().results
               if p.status in ("starting", "processing")]
    assert running == []


def test_sigint_during_lint_step(repo, server, client):
    proc, report = run_interrupted(repo, server, "step-start:lint", "push", "schnell")
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stderr
    line = summary_line(proc.stderr)
    assert "during lint" in line and f"{SCHNELL} not promoted" in line
    assert "Traceback" not in proc.stderr
    assert_nothing_promoted(report, client)
    assert steps(report)["lint"] == ("skipped", "interrupted while running")
    assert report["test_version"] is None and versions(client, SCHNELL_TEST) == []


def test_sigint_during_push_to_the_test_model(repo, server, client):
    proc, report = run_interrupted(repo, server, "step-start:push-test", "push", "schnell")
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stderr
    line = summary_line(proc.stderr)
    assert "during push-test" in line and f"{SCHNELL} not promoted" in line
    assert_nothing_promoted(report, client)
    assert steps(report)["lint"][0] == "passed"
    assert steps(report)["push-test"] == ("skipped", "interrupted while running")
    assert steps(report)["test-cases"] == ("skipped", "interrupted")


def test_sigint_during_checks_cancels_predictions(repo, server, client):
    proc, report = run_interrupted(repo, server, "step-start:test-cases", "push", "schnell")
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stderr
    line = summary_line(proc.stderr)
    assert "test-cases" in line and "canceled" in line and f"{SCHNELL} not promoted" in line
    assert f"test version {SCHNELL_TEST}:{report['test_version'][:12]}" in line
    assert_nothing_promoted(report, client)
    assert steps(report)["test-cases"] == ("skipped", "interrupted while running")
    assert versions(client, SCHNELL_TEST) == [report["test_version"]]
    assert_no_prediction_running(client)


def test_sigint_after_the_checks_promotes_nothing(repo, server, client):
    proc, report = run_interrupted(repo, server, "checks-done", "push", "schnell")
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stderr
    line = summary_line(proc.stderr)
    assert f"{SCHNELL} not promoted" in line
    assert_nothing_promoted(report, client)
    assert steps(report)["test-cases"][0] == "passed"
    assert steps(report)["promote"] == ("skipped", "interrupted")


@pytest.mark.parametrize("step", ["promote", "deployment"])
def test_sigint_during_promotion_lets_it_finish(repo, server, client, step):
    config = repo / "cog-safe-push-configs/schnell.yaml"
    config.write_text(config.read_text() + "deployment:\n  name: schnell-prod\n")
    proc, report = run_interrupted(repo, server, f"step-start:{step}", "push", "schnell")
    assert proc.returncode == ExitCode.INTERRUPTED, proc.stderr
    promoted = versions(client, SCHNELL)
    build = repo / ".cogfleet/build/schnell"  # the tested build itself, the model's own version
    assert promoted == [report["version"]] == [version_id_for(build, SCHNELL)]
    assert report["test_version"] == version_id_for(build, SCHNELL_TEST)
    assert report["result"] == "passed" and report["pushed"] is True
    assert report["interrupted"] is True
    assert steps(report)["promote"][0] == "passed"
    assert steps(report)["deployment"][0] == "passed"  # release ran to its end too
    line = summary_line(proc.stderr)
    assert f"{SCHNELL} promoted to {report['version'][:12]}" in line
    assert "finished" in line
    account = client.accounts.current().username
    deployment = client.deployments.get(f"{account}/schnell-prod")
    assert deployment.current_release.version == report["version"]


def test_sigint_during_the_lint_command(repo):
    proc = subprocess.run(
        [sys.executable, "-m", "cogfleet", "lint", "schnell"],
        cwd=repo, env={**os.environ, "COGFLEET_TEST_SIGINT_AT": "lint"},
        capture_output=True, text=True, timeout=120, start_new_session=True, check=False,
    )
    assert proc.returncode == ExitCode.INTERRUPTED
    assert proc.stderr.strip().splitlines()[-1].startswith("interrupted")
    assert "Traceback" not in proc.stderr
    assert "schnell: ok" not in proc.stdout
