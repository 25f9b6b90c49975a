"""Built-in promote and release steps: promote the tested version, then the deployment."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from replicate.exceptions import ReplicateError

from cogfleet import hookimpl
from cogfleet._errors import CheckFailed
from cogfleet._steps import PushContext, Step, StepOutcome, passed, push_flags, skipped
from cogfleet._target_base import split_model

# cog-safe-push's scaling defaults for a new deployment
CPU_SCALING = (1, 20)
GPU_SCALING = (0, 2)


async def promote(ctx: PushContext) -> StepOutcome:
    """Make the tested build a version of the model; its schema must equal the tested one."""
    if ctx.options.no_push:
        return skipped("--no-push: the model is not touched")
    assert ctx.test_version is not None
    tested = ctx.test_version["id"]
    # the answer is the promoted version itself: its schema needs no second request
    promoted = await ctx.target.promote(ctx.build_dir, tested, ctx.model, push_flags(ctx))
    version_id = promoted["id"]
    if promoted["openapi_schema"] != ctx.test_schema:
        raise CheckFailed(
            f"{ctx.model}:{version_id[:12]} has a different schema from the tested "
            f"{ctx.test_model}:{tested[:12]}"
        )
    ctx.promoted_version = version_id
    ctx.result.version = version_id
    ctx.result.pushed = True
    same = " (the tested version itself)" if version_id == tested else ""
    return passed(f"promoted {ctx.model}:{version_id[:12]}{same}")


async def _find_deployment(ctx: PushContext) -> tuple[str, str, bool]:
    """``(owner, name, exists)`` of the configured deployment (two look-ups)."""
    settings = ctx.config.deployment
    assert settings is not None
    client = ctx.target.client
    name = settings.name or split_model(ctx.model)[1]
    # deployments are created under the token's account; that is the default owner
    owner = settings.owner or (await client.accounts.async_current()).username
    try:
        await client.deployments.async_get(f"{owner}/{name}")
    except ReplicateError as exc:
        if exc.status != 404:
            raise
        return owner, name, False
    return owner, name, True


def _prefetch_deployment(ctx: PushContext) -> Awaitable[tuple[str, str, bool]] | None:
    """Look the deployment up while the checks run, when the run may get to it."""
    if ctx.config.deployment is None or ctx.options.no_push:
        return None
    return _find_deployment(ctx)


async def deployment(ctx: PushContext) -> StepOutcome:
    """Create or update the configured deployment to serve the promoted version."""
    settings = ctx.config.deployment
    if settings is None:
        return skipped("no deployment section")
    if ctx.options.no_push or ctx.promoted_version is None:
        return skipped("nothing was promoted")
    client = ctx.target.client
    hardware = settings.hardware or "cpu"
    low, high = CPU_SCALING if hardware == "cpu" else GPU_SCALING
    min_instances = settings.min_instances if settings.min_instances is not None else low
    max_instances = settings.max_instances if settings.max_instances is not None else high
    where = f"deployment {settings.owner or '<account>'}/{settings.name or ctx.model}"
    try:
        lookup = ctx.prefetched.get("deployment")
        owner, name, exists = await (lookup if lookup is not None else _find_deployment(ctx))
        where = f"deployment {owner}/{name}"
        if exists:
            await client.deployments.async_update(
                deployment_owner=owner, deployment_name=name, version=ctx.promoted_version,
                hardware=hardware, min_instances=min_instances, max_instances=max_instances,
            )
            verb = "updated"
        else:
            await client.deployments.async_create(
                name=name, model=ctx.model, version=ctx.promoted_version, hardware=hardware,
                min_instances=min_instances, max_instances=max_instances,
            )
            verb = "created"
    except ReplicateError as exc:
        raise CheckFailed(f"{where}: {exc.status} {exc.detail or exc}") from None
    return passed(
        f"{verb} {where} -> {ctx.promoted_version[:12]} "
        f"({hardware}, {min_instances}-{max_instances} instances)"
    )


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="promote", phase="promote", run=promote))
    register(Step(name="deployment", phase="release", run=deployment, order=10,
                  prefetch=_prefetch_deployment))
