"""Where versions are pushed and predictions run: the local server or Replicate.

``local`` pushes a build folder to a cogfleet server (embedded, or ``--local-url``);
``replicate`` pushes with ``cog push r8.im/<owner>/<name>`` and reads the version id
from cog's output, then confirms it through the API.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError
from replicate.version import Versions

from cogfleet._errors import CheckFailed, RemoteError, UsageError
from cogfleet._http import ResilientTransport
from cogfleet._pipeline import StepOutcome, passed

if TYPE_CHECKING:
    from cogfleet._pipeline import PushContext

_DIGEST_PATTERNS = (
    re.compile(r"^\S+: digest: sha256:([0-9a-f]{64}) size:", re.M),
    re.compile(r"^\s+(?:├─ |└─ )?image\s+\S+@sha256:([0-9a-f]{64})\s*$", re.M),
    re.compile(r"New Version: ([0-9a-f]{64})"),
)


def parse_cog_push_version(output: str) -> str | None:
    """The version id in ``cog push`` output, trying cog's formats in order."""
    for pattern in _DIGEST_PATTERNS:
        match = pattern.search(output)
        if match:
            return match.group(1)
    return None


def split_model(model: str) -> tuple[str, str]:
    owner, _, name = model.partition("/")
    return owner, name


@dataclass
class PushFlags:
    """``cog push`` flags that come from config or the command line."""

    dockerfile: str | None = None
    use_cog_base_image: bool = True
    separate_weights: bool = False
    secrets: list[str] = field(default_factory=list)


class Target(abc.ABC):
    """Base of both targets; holds the official client."""

    name = "?"

    def __init__(self, client: Client, transport: ResilientTransport) -> None:
        self.client = client
        self.transport = transport
        self.create_models = False

    # -- models ------------------------------------------------------------------------

    async def get_model(self, model: str) -> Any | None:
        owner, name = split_model(model)
        try:
            return await self.client.models.async_get(owner, name)
        except ReplicateError as exc:
            if exc.status == 404:
                return None
            raise RemoteError(f"{model}: {exc.status} {exc.detail or exc}") from None

    async def ensure_model(
        self, model: str, *, hardware: str, visibility: Literal["public", "private"]
    ) -> bool:
        """Create ``model`` when missing; True if it was created."""
        if await self.get_model(model) is not None:
            return False
        owner, name = split_model(model)
        try:
            await self.client.models.async_create(
                owner=owner, name=name, visibility=visibility, hardware=hardware
            )
        except ReplicateError as exc:
            raise RemoteError(f"cannot create {model}: {exc.status} {exc.detail or exc}") from None
        return True

    async def latest_version(self, model: str) -> dict[str, Any] | None:
        """The newest version of ``model`` (``None`` when it has none), in one request.

        The model object carries its latest version, schema included.
        """
        found = await self.get_model(model)
        if found is None:
            raise RemoteError(f"{model}: 404 model not found")
        return live_version(found)

    async def get_version(self, model: str, version_id: str) -> dict[str, Any]:
        """One version of ``model`` (a single request: the model is not fetched first)."""
        try:
            version = await Versions(self.client, split_model(model)).async_get(version_id)
        except ReplicateError as exc:
            raise RemoteError(
                f"{model}: version {version_id[:12]}: {exc.status} {exc.detail or exc}"
            ) from None
        return _version_dict(version)

    async def version_ids(self, model: str) -> list[str]:
        page = await Versions(self.client, split_model(model)).async_list()
        return [v.id for v in page]

    # -- pushing -----------------------------------------------------------------------

    @abc.abstractmethod
    async def push(self, build_dir: Path, model: str, flags: PushFlags) -> dict[str, Any]:
        """Push ``build_dir`` as a new version of ``model``; return the version object."""

    @abc.abstractmethod
    async def promote(
        self, build_dir: Path, version_id: str, model: str, flags: PushFlags
    ) -> dict[str, Any]:
        """Make the tested ``version_id`` (built from ``build_dir``) a version of ``model``.

        Returns the version object on ``model`` (its schema included).
        """

    async def push_creating(
        self, build_dir: Path, model: str, flags: PushFlags, *, hardware: str,
        may_create: Callable[[], Awaitable[None]],
    ) -> tuple[dict[str, Any], bool]:
        """:meth:`push`, creating the (private) ``model`` first when it is missing.

        ``may_create`` is awaited before a model is created and raises when it must
        not be. Returns the version and whether the model was created.
        """
        created = False
        if await self.get_model(model) is None:
            await may_create()
            created = await self.ensure_model(model, hardware=hardware, visibility="private")
        return await self.push(build_dir, model, flags), created

    def close(self) -> None:
        self.client._client.close()  # noqa: SLF001 - the client owns no public close


def _version_dict(version: Any) -> dict[str, Any]:
    data = version.dict() if hasattr(version, "dict") else dict(vars(version))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def live_version(model: Any) -> dict[str, Any] | None:
    """The latest version a model object carries (``None`` when it has none)."""
    latest = getattr(model, "latest_version", None)
    return _version_dict(latest) if latest is not None else None


def make_client(
    base_url: str | None, token: str | None
) -> tuple[Client, ResilientTransport]:
    transport = ResilientTransport()
    client = Client(
        api_token=token,
        base_url=base_url,
        transport=transport,
        timeout=httpx.Timeout(10.0, read=75.0, write=60.0, connect=10.0, pool=30.0),
    )
    return client, transport


class LocalTarget(Target):
    """The cogfleet local server (embedded or standalone)."""

    name = "local"

    def __init__(self, base_url: str, token: str, *, embedded: bool) -> None:
        client, transport = make_client(base_url, token)
        super().__init__(client, transport)
        self.base_url = base_url
        self.token = token
        self.embedded = embedded
        self.create_models = embedded

    async def push(self, build_dir: Path, model: str, flags: PushFlags) -> dict[str, Any]:
        """Upload the build folder; the version id is its content hash.

        The answer is the version object itself (schema included): one request.
        """
        from cogfleet.server._push import push_build

        owner, name = split_model(model)
        # the official client's http stack (with retries) carries the upload
        return await asyncio.to_thread(push_build, self.client, owner, name, build_dir)

    async def promote(
        self, build_dir: Path, version_id: str, model: str, flags: PushFlags
    ) -> dict[str, Any]:
        """Copy the tested version itself (same content, same id) onto ``model``."""
        from cogfleet.server._push import promote_version

        owner, name = split_model(model)
        return await asyncio.to_thread(promote_version, self.client, owner, name, version_id)

    async def push_creating(
        self, build_dir: Path, model: str, flags: PushFlags, *, hardware: str,
        may_create: Callable[[], Awaitable[None]],
    ) -> tuple[dict[str, Any], bool]:
        """Push first; only a push to a missing model (404) creates it and pushes again.

        The model exists on every push but the first, so the usual cost is the one
        upload request, with no look-up before it.
        """
        try:
            return await self.push(build_dir, model, flags), False
        except RemoteError as exc:
            if exc.status != 404:
                raise
        await may_create()
        created = await self.ensure_model(model, hardware=hardware, visibility="private")
        return await self.push(build_dir, model, flags), created


class ReplicateTarget(Target):
    """api.replicate.com (or ``REPLICATE_BASE_URL``), pushing with the ``cog`` CLI."""

    name = "replicate"

    def __init__(self) -> None:
        token = os.environ.get("REPLICATE_API_TOKEN")
        if not token:
            raise UsageError("--target replicate needs REPLICATE_API_TOKEN in the environment")
        client, transport = make_client(os.environ.get("REPLICATE_BASE_URL"), token)
        super().__init__(client, transport)
        self.registry = os.environ.get("COG_REGISTRY_HOST", "r8.im")

    def _cog(self) -> str:
        cog = shutil.which("cog")
        if cog is None:
            raise UsageError("--target replicate needs the `cog` CLI on PATH")
        return cog

    async def push(self, build_dir: Path, model: str, flags: PushFlags) -> dict[str, Any]:
        image = f"{self.registry}/{model}"
        args = [self._cog(), "push", image]
        if flags.dockerfile:
            args += ["--dockerfile", flags.dockerfile]
        elif not flags.use_cog_base_image:
            args += ["--use-cog-base-image=false"]
        if flags.separate_weights:
            args.append("--separate-weights")
        for secret in flags.secrets:
            args += ["--secret", secret]
        env = {**os.environ, "NO_COLOR": "1"}
        # In its own session: a Ctrl-C in the terminal reaches cogfleet, which decides
        # (a promotion is never cut halfway; a test push is stopped below).
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=build_dir, env=env, start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out_bytes, _ = await proc.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await asyncio.shield(proc.wait())
            raise
        output = out_bytes.decode("utf-8", "replace")
        if proc.returncode != 0:
            tail = " | ".join(output.strip().splitlines()[-3:])
            raise CheckFailed(f"cog push {image} failed (exit {proc.returncode}): {tail}")
        version_id = parse_cog_push_version(output)
        if version_id is None:
            raise RemoteError(f"cog push {image}: no version id in cog's output")
        return await self.get_version(model, version_id)  # confirmed through the API

    async def promote(
        self, build_dir: Path, version_id: str, model: str, flags: PushFlags
    ) -> dict[str, Any]:
        """Push the same build folder to ``model``; the schema must equal the tested one.

        r8.im creates a version only through a registry push to the model's own
        repository, so the tested image is pushed again from the same build folder.
        Docker's layer cache makes that build a no-op and the registry already holds
        every layer, so no model code is rebuilt or re-uploaded.
        """
        return await self.push(build_dir, model, flags)


@contextlib.contextmanager
def open_target(
    name: str, *, repo_root: Path | None, local_url: str | None, token: str | None = None
) -> Iterator[Target]:
    """Open the target for the length of a command (starting the embedded server if needed)."""
    if name not in ("local", "replicate"):
        raise UsageError(f"--target must be local or replicate, got {name!r}")
    with contextlib.ExitStack() as stack:
        if name == "replicate":
            target: Target = ReplicateTarget()
        elif local_url:
            local_token = token or os.environ.get("COGFLEET_LOCAL_TOKEN") or "cogfleet-local"
            target = LocalTarget(local_url.rstrip("/"), local_token, embedded=False)
        else:
            from cogfleet.server._embedded import LocalServer

            state = (repo_root or Path.cwd()) / ".cogfleet" / "local"
            server = stack.enter_context(LocalServer(state_dir=state))
            target = LocalTarget(server.base_url, server.token, embedded=True)
        stack.enter_context(contextlib.closing(target))
        yield target


# --- the two core steps ----------------------------------------------------------------


async def lint_build(ctx: PushContext) -> StepOutcome:
    """Ruff and lint plugins on the build folder (cog.yaml and config were validated)."""
    if ctx.variant is None:
        from cogfleet._cogyaml import validate_cog_yaml

        validate_cog_yaml(ctx.build_dir / "cog.yaml", ctx.build_dir)
        from cogfleet._ruff import ruff_problems

        problems = await asyncio.to_thread(ruff_problems, ctx.build_dir, "")
    else:
        problems = await asyncio.to_thread(ctx.plugins.lint, ctx.variant, ctx.build_dir)
    if problems:
        raise CheckFailed("; ".join(problems[:10]))
    return passed("ruff, cog.yaml and config are clean")


async def push_test(ctx: PushContext) -> StepOutcome:
    """Push the build to the test model (created if missing); look up the live model meanwhile.

    Two requests run at once: the upload of the build, and the model's look-up, whose
    answer also carries the live version to compare with. Only when the test model
    does not exist yet does the push wait for the look-up (no test model is created
    for a model that does not exist) and create it.
    """
    target = ctx.target
    notes: list[str] = []
    lookup = asyncio.ensure_future(target.get_model(ctx.model))
    known: list[Any] = []

    async def live_model() -> Any:
        if known:
            return known[0]
        found = await asyncio.shield(lookup)
        if found is None:
            if not target.create_models:
                raise CheckFailed(
                    f"model {ctx.model} does not exist on {target.name}; create it first"
                )
            # the embedded server starts empty: its models are made on first use
            await target.ensure_model(
                ctx.model, hardware=ctx.config.test_hardware, visibility="public"
            )
            notes.append(f"created {ctx.model} on the embedded local server")
            found = await target.get_model(ctx.model)
        known.append(found)
        return found

    try:
        version, created = await target.push_creating(
            ctx.build_dir, ctx.test_model, push_flags(ctx),
            hardware=ctx.config.test_hardware, may_create=live_model,
        )
        model = await live_model()
    finally:
        if not lookup.done():
            lookup.cancel()  # the push failed first: its error is the one to report
        elif not lookup.cancelled():
            lookup.exception()  # retrieved (raised above, or moot after the push failed)
    if created:
        notes.append(f"created private {ctx.test_model} ({ctx.config.test_hardware})")
    ctx.test_version = version
    ctx.result.test_version = version["id"]
    ctx.live_version = live_version(model)
    ctx.result.live_version = ctx.live_version["id"] if ctx.live_version else None
    notes.append(f"pushed {ctx.test_model}:{version['id'][:12]}")
    return passed("; ".join(notes))


def push_flags(ctx: PushContext) -> PushFlags:
    return PushFlags(
        dockerfile=ctx.config.dockerfile,
        use_cog_base_image=ctx.config.use_cog_base_image,
        separate_weights=ctx.options.separate_weights,
        secrets=list(ctx.options.secrets),
    )
