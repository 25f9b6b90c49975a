"""Built-in promote and release steps: promote the tested version, then the deployment."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from replicate.exceptions import ReplicateError

from cogfleet import hookimpl
from cogfleet._errors import CheckFailed, RemoteError
from cogfleet._steps import PushContext, Step, StepOutcome, passed, push_flags, skipped

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


async def _find_deployment(ctx: PushContext) -> tuple[str, str, dict[str, Any] | None]:
    """``(owner, name, configuration)`` of the configured deployment: the configuration
    of its current release, or ``None`` when there is no such deployment."""
    settings = ctx.config.deployment
    assert settings is not None and settings.name is not None
    client = ctx.target.client
    # deployments are created under the token's account; that is the default owner
    owner = settings.owner or (await client.accounts.async_current()).username
    try:
        found = await client.deployments.async_get(f"{owner}/{settings.name}")
    except ReplicateError as exc:
        if exc.status != 404:
            raise
        return owner, settings.name, None
    release = found.current_release
    current = release.configuration if release is not None else None
    return owner, settings.name, {
        "hardware": getattr(current, "hardware", None),
        "min_instances": getattr(current, "min_instances", None),
        "max_instances": getattr(current, "max_instances", None),
    }


def _prefetch_deployment(
    ctx: PushContext,
) -> Awaitable[tuple[str, str, dict[str, Any] | None]] | None:
    """Look the deployment up while the checks run, when the run may get to it."""
    settings = ctx.config.deployment
    if settings is None or settings.name is None or ctx.options.no_push:
        return None
    return _find_deployment(ctx)


async def deployment(ctx: PushContext) -> StepOutcome:
    """Point the configured deployment at the promoted version, as cog-safe-push does.

    A new deployment gets the config's ``hardware`` (default ``cpu``) and scaling
    (``min_instances``/``max_instances``, default cpu 1-20, gpu 0-2). An existing one
    gets the new version only, plus the scaling bounds the config sets explicitly: its
    hardware and scaling, perhaps tuned on the web, are left as they are. A section
    without ``name`` deploys nothing (cog-safe-push ignores it too). A look-up, creation
    or update the target refuses (401, 403) is its error, not the model's (the run ends
    with exit 2, saying the model was promoted); any other API error fails the step.
    """
    settings = ctx.config.deployment
    if settings is None:
        return skipped("no deployment section")
    if settings.name is None:
        return skipped("the deployment section has no name: nothing is deployed")
    if ctx.options.no_push or ctx.promoted_version is None:
        return skipped("nothing was promoted")
    client = ctx.target.client
    where = f"deployment {settings.owner or '<account>'}/{settings.name}"
    try:
        lookup = ctx.prefetched.get("deployment")
        owner, name, current = await (
            lookup if lookup is not None else _find_deployment(ctx)
        )
        where = f"deployment {owner}/{name}"
        if current is not None:
            return await _update(ctx, owner, name, current, where)
        hardware = settings.hardware or "cpu"
        low, high = CPU_SCALING if hardware == "cpu" else GPU_SCALING
        min_instances = settings.min_instances if settings.min_instances is not None else low
        max_instances = settings.max_instances if settings.max_instances is not None else high
        await client.deployments.async_create(
            name=name, model=ctx.model, version=ctx.promoted_version, hardware=hardware,
            min_instances=min_instances, max_instances=max_instances,
        )
    except ReplicateError as exc:
        problem = f"{where}: {exc.status} {exc.detail or exc}"
        if exc.status in (401, 403):  # the target refused the token or the request: exit 2,
            raise RemoteError(problem, status=exc.status) from None  # as everywhere else
        raise CheckFailed(problem) from None
    return passed(
        f"created {where} -> {ctx.promoted_version[:12]} "
        f"({hardware}, {min_instances}-{max_instances} instances)"
    )


async def _update(
    ctx: PushContext, owner: str, name: str, current: dict[str, Any], where: str
) -> StepOutcome:
    settings = ctx.config.deployment
    assert settings is not None and ctx.promoted_version is not None
    changes: dict[str, Any] = {"version": ctx.promoted_version}
    for key in ("min_instances", "max_instances"):
        if getattr(settings, key) is not None:
            changes[key] = getattr(settings, key)
    await ctx.target.client.deployments.async_update(
        deployment_owner=owner, deployment_name=name, **changes
    )
    low = changes.get("min_instances", current["min_instances"])
    high = changes.get("max_instances", current["max_instances"])
    note = ""
    if settings.hardware is not None and settings.hardware != current["hardware"]:
        note = (f"; it keeps its hardware: the config's {settings.hardware} applies only "
                "when the deployment is created")
    return passed(
        f"updated {where} -> {ctx.promoted_version[:12]} "
        f"({current['hardware']}, {low}-{high} instances){note}"
    )


@hookimpl
def cogfleet_register_steps(register: Any) -> None:
    register(Step(name="promote", phase="promote", run=promote))
    register(Step(name="deployment", phase="release", run=deployment, order=10,
                  prefetch=_prefetch_deployment))
