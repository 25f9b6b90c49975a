"""The bad-input suite, the `cog` CLI's output (replicate target): a push that prints
no version id, or one the API does not know, is exit 2 naming the push, not a failed
check; a failing push's output is shown without the credentials it may quote."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import replicate

from cogfleet.server._embedded import LocalServer
from tests.conftest import CliResult
from tests.test_pipeline import create_model

TOKEN = "r8_cog-output-secret-0123456789"
TOKEN_SHOWN = "echo \"auth failed for $REPLICATE_API_TOKEN\" >&2; exit 1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(state_dir=tmp_path / "state") as srv:
        yield srv


@pytest.fixture
def push_with_cog(
    tmp_path: Path, server: LocalServer, monkeypatch: pytest.MonkeyPatch,
    make_repo: Callable[..., Path], cli: Callable[..., CliResult],
) -> Callable[[str], tuple[CliResult, Path]]:
    """``cogfleet push alpha --target replicate`` with a `cog` that runs ``script``."""
    client = replicate.Client(api_token=server.token, base_url=server.base_url)
    create_model(client, "acme/alpha")
    monkeypatch.setenv("REPLICATE_BASE_URL", server.base_url)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)  # the server takes any token

    def run(script: str) -> tuple[CliResult, Path]:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        cog = bin_dir / "cog"
        cog.write_text(f"#!/bin/sh\n{script}\n")
        cog.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        root = make_repo()
        result = cli("push", "alpha", "--target", "replicate", "--report-json", "report.json",
                     cwd=root)
        return result, root

    return run


@pytest.mark.parametrize(
    ("script", "what"),
    [
        ("echo 'Pushing image...'; exit 0",
         "cog push r8.im/acme/alpha-test: exit 0 but no version id in cog's output"),
        ("echo 'latest: digest: sha256:" + "0" * 64 + " size: 1'; exit 0",
         "cog push r8.im/acme/alpha-test: cog's output names version 000000000000, which "
         "acme/alpha-test does not have"),
    ],
)
def test_a_push_without_a_usable_version_id_is_exit_2(push_with_cog, script, what):
    result, _ = push_with_cog(script)
    assert result.code == 2, result.err
    assert result.err.strip().splitlines()[-1].startswith(f"error: alpha: push-test: {what}")


def test_a_failing_push_never_shows_the_token_it_quotes(push_with_cog):
    result, root = push_with_cog(TOKEN_SHOWN)
    assert result.code == 1, result.err  # the build failed: a verdict on the push
    assert "cog push r8.im/acme/alpha-test failed (exit 1): auth failed for ***" in result.err
    report = (root / "report.json").read_text()
    assert TOKEN not in result.out + result.err + report
    assert json.loads(report)["pushed"] is False


def test_a_killed_push_says_so(push_with_cog):
    result, _ = push_with_cog("kill -9 $$")
    assert result.code == 1
    assert "cog push r8.im/acme/alpha-test failed (killed by signal 9): no output" in result.err
