"""The bad-input suite, command line: flag values checked before anything is rendered.

The contract is the one of ``test_bad_input.py`` (exit 2, one line naming the flag,
nothing written or started); these cases run ``cogfleet push`` on the basic repo, and
``schema-diff`` and ``canary`` with bad arguments.
"""

from __future__ import annotations

import json

import pytest

from tests.test_bad_input import CONFIG, assert_rejected

EMPTY_VALUES = [
    pytest.param(["--report-json", ""], "--report-json", id="report-json"),
    pytest.param(["--markdown", " "], "--markdown", id="markdown-blank"),
    pytest.param(["--local-url", ""], "--local-url", id="local-url"),
    pytest.param(["--repo", ""], "--repo", id="repo"),
    pytest.param(["--test-hardware", ""], "--test-hardware", id="test-hardware"),
    pytest.param(["--fuzz-prompt", ""], "--fuzz-prompt", id="fuzz-prompt"),
    pytest.param(["--secret", ""], "--secret", id="secret"),
]


@pytest.mark.parametrize(("args", "flag"), EMPTY_VALUES)
def test_an_empty_flag_value_is_refused_not_taken_as_absent(push_broken, args, flag):
    # "--report-json $REPORT" with REPORT unset used to push without writing a report
    result, root = push_broken({}, *args)
    assert_rejected(result, root, f"cogfleet push: argument {flag}: empty value")


CLI_CASES = [
    pytest.param(["--python", "banana"], "cogfleet push: argument --python",
                 ["expected a version like 3.11, got 'banana'"], id="python-not-a-version"),
    pytest.param(["--test-model", "acme/alpha"], "--test-model acme/alpha",
                 ["must differ from the model"], id="test-model-is-the-model"),
    pytest.param(["--test-model", "acme/Alpha Test"], "cogfleet push: argument --test-model",
                 ["expected 'owner/name'"], id="test-model-not-a-name"),
    pytest.param(["--test-case", ""], "cogfleet push: argument --test-case",
                 ["expected k=v;k=v"], id="test-case-empty"),
    pytest.param(["--test-case", "prompt=hi~="], "--test-case: match_prompt",
                 ["non-empty"], id="test-case-empty-prompt"),
    pytest.param(["--test-case", "prompt=hi==http://[::1"], "--test-case: match_url",
                 ["is not a URL"], id="test-case-url-malformed"),
    pytest.param(["--junit-xml", "./report.json"], "--junit-xml ./report.json",
                 ["--report-json writes that file too"], id="two-reports-one-file"),
    pytest.param(["--fuzz-iterations", "99999999999"],
                 "cogfleet push: argument --fuzz-iterations",
                 ["must be at most 10000, got 99999999999"], id="fuzz-iterations-huge"),
]


@pytest.mark.parametrize(("args", "where", "what"), CLI_CASES)
def test_flags_are_checked_before_rendering(push_broken, args, where, what):
    result, root = push_broken({}, *args)
    assert_rejected(result, root, where, *what)


def test_a_test_model_that_is_the_official_model_is_refused(push_broken):
    config = "model: acme/alpha\nofficial_model: acme/official\n"
    result, root = push_broken({CONFIG: config}, "--test-model", "acme/official")
    assert_rejected(result, root, "--test-model acme/official: the same model as official_model")


def test_a_password_in_the_local_url_is_not_shown(push_broken):
    result, root = push_broken({}, "--local-url", "http://me:s3cr3t-pw@127.0.0.1:9")
    assert_rejected(result, root, "--local-url http://me:***@127.0.0.1:9", "cannot reach it")
    assert "s3cr3t-pw" not in result.err + result.out


SCHEMA_FILES = [
    pytest.param('{"components": {"schemas": {"Input": {"properties": 5}}}}',
                 "old.json: components.schemas.Input: properties: expected a JSON object",
                 id="properties-not-an-object"),
    pytest.param('{"components": {"schemas": {"Input": {"properties": {"a": []}}}}}',
                 "old.json: components.schemas.Input: properties.a: expected a JSON object",
                 id="property-not-an-object"),
    pytest.param('{"components": {"schemas": {"Input": {"required": "a"}}}}',
                 "old.json: components.schemas.Input: required: expected a list of names",
                 id="required-not-a-list"),
    pytest.param("[" * 100_000 + "]" * 100_000, "old.json: not valid JSON: nested too deeply",
                 id="nested-too-deeply"),
]


@pytest.mark.parametrize(("content", "message"), SCHEMA_FILES)
def test_schema_diff_of_a_file_that_is_no_schema(tmp_path, cli, content, message):
    (tmp_path / "old.json").write_text(content)
    (tmp_path / "new.json").write_text(json.dumps(
        {"components": {"schemas": {"Input": {"properties": {}}}}}
    ))
    result = cli("schema-diff", "old.json", "new.json", cwd=tmp_path)
    assert result.code == 2, result.err
    assert result.err == f"error: {message}\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "-1"], "cogfleet canary: argument --timeout: must be a positive number"),
    (["--timeout", "nan"], "cogfleet canary: argument --timeout: must be a positive number"),
    (["--local-url", "ftp://example.org"], "--local-url ftp://example.org: expected http://"),
    (["--model", "a/b/c"], "--model: canary model must be 'owner/name'"),
])
def test_canary_flags_are_usage_errors_not_a_failed_canary(tmp_path, cli, args, message):
    result = cli("canary", *args, cwd=tmp_path)
    assert result.code == 2, result.err
    assert result.err.startswith(f"error: {message}"), result.err
    assert len(result.err.splitlines()) == 1 and "CANARY FAILED" not in result.err
    assert not (tmp_path / ".cogfleet").exists()


@pytest.mark.parametrize("command", ["cog-version", "schema", "lint", "render"])
def test_an_empty_variant_name_is_an_unknown_variant_not_none(make_repo, cli, command):
    # `cogfleet cog-version "$VARIANT"` with VARIANT unset printed the repo's pin
    root = make_repo()
    result = cli(command, "", cwd=root)
    assert result.code == 2, (result.code, result.out, result.err)
    assert result.err == "error: unknown variant ''; valid: alpha, beta\n"
    assert not (root / ".cogfleet" / "build").exists()
