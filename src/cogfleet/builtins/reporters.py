"""Built-in reports: the JSON contract, JUnit XML, a Markdown summary and the HTML page."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cogfleet import hookimpl
from cogfleet._errors import UsageError
from cogfleet._files import write_atomic
from cogfleet._result import RunResult


def _write(path: str | Path, text: str) -> None:
    write_atomic(Path(path), text.encode("utf-8"))


def to_json(results: list[RunResult]) -> str:
    """One object per variant for a single variant, else a list of them."""
    return _dump([r.to_json() for r in results])


def _dump(docs: list[dict[str, Any]]) -> str:
    return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2) + "\n"


def to_html(docs: list[dict[str, Any]]) -> str:
    """The self-contained HTML page of JSON reports (see :mod:`cogfleet._html`)."""
    from cogfleet._html import render_html

    return render_html(docs)


def to_junit(results: list[RunResult]) -> str:
    suites = ET.Element("testsuites")
    for result in results:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"cogfleet.{result.variant}",
            tests=str(len(result.steps) + len(result.cases)),
            failures=str(
                sum(s.status == "failed" for s in result.steps)
                + sum(c.status == "failed" for c in result.cases)
            ),
            skipped=str(sum(s.status == "skipped" for s in result.steps)),
            time=f"{sum(s.duration_s for s in result.steps):.3f}",
        )
        for step in result.steps:
            case = ET.SubElement(
                suite, "testcase", classname=f"{result.variant}.steps", name=step.name,
                time=f"{step.duration_s:.3f}",
            )
            if step.status == "failed":
                ET.SubElement(case, "failure", message=step.message[:500]).text = step.message
            elif step.status == "skipped":
                ET.SubElement(case, "skipped", message=step.message[:500])
        for c in result.cases:
            name = f"{c.kind}[{c.index}]" + (f" {c.checker}" if c.checker else "")
            case = ET.SubElement(
                suite, "testcase", classname=f"{result.variant}.{c.kind}", name=name,
                time=f"{c.duration_s:.3f}",
            )
            detail = json.dumps({"inputs": c.inputs, "prediction_id": c.prediction_id})
            if c.status == "failed":
                ET.SubElement(case, "failure", message=c.message[:500]).text = (
                    f"{c.message}\n{detail}"
                )
            else:
                ET.SubElement(case, "system-out").text = detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(results: list[RunResult]) -> str:
    lines = ["# cogfleet safe push", ""]
    for r in results:
        icon = "✅" if r.result == "passed" else "❌"
        lines.append(f"## {icon} `{r.variant}` → `{r.model}` ({r.target})")
        lines.append("")
        promoted = f"version `{r.version}`" if r.version else "not promoted"
        lines.append(f"Test model `{r.test_model}`, test version `{r.test_version}`; {promoted}.")
        lines.append("")
        lines.append("| step | status | time | message |")
        lines.append("|---|---|---|---|")
        for s in r.steps:
            lines.append(
                f"| {s.name} | {s.status} | {s.duration_s:.1f}s | {_cell(s.message[:200])} |"
            )
        failed = [c for c in r.cases if c.status == "failed"]
        lines.append("")
        lines.append(
            f"{len(r.cases) - len(failed)}/{len(r.cases)} cases passed."
        )
        for c in failed:
            lines.append(
                f"- {c.kind}[{c.index}] {c.checker or ''}: {_cell(c.message[:300])} "
                f"(prediction `{c.prediction_id}`, inputs `{_cell(json.dumps(c.inputs))[:300]}`)"
            )
        lines.append("")
    return "\n".join(lines)


@hookimpl
def cogfleet_report(results: list[RunResult], options: dict[str, Any]) -> None:
    wanted = options.get("report_json") or options.get("html")
    docs = [r.to_json() for r in results] if wanted else []
    writes: list[tuple[str, str, Callable[[Path], None]]] = []
    if options.get("report_json"):
        writes.append(("JSON report", options["report_json"],
                       lambda path: _write(path, _dump(docs))))
    if options.get("html"):
        writes.append(("HTML report", options["html"], lambda path: _write(path, to_html(docs))))
    if options.get("junit_xml"):
        writes.append(("JUnit report", options["junit_xml"],
                       lambda path: _write(path, to_junit(results))))
    if options.get("markdown"):
        writes.append(("Markdown summary", options["markdown"],
                       lambda path: _append(path, to_markdown(results))))
    # every report that can be written is; the first that cannot is the error
    failed: list[str] = []
    for what, value, write in writes:
        try:
            write(Path(value))
        except OSError as exc:
            failed.append(f"cannot write the {what} {value}: {exc.strerror or exc}")
    if failed:
        raise UsageError(failed[0])


def _append(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as fh:  # GITHUB_STEP_SUMMARY is appended to
        fh.write(text)
