"""The text settings of a variant in ``variants.yaml``: ``envsubst:`` (shell variable
names to one-line values) and ``replace:`` (literal text to its replacement), checked
as they are read so an error names the variant and the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cogfleet._errors import ConfigError

__all__ = ["SHELL_NAME", "envsubst_values", "replace_values"]

#: A shell variable's name (``envsubst:`` keys).
SHELL_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ENV_NAME_RE = re.compile(rf"^{SHELL_NAME}$")


def envsubst_values(rel: Path, name: str, values: Any) -> dict[str, str]:
    """A variant's ``envsubst:`` mapping: shell variable names to one-line text."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(rel, f"variant {name!r}: envsubst must be a mapping of NAME: value")
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
            raise ConfigError(rel, f"variant {name!r}: envsubst: {key!r} is not a shell "
                              "variable name")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        elif value is None:
            text = ""
        else:
            raise ConfigError(rel, f"variant {name!r}: envsubst: {key}: expected text, got "
                              f"{type(value).__name__}")
        if "\n" in text or "\r" in text:
            raise ConfigError(rel, f"variant {name!r}: envsubst: {key}: one line of text only")
        out[key] = text
    return out


def replace_values(rel: Path, name: str, values: Any) -> dict[str, str]:
    """A variant's ``replace:`` mapping: literal text to the text that replaces it."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(rel, f"variant {name!r}: replace must be a mapping of text: value")
    out: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(rel, f"variant {name!r}: replace: {key!r} is not text to "
                              "replace")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(rel, f"variant {name!r}: replace: {key}: expected text, got "
                              f"{type(value).__name__}")
        out[key] = value
    return out
