"""How a pushed version is to be run, as it travels with the push to the local server.

The local server's push extension (``POST /v1/models/{owner}/{name}/versions``)
takes these as query parameters next to the build archive::

    ?cog_version=0.15.8&environment=isolated&python=3.11&run_build_commands=1

Each is optional (defaults: the installed Cog SDK, ``isolated``, no fallback, no
build commands). They are part of the version's identity: the same build folder
pushed under another Cog version or environment is another version, as an image
built by another Cog would have another digest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cogfleet.runtime._versions import installed_version, is_known, normalize, unknown_message

EnvironmentKind = Literal["isolated", "current"]
ENVIRONMENTS: tuple[EnvironmentKind, ...] = ("isolated", "current")
_PYTHON = re.compile(r"^\d+\.\d+(\.\d+)?$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class RuntimeOptions:
    """The Cog version and environment a version runs with."""

    cog_version: str = field(default_factory=installed_version)
    environment: EnvironmentKind = "isolated"
    """``isolated``: an environment built from cog.yaml + the SDK; ``current``:
    cogfleet's own interpreter (fast, but not what Cog would build)."""
    python: str | None = None
    """A Python to fall back to when cog.yaml's ``python_version`` is not installed."""
    run_build_commands: bool = False
    """Run cog.yaml's ``build.run`` commands in the environment's folder."""

    def query(self) -> dict[str, str]:
        """The query parameters that carry these options."""
        params = {"cog_version": self.cog_version, "environment": self.environment}
        if self.python:
            params["python"] = self.python
        if self.run_build_commands:
            params["run_build_commands"] = "1"
        return params

    def identity(self) -> str:
        """What of these options makes a version different (hashed into its id)."""
        if self.environment == "current":
            return f"cog={self.cog_version};env=current"
        run = "1" if self.run_build_commands else "0"
        return f"cog={self.cog_version};env=isolated;python={self.python or ''};run={run}"

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> RuntimeOptions:
        """Parse :meth:`query`'s parameters; ``ValueError`` names the bad one."""
        version = normalize(params.get("cog_version") or installed_version())
        if not is_known(version):
            raise ValueError(f"cog_version: {unknown_message(params.get('cog_version'))}")
        environment = params.get("environment") or "isolated"
        if environment not in ENVIRONMENTS:
            raise ValueError(f"environment: expected isolated or current, got {environment!r}")
        python = params.get("python") or None
        if python is not None and not _PYTHON.match(python):
            raise ValueError(f"python: expected a version like 3.11, got {python!r}")
        run = (params.get("run_build_commands") or "").lower()
        if run not in _TRUE | _FALSE:
            raise ValueError(f"run_build_commands: expected 0 or 1, got {run!r}")
        return cls(
            cog_version=version,
            environment="current" if environment == "current" else "isolated",
            python=python,
            run_build_commands=run in _TRUE,
        )
