"""``cogfleet report REPORT.json --html PATH``: draw a JSON report (``--report-json``) again."""

from __future__ import annotations

import argparse
from pathlib import Path

from cogfleet._errors import ConfigError, ExitCode
from cogfleet.cli._common import Command, out


def cmd_report(ns: argparse.Namespace) -> int:
    """Write the self-contained HTML page of a JSON report."""
    import json

    from cogfleet._files import write_atomic
    from cogfleet._html import load_reports, render_html

    path = Path(ns.report)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(path, f"cannot read the report: {reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    try:
        page = render_html(load_reports(data))
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None
    write_atomic(Path(ns.html), page.encode("utf-8"))
    out(f"wrote {ns.html}")
    return ExitCode.OK


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("report", metavar="REPORT.json", help="a report written by --report-json")
    p.add_argument("--html", metavar="PATH", required=True, help="write the HTML page here")


COMMANDS = [
    Command(
        "report", "render a JSON report as HTML", cmd_report, _report_arguments,
        description="Draw the self-contained HTML page of a --report-json file again.",
    ),
]
