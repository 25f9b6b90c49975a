"""A reporter that fails after the run: the output says what happened on the target.

The reports are written once the run is over, when promotion may already have
happened. A report plugin that raises then (or a report that cannot be written)
is exit 2, one last line naming the plugin and the problem and saying each
variant's verdict and where its model stands; every other reporter still runs, so
the JSON report is there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult

RAISING_REPORTER = """\
from cogfleet import hookimpl


@hookimpl
def cogfleet_report(results, options):
    raise RuntimeError("report sink down")
"""


def test_a_raising_report_plugin_after_promotion_says_the_model_was_promoted(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    root = make_repo({"plugins/sink.py": RAISING_REPORTER})
    result = cli("push", "alpha", "--report-json", "report.json", cwd=root)
    assert result.code == 2, (result.out, result.err)
    report = json.loads((root / "report.json").read_text())  # the built-in reporter ran
    assert report["result"] == "passed" and report["pushed"] is True
    version = report["version"]
    assert f"alpha PASSED -> acme/alpha:{version[:12]}" in result.out + result.err
    last = result.err.strip().splitlines()[-1]
    assert last == (
        "error: plugins/sink.py:6: plugin 'sink': cogfleet_report raised RuntimeError: "
        f"report sink down (the run itself had finished: alpha passed, acme/alpha promoted "
        f"to {version[:12]}; the other reporters ran)"
    )
    assert "Traceback" not in result.err


def test_a_raising_report_plugin_after_a_failed_check_says_nothing_was_promoted(
    make_repo: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    root = make_repo({
        "plugins/sink.py": RAISING_REPORTER,
        "cog-safe-push-configs/alpha.yaml": """\
            model: {{ model }}
            predict:
              test_cases:
                - inputs: {prompt: hi}
                  exact_string: "not what it says"
            """,
    })
    result = cli("push", "alpha", "--report-json", "report.json", cwd=root)
    assert result.code == 2, (result.out, result.err)
    report = json.loads((root / "report.json").read_text())
    assert report["result"] == "failed" and report["pushed"] is False
    assert result.err.strip().splitlines()[-1].endswith(
        "(the run itself had finished: alpha failed, acme/alpha not promoted; "
        "the other reporters ran)"
    )
