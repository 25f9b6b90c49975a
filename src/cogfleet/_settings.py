"""Repo-wide settings: the ``[tool.cogfleet]`` table of the monorepo's ``pyproject.toml``.

::

    [tool.cogfleet]
    configs-dir = "safe-push-configs"   # where <variant>.yaml configs live
    cog-version = "0.15.8"              # the Cog the repo builds with

Every key is optional; a missing file or table means the defaults.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cogfleet._errors import ConfigError
from cogfleet.runtime import CogPin, check_version

PYPROJECT = "pyproject.toml"
DEFAULT_CONFIGS_DIR = "cog-safe-push-configs"
KNOWN_KEYS = frozenset({"configs-dir", "cog-version"})


@dataclass(frozen=True)
class Settings:
    """``[tool.cogfleet]``, validated; ``table`` keeps every key as written."""

    configs_dir: str = DEFAULT_CONFIGS_DIR
    cog_pin: CogPin | None = None
    """``cog-version``: the Cog every variant builds and runs with unless it says otherwise."""
    table: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def read_table(root: Path) -> dict[str, Any] | None:
    """The raw ``[tool.cogfleet]`` table of ``root/pyproject.toml`` (``None`` if absent)."""
    path = root / PYPROJECT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(PYPROJECT, f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(PYPROJECT, f"invalid TOML: {exc}") from None
    tool = data.get("tool")
    if tool is not None and not isinstance(tool, dict):
        raise ConfigError(PYPROJECT, f"tool must be a table, got {type(tool).__name__}")
    table = tool.get("cogfleet") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(PYPROJECT, "[tool.cogfleet] must be a table")
    return table


def load_settings(root: Path) -> Settings:
    """The settings of the monorepo at ``root``; bad values name the key."""
    table = read_table(root)
    if table is None:
        return Settings()
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            PYPROJECT,
            f"[tool.cogfleet]: unknown key {unknown[0]!r} (known: {', '.join(sorted(KNOWN_KEYS))})",
        )
    configs_dir = table.get("configs-dir", DEFAULT_CONFIGS_DIR)
    if not isinstance(configs_dir, str) or not _is_inner_path(configs_dir):
        raise ConfigError(
            PYPROJECT,
            f"[tool.cogfleet] configs-dir: expected a folder inside the repo, got {configs_dir!r}",
        )
    cog_pin = None
    if "cog-version" in table:
        line = _line_of_key(root / PYPROJECT, "cog-version")
        what = "[tool.cogfleet] cog-version"
        version = check_version(table["cog-version"], PYPROJECT, line, what)
        cog_pin = CogPin(version, PYPROJECT, line)
    return Settings(
        configs_dir=PurePosixPath(configs_dir).as_posix(), cog_pin=cog_pin, table=dict(table)
    )


def _line_of_key(path: Path, key: str) -> int | None:
    """The line of ``key =`` inside ``[tool.cogfleet]`` (best effort, for messages)."""
    in_table = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            in_table = re.fullmatch(r"\[\s*tool\s*\.\s*cogfleet\s*\]", line) is not None
        elif in_table and re.match(rf'["\']?{re.escape(key)}["\']?\s*=', line):
            return number
    return None


def _is_inner_path(text: str) -> bool:
    path = PurePosixPath(text)
    return bool(text.strip()) and not path.is_absolute() and ".." not in path.parts
