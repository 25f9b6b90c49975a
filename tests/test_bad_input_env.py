"""The bad-input suite, environment: variables a run reads, checked before anything is done.

The contract is the one of ``test_bad_input.py``: exit 2, one line naming the variable
and the problem, nothing rendered, started or pushed, and no secret in the output.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_fake_cog
from tests.test_bad_input import assert_rejected

TOKEN = "r8_0123456789abcdefSecretToken"


@pytest.fixture
def fake_cog(tmp_path, monkeypatch):
    """A ``cog`` CLI on PATH (the replicate target needs one)."""
    bin_dir = tmp_path / "bin"
    write_fake_cog(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


ENV_CASES = [
    pytest.param({"COGFLEET_TARGET": "production"}, "$COGFLEET_TARGET is 'production'",
                 ["expected local or replicate"], id="target-unknown"),
    pytest.param({"COGFLEET_JUDGE_VOTES": "many"}, "$COGFLEET_JUDGE_VOTES must be a positive",
                 ["'many'"], id="judge-votes-not-a-number"),
    pytest.param({"COGFLEET_JUDGE_VOTES": "0"}, "$COGFLEET_JUDGE_VOTES must be a positive",
                 [], id="judge-votes-zero"),
    pytest.param({"COGFLEET_ENV_DIR": "{root}/models/fam/predict.py"}, "$COGFLEET_ENV_DIR",
                 ["not a folder"], id="env-dir-a-file"),
    pytest.param({"COGFLEET_ENV_DIR": "{root}/models/fam/predict.py/envs"}, "$COGFLEET_ENV_DIR",
                 ["predict.py is a file, not a folder"], id="env-dir-under-a-file"),
    pytest.param({"COGFLEET_DISABLE_PLUGINS": "image-size"}, "COGFLEET_DISABLE_PLUGINS: no "
                 "plugin named 'image-size'", ["(plugins: ai, checkers"], id="disable-a-typo"),
    pytest.param({"GITHUB_STEP_SUMMARY": "{root}/models"}, "$GITHUB_STEP_SUMMARY",
                 ["is a folder"], id="step-summary-a-folder"),
]


@pytest.mark.parametrize(("env", "where", "what"), ENV_CASES)
def test_bad_environment(push_broken, make_repo, monkeypatch, env, where, what):
    root = make_repo()
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("{root}", str(root)))
    result, root = push_broken({})
    assert_rejected(result, root, where.replace("{root}", str(root)), *what)


REPLICATE_CASES = [
    pytest.param({"REPLICATE_API_TOKEN": None}, "--target replicate needs REPLICATE_API_TOKEN",
                 id="no-token"),
    pytest.param({"REPLICATE_API_TOKEN": "  "}, "--target replicate needs REPLICATE_API_TOKEN",
                 id="blank-token"),
    pytest.param({"REPLICATE_API_TOKEN": TOKEN + "\nX-Other: 1"},
                 "REPLICATE_API_TOKEN is not a token", id="token-with-a-newline"),
    pytest.param({"REPLICATE_API_TOKEN": TOKEN + "é"}, "REPLICATE_API_TOKEN is not a token",
                 id="token-not-ascii"),
    pytest.param({"REPLICATE_BASE_URL": "api.replicate.com"}, "REPLICATE_BASE_URL",
                 id="base-url-no-scheme"),
    pytest.param({"REPLICATE_BASE_URL": "http://[::1"}, "REPLICATE_BASE_URL", id="base-url-bad"),
    pytest.param({"REPLICATE_BASE_URL": f"ftp://me:{TOKEN}@example.org"},
                 "REPLICATE_BASE_URL 'ftp://me:***@example.org'", id="base-url-password"),
    pytest.param({"PATH": "/nonexistent"}, "--target replicate needs the `cog` CLI on PATH",
                 id="no-cog"),
]


@pytest.mark.parametrize(("env", "where"), REPLICATE_CASES)
def test_the_replicate_target_checks_its_environment_first(
    push_broken, monkeypatch, fake_cog, env, where
):
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    result, root = push_broken({}, "--target", "replicate")
    assert_rejected(result, root, where)
    assert TOKEN not in result.err + result.out


@pytest.mark.parametrize("token", [TOKEN + "\nX-Other: 1", TOKEN + "é", "two words"])
def test_a_local_token_that_cannot_be_sent_is_refused_first(push_broken, monkeypatch, token):
    """$COGFLEET_LOCAL_TOKEN goes to a --local-url server in a header: one it cannot be
    sent in is exit 2 naming the variable (not an internal error, nor a failed push
    that quotes it)."""
    import socket

    monkeypatch.setenv("COGFLEET_LOCAL_TOKEN", token)
    with socket.socket() as listening:  # something listens: the URL itself is fine
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        result, root = push_broken({}, "--local-url", url)
    assert_rejected(result, root, "COGFLEET_LOCAL_TOKEN is not a token")
    assert token not in result.err + result.out
