"""Running safe pushes: one pipeline per variant, all at once, one report and exit code."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cogfleet._config import SafePushConfig
from cogfleet._errors import ExitCode
from cogfleet._pipeline import PushContext, PushOptions, run_pipeline
from cogfleet._plugins import Plugins
from cogfleet._predict import FileCache, Predictions
from cogfleet._repo import Variant
from cogfleet._result import RunResult
from cogfleet._target import Target, open_target


@dataclass
class Job:
    """One safe push to run: a build folder and its config."""

    name: str
    build_dir: Path
    config: SafePushConfig
    variant: Variant | None = None


@dataclass
class RunSettings:
    target: str = "local"
    local_url: str | None = None
    report_json: str | None = None
    junit_xml: str | None = None
    markdown: str | None = None


async def _run_all(
    jobs: list[Job], target: Target, plugins: Plugins, options: PushOptions,
    repo_root: Path | None, contexts: list[PushContext],
) -> list[RunResult]:
    steps = plugins.steps()
    for job in jobs:
        result = RunResult(
            variant=job.name, model=job.config.model, test_model=job.config.effective_test_model,
            target=target.name,
        )
        contexts.append(
            PushContext(
                name=job.name, config=job.config, build_dir=job.build_dir, repo_root=repo_root,
                target=target, plugins=plugins, options=options, result=result,
                predictions=Predictions(
                    target.client, parallel=job.config.parallel, repo_root=repo_root
                ),
                files=FileCache(repo_root), variant=job.variant,
            )
        )
    return list(await asyncio.gather(*(run_pipeline(ctx, steps) for ctx in contexts)))


def run_jobs(
    jobs: list[Job],
    settings: RunSettings,
    plugins: Plugins,
    options: PushOptions,
    repo_root: Path | None,
) -> int:
    """Run every job concurrently on one target; write reports; return the exit code."""
    contexts: list[PushContext] = []
    with open_target(settings.target, repo_root=repo_root, local_url=settings.local_url) as target:
        try:
            results = asyncio.run(_run_all(jobs, target, plugins, options, repo_root, contexts))
        except KeyboardInterrupt:
            cancelled = [pid for ctx in contexts for pid in ctx.predictions.cancel_all_sync()]
            if cancelled:
                import sys

                sys.stderr.write(f"interrupted: canceled {len(cancelled)} in-flight predictions\n")
            _report(plugins, [c.result for c in contexts], settings, interrupted=True)
            return ExitCode.INTERRUPTED
    _report(plugins, results, settings)
    return ExitCode.OK if all(r.result == "passed" for r in results) else ExitCode.CHECKS_FAILED


def _report(
    plugins: Plugins, results: list[RunResult], settings: RunSettings, *, interrupted: bool = False
) -> None:
    if interrupted:
        for result in results:
            result.result = "failed"
    options: dict[str, Any] = {
        "report_json": settings.report_json,
        "junit_xml": settings.junit_xml,
        "markdown": settings.markdown or os.environ.get("GITHUB_STEP_SUMMARY") or None,
    }
    plugins.report(results, options)
