"""Where versions are pushed and predictions run: the local server or Replicate.

``local`` pushes a build folder to a cogfleet server (embedded, or ``--local-url``);
``replicate`` pushes with ``cog push r8.im/<owner>/<name>`` and reads the version id
from cog's output, then confirms it through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from replicate.client import Client

from cogfleet._credentials import redact
from cogfleet._errors import BadAnswer, CheckFailed, RemoteError, UsageError
from cogfleet._files import ensure_state_dir
from cogfleet._http import ResilientTransport
from cogfleet._target_base import PushFlags, Target, split_model
from cogfleet.runtime import cog_cli_version

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


def has_fast_push(cog_version: str) -> bool:
    """Whether a cog CLI of ``cog_version`` takes ``cog push --x-fast`` (up to 0.16)."""
    match = re.match(r"(\d+)\.(\d+)", cog_version)
    return match is not None and (int(match.group(1)), int(match.group(2))) < (0, 17)


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
        self.url = str(httpx.URL(base_url).copy_with(username=None, password=None))
        self.token = token
        self.embedded = embedded
        self.token_source = "the embedded server's own" if embedded else "$COGFLEET_LOCAL_TOKEN"
        self.create_models = embedded

    async def push(self, build_dir: Path, model: str, flags: PushFlags) -> dict[str, Any]:
        """Upload the build folder; the version id hashes the model and its content.

        The answer is the version object itself (schema included): one request.
        """
        from cogfleet.server import push_build

        owner, name = split_model(model)
        # the official client's http stack (with retries) carries the upload
        version = await asyncio.to_thread(
            push_build, self.client, owner, name, build_dir, options=flags.runtime
        )
        if not isinstance(version, dict) or not isinstance(version.get("id"), str):
            raise BadAnswer(f"push to {model}: the answer is no version (it has no id); is "
                            "this a Replicate API?")
        # how the version runs is the push's own answer, not part of the version
        self._runtime_notes[str(version["id"])] = _describe_runtime(version.pop("cogfleet", {}))
        return version

    async def promote(
        self, build_dir: Path, version_id: str, model: str, flags: PushFlags
    ) -> dict[str, Any]:
        """Add the tested build itself (same content, the model's own version id) to ``model``."""
        from cogfleet.server import promote_version

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


def _describe_runtime(info: dict[str, Any]) -> list[str]:
    """``Cog 0.15.8, isolated environment 3f2a… (Python 3.11.7, cog.server.http)``…"""
    if not info:
        return []
    head = f"Cog {info.get('cog_version')}"
    if info.get("environment") == "current":
        head += f", current environment (cogfleet's Python {info.get('python')})"
    else:
        head += (
            f", isolated environment {str(info.get('environment_id', ''))[:12]} "
            f"(Python {info.get('python')}, {info.get('server')}"
        )
        head += f", built in {info.get('seconds')} s)" if info.get("built") else ")"
    return [head, *map(str, info.get("notes") or [])]


class ReplicateTarget(Target):
    """api.replicate.com (or ``REPLICATE_BASE_URL``), pushing with the ``cog`` CLI."""

    name = "replicate"

    def __init__(self) -> None:
        token = os.environ.get("REPLICATE_API_TOKEN")
        if not token:
            raise UsageError("--target replicate needs REPLICATE_API_TOKEN in the environment")
        base_url = os.environ.get("REPLICATE_BASE_URL")
        client, transport = make_client(base_url, token)
        super().__init__(client, transport)
        self.url = (base_url or "https://api.replicate.com").rstrip("/")
        self.token_source = "$REPLICATE_API_TOKEN"
        self.registry = os.environ.get("COG_REGISTRY_HOST", "r8.im")
        self._cli_version: str | None = None

    def _cog(self) -> str:
        cog = shutil.which("cog")
        if cog is None:
            raise UsageError("--target replicate needs the `cog` CLI on PATH")
        return cog

    async def push(self, build_dir: Path, model: str, flags: PushFlags) -> dict[str, Any]:
        image = f"{self.registry}/{model}"
        args = [self._cog(), "push", image]
        notes: list[str] = []
        if flags.fast:
            cli = await self._cli() or flags.runtime.cog_version
            if has_fast_push(cli):
                args.append("--x-fast")  # as cog-safe-push passes fast_push on
            else:
                notes.append(f"fast_push: the cog CLI {cli} has no fast push (--x-fast went "
                             "with Cog 0.17); pushed as usual")
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
            tail = " | ".join(output.strip().splitlines()[-3:])[-600:] or "no output"
            code = proc.returncode or 0
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            raise CheckFailed(redact(f"cog push {image} failed ({how}): {tail}"))
        version_id = parse_cog_push_version(output)
        if version_id is None:  # cog said it pushed, but not what: no answer cog gives
            raise BadAnswer(f"cog push {image}: exit 0 but no version id in cog's output")
        try:
            version = await self.get_version(model, version_id)  # confirmed through the API
        except RemoteError as exc:
            if exc.status != 404 and f"version {version_id[:12]}: 404" not in str(exc):
                raise
            raise BadAnswer(f"cog push {image}: cog's output names version "
                            f"{version_id[:12]}, which {model} does not have ({exc})") from None
        notes = await self._cli_notes(flags.runtime.cog_version) + notes
        self._runtime_notes[version_id] = notes
        return version

    async def _cli(self) -> str:
        """The version of the cog CLI on PATH (``""`` when it does not say); asked once."""
        if self._cli_version is None:
            self._cli_version = await asyncio.to_thread(cog_cli_version, self._cog()) or ""
        return self._cli_version

    async def _cli_notes(self, pinned: str) -> list[str]:
        """Which cog CLI pushed, and a warning when it is not the pinned one."""
        await self._cli()
        if not self._cli_version:
            return [f"Cog {pinned}"]
        if self._cli_version == pinned:
            return [f"Cog {pinned} (cog CLI)"]
        return [
            f"Cog {pinned}",
            f"warning: pushed with the cog CLI {self._cli_version}, not the pinned {pinned}",
        ]

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
    name: str,
    *,
    repo_root: Path | None,
    local_url: str | None,
    token: str | None = None,
    owners: Sequence[str] = (),
    official: Sequence[str] = (),
) -> Iterator[Target]:
    """Open the target for the length of a command (starting the embedded server if needed).

    ``owners``: the embedded server's token acts as the first and may write under
    all of them (none: any owner); ``official``: models it treats as official.
    """
    if name not in ("local", "replicate"):
        raise UsageError(f"--target must be local or replicate, got {name!r}")
    with contextlib.ExitStack() as stack:
        if name == "replicate":
            target: Target = ReplicateTarget()
        elif local_url:
            local_token = token or os.environ.get("COGFLEET_LOCAL_TOKEN") or "cogfleet-local"
            target = LocalTarget(local_url.rstrip("/"), local_token, embedded=False)
        else:
            from cogfleet.server import LocalServer

            state = ensure_state_dir((repo_root or Path.cwd()) / ".cogfleet") / "local"
            server = stack.enter_context(
                LocalServer(state_dir=state, owners=owners or None, official=official)
            )
            target = LocalTarget(server.base_url, server.token, embedded=True)
        stack.enter_context(contextlib.closing(target))
        yield target
