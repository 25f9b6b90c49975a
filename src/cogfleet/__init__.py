"""cogfleet: build, test and safely publish monorepos of Cog models to Replicate.

A plugin needs only ``from cogfleet import hookimpl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cogfleet._errors import (
    CheckFailed,
    CogfleetError,
    ConfigError,
    ExitCode,
    PluginError,
    RemoteError,
    TemplateError,
    UsageError,
)

PROJECT_NAME = "cogfleet"

__version__ = "0.1.0"

if TYPE_CHECKING:
    import pluggy

    hookimpl: pluggy.HookimplMarker
    """Marker for hook implementations: ``@hookimpl def cogfleet_register_checkers(...)``."""

    hookspec: pluggy.HookspecMarker
    """Marker for hook specifications (used by :mod:`cogfleet.hookspecs`)."""

    from cogfleet.hookspecs import LintWarning


def __getattr__(name: str) -> Any:
    # The two markers are made on first use: commands that load no plugin (`--help`,
    # `list`) then never import pluggy. After that they are plain module attributes.
    if name in ("hookimpl", "hookspec"):
        import pluggy

        globals().update(
            hookimpl=pluggy.HookimplMarker(PROJECT_NAME),
            hookspec=pluggy.HookspecMarker(PROJECT_NAME),
        )
        return globals()[name]
    if name == "LintWarning":  # part of the hook contract, which needs the markers
        from cogfleet.hookspecs import LintWarning

        return LintWarning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PROJECT_NAME",
    "CheckFailed",
    "CogfleetError",
    "ConfigError",
    "ExitCode",
    "LintWarning",
    "PluginError",
    "RemoteError",
    "TemplateError",
    "UsageError",
    "__version__",
    "hookimpl",
    "hookspec",
]
