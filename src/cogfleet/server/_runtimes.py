"""Which interpreter and Cog server each version runs under.

A pushed version carries :class:`~cogfleet.runtime.RuntimeOptions` (its Cog
version and environment kind). With ``isolated`` the push builds, or finds, the
version's environment in the state's :class:`~cogfleet.runtime.EnvStore`; a failure
(a requirement that does not resolve, a missing Python) fails the push. Predictions
look the environment up again (cheap: a hash and a stat), so an environment
removed with ``cogfleet serve --prune-envs`` is rebuilt when next needed.
With ``current`` the version runs in cogfleet's own interpreter and installed SDK.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogfleet._errors import CogfleetError, ConfigError
from cogfleet.runtime import (
    EnvInfo,
    EnvStore,
    RuntimeOptions,
    build_notes,
    installed_version,
    read_build_spec,
    server_kind,
    takes_host_flag,
)
from cogfleet.server._runner import Runtime

if TYPE_CHECKING:
    from cogfleet.schema import ModelCodeNeeded


class EnvironmentFailed(CogfleetError):
    """The version's environment cannot be made (the message says why)."""


@dataclass
class Prepared:
    """A version's runtime, ready, and what to tell the pusher about it."""

    runtime: Runtime
    info: dict[str, Any] = field(default_factory=dict)


class Runtimes:
    """Environments for the versions of one server state."""

    def __init__(self, state_dir: Path) -> None:
        self.store = EnvStore.for_state(state_dir)
        self._locks: dict[str, asyncio.Lock] = {}
        self._ready: dict[str, Runtime] = {}

    @staticmethod
    def options_of(version: dict[str, Any]) -> RuntimeOptions:
        """The options a stored version was pushed with (older records: the defaults)."""
        saved = version.get("_runtime") or {}
        cog = saved.get("cog_version") or version.get("cog_version") or installed_version()
        return RuntimeOptions(
            cog_version=cog,
            environment=saved.get("environment", "isolated"),
            python=saved.get("python"),
            run_build_commands=bool(saved.get("run_build_commands")),
        )

    @staticmethod
    def record(options: RuntimeOptions, prepared: Prepared) -> dict[str, Any]:
        """What a version record keeps of how it runs (the internal ``_runtime`` field)."""
        return {
            "cog_version": options.cog_version,
            "environment": options.environment,
            "python": options.python,
            "run_build_commands": options.run_build_commands,
            "environment_id": prepared.info.get("environment_id"),
        }

    async def prepare(self, build_dir: Path, options: RuntimeOptions) -> Prepared:
        """The runtime for a build pushed with ``options``, building its environment."""
        if options.environment == "current":
            return Prepared(Runtime(), _current_info(build_dir, options))
        key = f"{build_dir}:{options.identity()}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                env = await asyncio.to_thread(self._ensure, build_dir, options)
            except CogfleetError as exc:
                raise EnvironmentFailed(str(exc)) from None
        runtime = Runtime(
            python=env.python, server=_served(env.server), isolated=True,
            host_flag=takes_host_flag(env.cog_version),
        )  # fmt: skip
        self._ready[key] = runtime
        info = {
            "environment": "isolated",
            "environment_id": env.key,
            "python": env.python_version,
            "server": runtime.server_name,
            "built": env.built,
            "seconds": round(env.seconds, 3),
            "notes": list(env.notes),
        }
        return Prepared(runtime, info)

    async def sdk_schema(
        self, build_dir: Path, options: RuntimeOptions, prepared: Prepared,
        reason: ModelCodeNeeded,
    ) -> dict[str, Any]:  # fmt: skip
        """The document the version's own SDK writes in its environment (Cog <= 0.16
        ran the model's code for it); ``ConfigError`` at ``reason``'s line if it cannot."""
        from cogfleet.schema import sdk_document

        if options.environment == "current":
            raise ConfigError(
                reason.path,
                f"{reason.message} (Cog {options.cog_version} wrote the schema by running "
                "the model's code, which needs the version's isolated environment, not "
                "--env current)",
                reason.line,
            )
        return await asyncio.to_thread(
            sdk_document, build_dir, prepared.runtime.python, options.cog_version, reason
        )

    async def runtime_for(
        self, version: dict[str, Any], build_dir: Path, *, check: bool = True
    ) -> Runtime:
        """The runtime of a stored version (its environment rebuilt if it was removed).

        ``check=False`` trusts a runtime already prepared without looking at its
        interpreter on disk: for a version whose model server is up, which needs none.
        """
        options = self.options_of(version)
        if options.environment == "current":
            return Runtime()
        key = f"{build_dir}:{options.identity()}"
        ready = self._ready.get(key)
        if ready is not None and (not check or Path(ready.python).exists()):
            return ready
        return (await self.prepare(build_dir, options)).runtime

    def _ensure(self, build_dir: Path, options: RuntimeOptions) -> Any:
        spec = read_build_spec(build_dir, options.cog_version)
        return self.store.ensure(
            spec, options.cog_version, python_fallback=options.python,
            run_build_commands=options.run_build_commands,
        )  # fmt: skip


def _served(kind: str) -> Any:
    if kind not in ("coglet", "legacy"):
        raise EnvironmentFailed(f"no prediction server for Cog SDK kind {kind!r}")
    return kind


def _current_info(build_dir: Path, options: RuntimeOptions) -> dict[str, Any]:
    notes = []
    installed = installed_version()
    if installed != options.cog_version:
        notes.append(
            f"--env current runs cogfleet's interpreter with Cog {installed}, not Cog "
            f"{options.cog_version}'s environment"
        )
    try:
        spec = read_build_spec(build_dir, options.cog_version)
    except CogfleetError:
        spec = None  # cog.yaml problems are reported by the run itself
    if spec is not None:
        if spec.requirements:
            notes.append("cog.yaml's Python packages are not installed (--env current)")
        notes += build_notes(spec, run_build_commands=False)
    python = ".".join(map(str, sys.version_info[:3]))
    kind = server_kind(installed)
    server = "coglet" if kind == "coglet" else "cog.server.http"
    return {"environment": "current", "python": python, "server": server, "notes": notes}


def prune_environments(state_dir: Path, *, everything: bool = False) -> list[EnvInfo]:
    """Remove the environments no version of the state at ``state_dir`` uses (or all).

    Returns what was removed. A removed environment a version still needs is built
    again by its next prediction.
    """
    from cogfleet.server._state import Store

    keep: set[str] = set()
    if not everything and (state_dir / "state.sqlite3").is_file():
        store = Store(state_dir / "state.sqlite3")
        try:
            after: int | None = None
            while True:
                page, positions, more = store.window("versions", limit=500, after=after)
                for version in page:
                    env_id = (version.get("_runtime") or {}).get("environment_id")
                    if env_id:
                        keep.add(str(env_id))
                if not more:
                    break
                after = positions[-1]
        finally:
            store.close()
    return EnvStore.for_state(state_dir).prune(keep)
