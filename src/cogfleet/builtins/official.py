"""Built-in release step: the official-model second pass.

With ``official_model`` in the config and ``--push-official-model``, the tested build
is pushed to the official model too. A proxy model that calls another API gets its
key through ``COGFLEET_OFFICIAL_MODEL_API_KEY``: it is written to a file in the
build folder only for the length of the push (mode 600, passed to ``cog push`` as
``--secret id=api_key,src=...``) and removed in a ``finally``, so it is never left in
the build folder, printed, or reported.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from cogfleet import hookimpl
from cogfleet._errors import CheckFailed
from cogfleet._pipeline import PushContext, Step, StepOutcome, passed, skipped
from cogfleet._target import push_flags

KEY_ENV = "COGFLEET_OFFICIAL_MODEL_API_KEY"
KEY_FILE = ".cogfleet-official-api-key"


async def official_model(ctx: PushContext) -> StepOutcome:
    if not ctx.options.push_official_model:
        return skipped("--push-official-model not given")
    if not ctx.config.official_model:
        raise CheckFailed("--push-official-model needs official_model in the config")
    if ctx.options.no_push or ctx.promoted_version is None:
        return skipped("nothing was promoted")
    assert ctx.test_version is not None
    official = ctx.config.official_model
    await ctx.target.ensure_model(official, hardware=ctx.config.test_hardware, visibility="public")
    flags = push_flags(ctx)
    key = os.environ.get(KEY_ENV)
    key_path = ctx.build_dir / KEY_FILE
    try:
        if key:
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key)
            flags = replace(flags, secrets=[*flags.secrets, f"id=api_key,src={KEY_FILE}"])
        version_id = await ctx.target.promote(
            ctx.build_dir, ctx.test_version["id"], official, flags
        )
    finally:
        key_path.unlink(missing_ok=True)
    return passed(f"pushed {official}:{version_id[:12]}")


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="official-model", phase="release", run=official_model, order=20))
