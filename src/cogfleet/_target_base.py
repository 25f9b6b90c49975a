"""What every target is: the official client on a Replicate-compatible API, plus pushing.

The concrete targets (the local server, api.replicate.com) live in
:mod:`cogfleet._target`; pipeline steps and the canary only need this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from replicate.exceptions import ReplicateError
from replicate.version import Versions

from cogfleet._errors import RemoteError
from cogfleet.runtime import RuntimeOptions

if TYPE_CHECKING:  # annotations only; the client stack is imported by whoever makes one
    from replicate.client import Client

    from cogfleet._http import ResilientTransport


def split_model(model: str) -> tuple[str, str]:
    owner, _, name = model.partition("/")
    return owner, name


@dataclass
class PushFlags:
    """``cog push`` flags that come from config or the command line, and how the
    local target runs the version (its Cog version and environment)."""

    dockerfile: str | None = None
    use_cog_base_image: bool = True
    fast: bool = False  # fast_push: cog push --x-fast (a cog CLI up to 0.16 has it)
    separate_weights: bool = False
    secrets: list[str] = field(default_factory=list)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)


class Target(abc.ABC):
    """Base of both targets; holds the official client."""

    name = "?"
    url = "?"  # the API's base URL, for messages
    token_source = "the API token"  # where the token comes from, for messages

    def __init__(self, client: Client, transport: ResilientTransport) -> None:
        self.client = client
        self.transport = transport
        self.create_models = False
        self._runtime_notes: dict[str, list[str]] = {}

    def runtime_summary(self, version_id: str) -> str | None:
        """How the pushed version runs (Cog version, environment, notes), when known."""
        notes = self._runtime_notes.get(version_id)
        return "; ".join(notes) if notes else None

    # -- models ------------------------------------------------------------------------

    async def get_model(self, model: str) -> Any | None:
        owner, name = split_model(model)
        try:
            return await self.client.models.async_get(owner, name)
        except ReplicateError as exc:
            if exc.status == 404:
                return None
            raise RemoteError(
                f"{model}: {exc.status} {exc.detail or exc}", status=exc.status
            ) from None

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
            raise RemoteError(
                f"cannot create {model}: {exc.status} {exc.detail or exc}", status=exc.status
            ) from None
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
                f"{model}: version {version_id[:12]}: {exc.status} {exc.detail or exc}",
                status=exc.status,
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
