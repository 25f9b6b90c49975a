"""Which Cog version a variant is pinned to, and where that pin was written.

Precedence, first match wins:

1. ``--cog-version`` on the command line (``safe-push`` in a single Cog folder);
2. ``cog_version:`` of the variant in ``variants.yaml`` (read by :mod:`cogfleet._repo`);
3. ``[tool.cogfleet] cog-version`` in the repository's ``pyproject.toml``
   (:mod:`cogfleet._settings`);
4. the Cog SDK installed next to cogfleet.

An unknown version is a :class:`~cogfleet.ConfigError` (exit 2) naming the pin's
file and, when known, its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cogfleet._errors import ConfigError, UsageError
from cogfleet.runtime._versions import installed_version, is_known, normalize, unknown_message


@dataclass(frozen=True)
class CogPin:
    """A resolved Cog version and where it came from (for messages and reports)."""

    version: str
    source: str
    """``pyproject.toml``, ``models/<family>/variants.yaml``, ``--cog-version`` or
    ``installed``."""
    line: int | None = None

    def describe(self) -> str:
        """``0.15.8 (pyproject.toml:12)``."""
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{self.version} ({where})"


def installed_pin() -> CogPin:
    """The default pin: the Cog SDK cogfleet is installed with."""
    return CogPin(installed_version(), "installed")


def check_version(value: object, source: str | Path, line: int | None, what: str) -> str:
    """``value`` normalised when it is a known Cog version; else a ConfigError there."""
    if isinstance(value, str) and is_known(normalize(value)):
        return normalize(value)
    raise ConfigError(source, f"{what}: {unknown_message(value)}", line=line)


def cli_pin(value: str) -> CogPin:
    """``--cog-version VALUE`` (a usage error when unknown)."""
    if not is_known(normalize(value)):
        raise UsageError(f"--cog-version: {unknown_message(value)}")
    return CogPin(normalize(value), "--cog-version")
