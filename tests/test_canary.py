"""``cogfleet canary`` on the local target: a real server, real coglet, real predictions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import replicate

from cogfleet import ExitCode
from cogfleet._canary import canary_model
from cogfleet._errors import UsageError
from cogfleet.server._embedded import LocalServer
from tests.conftest import CliResult

pytestmark = pytest.mark.slow

_PREDICTION = re.compile(r"^canary: prediction (\S+) returned the marker (\S+) in ", re.M)
_OK = re.compile(r"^canary: ok on local: (\S+):([0-9a-f]{64}) in ", re.M)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path / "state") as srv:
        yield srv


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.delenv("COGFLEET_CANARY_MODEL", raising=False)
    monkeypatch.delenv("COGFLEET_REPO", raising=False)
    monkeypatch.delenv("COGFLEET_TARGET", raising=False)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    return folder


def parse(result: CliResult) -> tuple[str, str, str, str]:
    """(model, version, prediction id, marker) from a successful run's output."""
    assert result.code == ExitCode.OK, result.err
    ok, pred = _OK.search(result.out), _PREDICTION.search(result.out)
    assert ok and pred, result.out
    return ok.group(1), ok.group(2), pred.group(1), pred.group(2)


def test_canary_pushes_a_new_version_and_predicts_on_exactly_it(
    cli: Callable[..., CliResult], server: LocalServer, workdir: Path
):
    client = replicate.Client(api_token=server.token, base_url=server.base_url)
    first = parse(cli("canary", "--local-url", server.base_url, cwd=workdir))
    second = parse(cli("canary", "--local-url", server.base_url, cwd=workdir))
    # no --model: the account's own canary model (the local server's account is "local")
    assert first[0] == second[0] == "local/cogfleet-canary"
    assert first[1] != second[1] and first[3] != second[3]  # a fresh build each run
    for _model, version, pid, marker in (first, second):
        prediction = client.predictions.get(pid)
        assert prediction.version == version
        assert prediction.status == "succeeded"
        assert prediction.output == marker
    listed = {v.id for v in client.models.get("local/cogfleet-canary").versions.list()}
    assert {first[1], second[1]} <= listed
    assert client.models.get("local/cogfleet-canary").visibility == "private"
    summary = (workdir.parent / "summary.md").read_text()
    assert summary.count("canary ok on local") == 2 and second[1] in summary


def test_model_from_flag_and_environment(
    cli: Callable[..., CliResult], server: LocalServer, workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    assert parse(cli("canary", "--local-url", server.base_url, "--model", "acme",
                     cwd=workdir))[0] == "acme/cogfleet-canary"
    monkeypatch.setenv("COGFLEET_CANARY_MODEL", "ops/probe")
    assert parse(cli("canary", "--local-url", server.base_url, cwd=workdir))[0] == "ops/probe"


def test_embedded_server(cli: Callable[..., CliResult], workdir: Path):
    """Without --local-url the embedded server runs, its state under the current folder."""
    model, version, _, _ = parse(cli("canary", "--model", "acme/canary", cwd=workdir))
    assert model == "acme/canary" and len(version) == 64
    assert (workdir / ".cogfleet" / "local").is_dir()


def test_rejected_token_fails_loudly_without_showing_it(
    cli: Callable[..., CliResult], tmp_path: Path, workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    with LocalServer(state_dir=tmp_path / "guarded", token="the-right-token") as srv:
        monkeypatch.setenv("COGFLEET_LOCAL_TOKEN", "a-wrong-token")
        result = cli("canary", "--local-url", srv.base_url, cwd=workdir)
    assert result.code == ExitCode.CHECKS_FAILED
    assert "CANARY FAILED on local (model not resolved)" in result.err
    assert "401" in result.err
    assert "a-wrong-token" not in result.err + result.out
    assert "canary failed on local" in (workdir.parent / "summary.md").read_text()


def test_prediction_timeout_fails(
    cli: Callable[..., CliResult], tmp_path: Path, workdir: Path
):
    """A prediction that does not finish in time is cancelled and the canary fails."""
    with LocalServer(state_dir=tmp_path / "slow", latency=5.0) as srv:
        result = cli("canary", "--local-url", srv.base_url, "--timeout", "1", cwd=workdir)
    assert result.code == ExitCode.CHECKS_FAILED
    assert "CANARY FAILED on local (local/cogfleet-canary): prediction" in result.err
    assert "timed out after 1s" in result.err


def test_bad_model_name_is_a_usage_error(cli: Callable[..., CliResult], workdir: Path):
    result = cli("canary", "--model", "Acme/Canary", cwd=workdir)
    assert result.code == ExitCode.USAGE_ERROR
    assert result.err == (
        "error: --model: canary model must be 'owner/name' (lower-case name), got 'Acme/Canary'\n"
    )


def test_canary_model_names(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("COGFLEET_CANARY_MODEL", raising=False)
    assert canary_model(None) is None
    assert canary_model(None, "me") == "me/cogfleet-canary"
    assert canary_model("acme/x") == "acme/x"
    monkeypatch.setenv("COGFLEET_CANARY_MODEL", "")
    assert canary_model(None, "me") == "me/cogfleet-canary"
    with pytest.raises(UsageError):
        canary_model("a b")
