"""Running safe pushes: one pipeline per variant, all at once, one report and exit code.

SIGINT and SIGTERM during a run are turned into an :class:`~cogfleet._steps.Interrupt`:
pipelines that are not promoting are cancelled (with their predictions), pipelines
that are promoting or releasing finish first. The reports are written from what
happened, and one line on stderr says what was canceled and where each model stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cogfleet._config import SafePushConfig
from cogfleet._credentials import redact
from cogfleet._errors import CogfleetError, ExitCode, UsageError
from cogfleet._pipeline import run_pipeline
from cogfleet._plugins import Plugins
from cogfleet._predict import FileCache, Predictions
from cogfleet._repo import Variant
from cogfleet._result import RunResult
from cogfleet._steps import Interrupt, PushContext, PushOptions
from cogfleet._target import open_target
from cogfleet._target_base import Target
from cogfleet.runtime import CogPin, installed_pin


@dataclass
class Job:
    """One safe push to run: a build folder and its config."""

    name: str
    build_dir: Path
    config: SafePushConfig
    variant: Variant | None = None
    cog_pin: CogPin | None = None
    # the config's inputs against the pushed test version's schema, when they could not
    # be checked before the push (see cogfleet._config_inputs.deferred_check)
    check_inputs: Callable[[dict[str, Any]], list[str]] | None = None


@dataclass
class RunSettings:
    target: str = "local"
    local_url: str | None = None
    report_json: str | None = None
    junit_xml: str | None = None
    markdown: str | None = None
    html: str | None = None


@contextlib.contextmanager
def deferred_interrupts(interrupt: Interrupt) -> Iterator[Interrupt]:
    """For the length of the block, SIGINT and SIGTERM request ``interrupt`` instead of
    raising ``KeyboardInterrupt`` wherever the main thread happens to be.

    Outside the main thread signals cannot be caught; the block then runs with the
    interpreter's handlers (and the pipeline still never leaves promotion halfway).
    """
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handle(signum: int, frame: Any) -> None:
        del signum, frame
        interrupt.request()

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield interrupt
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _run_all(
    jobs: list[Job], target: Target, plugins: Plugins, options: PushOptions,
    repo_root: Path | None, contexts: list[PushContext], interrupt: Interrupt,
) -> list[RunResult]:
    steps = plugins.steps()
    for job in jobs:
        pin = job.cog_pin or installed_pin()
        result = RunResult(
            variant=job.name, model=job.config.model, test_model=job.config.effective_test_model,
            target=target.name, cog_version=pin.version,
            environment="isolated" if target.name != "local" else options.environment,
        )
        contexts.append(
            PushContext(
                name=job.name, config=job.config, build_dir=job.build_dir, repo_root=repo_root,
                target=target, plugins=plugins, options=options, result=result,
                predictions=Predictions(
                    target.client, parallel=job.config.parallel, repo_root=repo_root
                ),
                files=FileCache(repo_root, offline=options.offline), variant=job.variant,
                interrupt=interrupt, cog_pin=pin, check_inputs=job.check_inputs,
            )
        )
    tasks = [asyncio.ensure_future(run_pipeline(ctx, steps)) for ctx in contexts]
    loop = asyncio.get_running_loop()

    def cancel_unless_promoting() -> None:
        for ctx, task in zip(contexts, tasks, strict=True):
            if not task.done() and not ctx.critical:
                task.cancel()
            elif ctx.critical:
                sys.stderr.write(
                    f"interrupt: {ctx.name}: waiting for {', '.join(ctx.running) or 'promotion'}"
                    f" to finish (promotion is never stopped halfway)\n"
                )

    def on_request() -> None:  # from the signal handler: hand over to the loop
        loop.call_soon_threadsafe(cancel_unless_promoting)

    interrupt.on_request = on_request
    try:
        # an interrupt that arrived while the target was being opened is seen by each
        # pipeline before its first step
        return list(await asyncio.gather(*tasks))
    finally:
        interrupt.on_request = None


def official_model_notes(jobs: list[Job], requested: bool) -> list[str]:
    """Decide the official-model push of each job before anything is pushed.

    With ``--push-official-model``, a job whose config (or variant) names no
    ``official_model`` is a usage error when it is the only one, and is skipped with a
    note among several. Returns the notes.
    """
    if not requested:
        return []
    missing = [job for job in jobs if not job.config.official_model]
    if missing and len(jobs) == 1:
        job = missing[0]
        where = (
            f"its config or {job.variant.variants_file.name}" if job.variant is not None
            else "cog-safe-push.yaml"
        )
        raise UsageError(
            f"--push-official-model: {job.name} has no official_model; set it in {where}, "
            "or leave the flag out (nothing was pushed)"
        )
    return [
        f"note: {job.name} has no official_model; its official-model push is skipped"
        for job in missing
    ]


def _owners(jobs: list[Job]) -> tuple[list[str], list[str]]:
    """Every owner the jobs' configs name (deployment owner or model owner first), and
    their official models: what the embedded server's token may write to."""
    owners: list[str] = []
    official: list[str] = []
    for job in jobs:
        config = job.config
        models = [config.model, config.effective_test_model, config.official_model]
        if job.variant is not None:
            models += [job.variant.model, job.variant.official_model]
        if config.deployment is not None and config.deployment.owner:
            owners.append(config.deployment.owner)
        owners += [m.split("/", 1)[0] for m in models if m and "/" in m]
        official += [m for m in (config.official_model,) if m]
    return list(dict.fromkeys(owners)), list(dict.fromkeys(official))


def run_jobs(
    jobs: list[Job],
    settings: RunSettings,
    plugins: Plugins,
    options: PushOptions,
    repo_root: Path | None,
) -> int:
    """Run every job concurrently on one target; write reports; return the exit code."""
    for note in official_model_notes(jobs, options.push_official_model):
        sys.stderr.write(note + "\n")
    contexts: list[PushContext] = []
    if settings.report_json or settings.html:  # those reports show outputs: keep them
        options = replace(options, keep_outputs=True)
    interrupt = Interrupt()
    with deferred_interrupts(interrupt):
        owners, official = _owners(jobs)
        with open_target(
            settings.target, repo_root=repo_root, local_url=settings.local_url,
            owners=owners, official=official,
        ) as target:
            results = asyncio.run(
                _run_all(jobs, target, plugins, options, repo_root, contexts, interrupt)
            )
            cancelled = (
                [pid for ctx in contexts for pid in ctx.predictions.cancel_all_sync()]
                if any(r.interrupted for r in results) else []
            )
        try:
            _report(plugins, results, settings)
        except CogfleetError as exc:  # after the run: say what happened on the target too
            report_error: CogfleetError | None = exc
        else:
            report_error = None
    if interrupt.requested:
        sys.stderr.write(interrupt_summary(results, cancelled) + "\n")
    if report_error is not None:
        sys.stderr.write(f"error: {redact(str(report_error))} ({report_failure_note(results)})\n")
    if any(r.interrupted for r in results):
        return ExitCode.INTERRUPTED
    if report_error is not None:
        return ExitCode.USAGE_ERROR
    usage = [error for ctx in contexts for error in ctx.usage_errors]
    if usage:  # bad input (the target's answer, a plugin), not the model: exit 2 naming it
        promoted = [f"{r.model} promoted to {r.version[:12]}" for r in results
                    if r.pushed and r.version]
        note = f" ({'; '.join(promoted)})" if promoted else ""
        sys.stderr.write(f"error: {usage[0]}{note}\n")
        return ExitCode.USAGE_ERROR
    return ExitCode.OK if all(r.result == "passed" for r in results) else ExitCode.CHECKS_FAILED


def report_failure_note(results: list[RunResult]) -> str:
    """What a report failure did not change: each variant's verdict and its model's state."""
    states = []
    for r in results:
        if r.pushed and r.version:
            states.append(f"{r.variant} {r.result}, {r.model} promoted to {r.version[:12]}")
        else:
            states.append(f"{r.variant} {r.result}, {r.model} not promoted")
    return ("the run itself had finished: " + "; ".join(states)
            + "; the other reporters ran")


def interrupt_summary(results: list[RunResult], cancelled: list[str]) -> str:
    """One line: what the interrupt canceled, and what state each model is in."""
    stopped = [r for r in results if r.interrupted and not r.pushed]
    parts = []
    if not any(r.interrupted for r in results):
        parts.append("interrupted after the run had finished: nothing was canceled")
    elif stopped:
        where = sorted({s.name for r in stopped for s in r.steps
                        if s.message == "interrupted while running"})
        during = f" during {', '.join(where)}" if where else " before the push"
        parts.append(f"interrupted{during}: canceled {len(cancelled)} in-flight predictions")
    else:
        parts.append("interrupted during promotion: nothing was canceled")
    for r in results:
        if r.pushed and r.version:
            finished = " (promotion was under way and finished)" if r.interrupted else ""
            state = f"{r.model} promoted to {r.version[:12]}{finished}"
        else:
            tested = (f"; test version {r.test_model}:{r.test_version[:12]}"
                      if r.test_version else "")
            state = f"{r.model} not promoted{tested}"
        parts.append(f"{r.variant}: {state}")
    return "; ".join(parts)


def _report(plugins: Plugins, results: list[RunResult], settings: RunSettings) -> None:
    options: dict[str, Any] = {
        "report_json": settings.report_json,
        "junit_xml": settings.junit_xml,
        "markdown": settings.markdown or os.environ.get("GITHUB_STEP_SUMMARY") or None,
        "html": settings.html,
    }
    plugins.report(results, options)
