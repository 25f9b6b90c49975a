"""Built-in release step: the official-model second pass.

With ``official_model`` in the config and ``--push-official-model``, the tested build
is pushed to the official model too. A missing official model is created as
cog-safe-push creates it (private, on CPU); a token that may not read or create it
(403) still pushes, as cog-safe-push does. A proxy model that calls another API gets its
key through ``COGFLEET_OFFICIAL_MODEL_API_KEY``: it is written to a private file
(mode 600, in a fresh folder outside the build folder, so it can never be copied
into the image or uploaded with the build) for the length of the push, given to the
build as ``cog push --secret id=api_key,src=<file>`` (a BuildKit secret mount), and
removed in a ``finally``. It is never printed or reported.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from cogfleet import hookimpl
from cogfleet._errors import RemoteError
from cogfleet._steps import PushContext, Step, StepOutcome, passed, push_flags, skipped

KEY_ENV = "COGFLEET_OFFICIAL_MODEL_API_KEY"


async def official_model(ctx: PushContext) -> StepOutcome:
    if not ctx.options.push_official_model:
        return skipped("--push-official-model not given")
    if not ctx.config.official_model:
        # decided before anything was pushed (see cogfleet._run.official_model_notes): a
        # single variant without one stopped there; among several, this one is skipped
        return skipped("no official_model for this variant (skipped)")
    if ctx.options.no_push or ctx.promoted_version is None:
        return skipped("nothing was promoted")
    assert ctx.test_version is not None
    official = ctx.config.official_model
    note = ""
    try:
        # as cog-safe-push creates a missing official model: private, on CPU
        await ctx.target.ensure_model(official, hardware="cpu", visibility="private")
    except RemoteError as exc:
        if exc.status != 403:
            raise
        # a token that may push to the official model but not read or create it (as
        # cog-safe-push, go on: the push itself says whether it may)
        note = f" (could not get or create it: {exc}; pushed anyway)"
    flags = push_flags(ctx)
    key = os.environ.get(KEY_ENV)
    secret_dir = Path(tempfile.mkdtemp(prefix="cogfleet-secret-"))  # mode 700
    try:
        if key:
            key_path = secret_dir / "api_key"
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key)
            flags = replace(flags, secrets=[*flags.secrets, f"id=api_key,src={key_path}"])
        version = await ctx.target.promote(
            ctx.build_dir, ctx.test_version["id"], official, flags
        )
        version_id = version["id"]
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
    return passed(f"pushed {official}:{version_id[:12]}{note}")


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="official-model", phase="release", run=official_model, order=20))
