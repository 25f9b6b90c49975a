"""Built-in live terminal progress (on stderr): each step and each case as it ends."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

from cogfleet import hookimpl
from cogfleet._steps import ProgressEvent

_console = Console(stderr=True, highlight=False, soft_wrap=True)
_STYLE = {"passed": "green", "failed": "bold red", "skipped": "dim"}


@hookimpl
def cogfleet_progress(event: ProgressEvent) -> None:
    result = event.result
    name = f"[bold]{escape(result.variant)}[/bold]"
    if event.kind == "step-done" and event.step is not None:
        step = event.step
        style = _STYLE[step.status]
        _console.print(
            f"{name} [{style}]{step.status:>7}[/{style}] {step.name} "
            f"[dim]{step.duration_s:.1f}s[/dim] {escape(step.message)}",
            markup=True,
        )
    elif event.kind == "case-done" and event.case is not None:
        case = event.case
        done = len(result.cases)
        style = _STYLE[case.status]
        checker = f" {case.checker}" if case.checker else ""
        _console.print(
            f"{name}   [{done}/{max(done, event.planned)}] {case.kind}[{case.index}]{checker} "
            f"[{style}]{case.status}[/{style}] [dim]{case.prediction_id or '-'} "
            f"{case.duration_s:.1f}s[/dim]"
            + (f" {escape(case.message)}" if case.status == "failed" else ""),
            markup=True,
        )
    elif event.kind == "run-done":
        style = _STYLE[result.result]
        verdict = result.result.upper()
        promoted = f" -> {result.model}:{result.version[:12]}" if result.version else ""
        if result.interrupted:
            if result.pushed:
                promoted += " (interrupted during promotion, which finished)"
            else:
                style, verdict = "bold yellow", "INTERRUPTED"
                promoted = f" {result.model} not promoted"
        _console.print(f"{name} [{style}]{verdict}[/{style}]{promoted}", markup=True)
    sys.stderr.flush()
