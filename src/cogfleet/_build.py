"""``cogfleet build``: build what a push of each variant would run, ahead of the push.

- **local** (default): the version's isolated environment (Python + the cog.yaml's
  requirements + the pinned Cog SDK) in the store the embedded server uses, so the
  push that follows only uploads the build folder.
- **replicate**: the image, with ``cog build -t r8.im/<model>`` of the ``cog`` CLI on
  PATH (the shipped workflows install the pinned release) in the build folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cogfleet._config import SafePushConfig
from cogfleet._errors import CogfleetError, ExitCode, UsageError
from cogfleet.runtime import CogPin, EnvStore, cog_cli_version, read_build_spec

LOCAL_STATE = Path(".cogfleet") / "local"
"""The embedded local server's state, relative to the repository root."""

@dataclass(frozen=True)
class BuildJob:
    """One variant to build: its rendered folder, config and Cog pin."""

    name: str
    build_dir: Path
    config: SafePushConfig
    pin: CogPin


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def build_local(
    jobs: list[BuildJob], state_dir: Path, *, python: str | None, run_build_commands: bool
) -> int:
    """Build each job's environment (at most four at once); exit 1 if any failed."""
    store = EnvStore.for_state(state_dir)

    def one(job: BuildJob) -> tuple[BuildJob, str, list[str], bool]:
        try:
            spec = read_build_spec(job.build_dir, job.pin.version)
            env = store.ensure(
                spec, job.pin.version, python_fallback=python,
                run_build_commands=run_build_commands,
            )  # fmt: skip
        except CogfleetError as exc:
            return job, str(exc), [], False
        how = f"built in {env.seconds:.1f} s" if env.built else "already built"
        line = (
            f"{job.name}: environment {env.key[:12]} (Cog {job.pin.version}, "
            f"Python {env.python_version}, {how})"
        )
        return job, line, list(env.notes), True

    failed = False
    with ThreadPoolExecutor(max_workers=min(4, max(1, len(jobs)))) as pool:
        for job, line, notes, ok in pool.map(one, jobs):
            if ok:
                _write(line)
                for note in notes:
                    _write(f"  note: {note}")
            else:
                failed = True
                sys.stderr.write(f"error: {job.name}: {line}\n")
    return ExitCode.CHECKS_FAILED if failed else ExitCode.OK


def build_images(jobs: list[BuildJob]) -> int:
    """``cog build -t r8.im/<model>`` in each build folder, one after the other.

    Docker builds one image at a time well; cog's own output goes to the terminal.
    """
    cog = shutil.which("cog")
    if cog is None:
        raise UsageError("--target replicate needs the `cog` CLI on PATH")
    cli_version = cog_cli_version(cog)
    registry = os.environ.get("COG_REGISTRY_HOST", "r8.im")
    failed = False
    for job in jobs:
        if cli_version is not None and cli_version != job.pin.version:
            sys.stderr.write(
                f"warning: {job.name}: the cog CLI on PATH is {cli_version}, the pin is "
                f"{job.pin.describe()}; the image follows the CLI\n"
            )
        image = f"{registry}/{job.config.model}"
        args = [cog, "build", "-t", image]
        if job.config.dockerfile:
            args += ["--dockerfile", job.config.dockerfile]
        elif not job.config.use_cog_base_image:
            args.append("--use-cog-base-image=false")
        _write(f"{job.name}: cog build -t {image} (Cog {job.pin.version})")
        code = subprocess.run(args, cwd=job.build_dir, check=False).returncode
        if code != 0:
            failed = True
            sys.stderr.write(f"error: {job.name}: cog build failed (exit {code})\n")
        else:
            _write(f"{job.name}: built {image}")
    return ExitCode.CHECKS_FAILED if failed else ExitCode.OK
