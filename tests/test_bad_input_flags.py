"""The bad-input suite, flags that contradict the run: a report that would overwrite a
file the run is built from, and flags of the local target given with the replicate one.
Each is exit 2 naming the flag, with nothing rendered, written or pushed."""

from __future__ import annotations

import pytest

from tests.test_bad_input import CONFIG, TEMPLATE, VARIANTS, assert_rejected

PREDICT = "models/fam/predict.py"


@pytest.mark.parametrize(
    ("flag", "path"),
    [("--report-json", PREDICT), ("--junit-xml", CONFIG), ("--html", VARIANTS),
     ("--markdown", TEMPLATE)],
)
def test_a_report_never_overwrites_an_input(push_broken, make_repo, flag, path):
    before = (make_repo() / path).read_bytes()
    result, root = push_broken({}, flag, path)
    assert_rejected(result, root, f"{flag} {path}: is a file this run is built from")
    assert (root / path).read_bytes() == before


@pytest.mark.parametrize(
    ("args", "flag"),
    [(["--local-url", "http://127.0.0.1:9"], "--local-url"), (["--env", "current"], "--env"),
     (["--python", "3.11"], "--python"), (["--run-build-commands"], "--run-build-commands")],
)
def test_local_target_flags_with_the_replicate_target(push_broken, args, flag):
    result, root = push_broken({}, "--target", "replicate", *args)
    assert_rejected(result, root, f"{flag}: only for --target local")


def test_no_command_is_an_error_line_after_the_help(cli):
    result = cli()
    assert result.code == 2 and result.out.startswith("usage: cogfleet")
    assert result.err == "error: no command given (the commands are listed above)\n"


def test_a_huge_unknown_variant_name_is_shown_clipped(make_repo, cli):
    root = make_repo()
    result = cli("push", "a" * 100_000, cwd=root)
    assert result.code == 2
    assert result.err == f"error: unknown variant '{'a' * 57}...'; valid: alpha, beta\n"
