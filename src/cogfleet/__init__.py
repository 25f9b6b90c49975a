"""cogfleet: build, test and safely publish monorepos of Cog models to Replicate.

A plugin needs only ``from cogfleet import hookimpl``.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "cogfleet"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations: ``@hookimpl def cogfleet_register_checkers(register): ...``."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (used by :mod:`cogfleet.hookspecs`)."""

from cogfleet._errors import (  # noqa: E402
    CheckFailed,
    CogfleetError,
    ConfigError,
    ExitCode,
    PluginError,
    RemoteError,
    TemplateError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "PROJECT_NAME",
    "CheckFailed",
    "CogfleetError",
    "ConfigError",
    "ExitCode",
    "PluginError",
    "RemoteError",
    "TemplateError",
    "UsageError",
    "__version__",
    "hookimpl",
    "hookspec",
]
