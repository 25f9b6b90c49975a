"""Every exception cogfleet raises on purpose, and the process exit codes.

::

    CogfleetError                 one-line message; ``str(err)`` is what the user sees
    ├── UsageError                bad command line (exit 2)
    ├── ConfigError               bad input file: YAML, template, config, cog.yaml (exit 2)
    │   ├── TemplateError         Jinja rendering failed (undefined variable, syntax)
    │   └── PluginError           a plugin failed to import or registered a bad hook
    ├── RemoteError               the target (local server or Replicate) answered badly (exit 2)
    │   ├── BadAnswer             an answer no API gives (an HTML page, not a JSON object)
    │   └── NetworkError          a URL could not be fetched: names the URL and the reason
    └── CheckFailed               a check failed; the pipeline stops (exit 1)

A ``ConfigError`` carries the file (and line when known) so the message reads
``<file>:<line>: <what>``.
"""

from __future__ import annotations

import enum
from pathlib import Path


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``cogfleet`` command."""

    OK = 0
    CHECKS_FAILED = 1
    USAGE_ERROR = 2
    INTERRUPTED = 130


class CogfleetError(Exception):
    """Base of every error cogfleet reports as a one-line message."""

    exit_code: ExitCode = ExitCode.USAGE_ERROR


class UsageError(CogfleetError):
    """The command line asks for something impossible (unknown variant, bad flag value)."""


class ConfigError(CogfleetError):
    """An input file is invalid. The message names the file and, when known, the line."""

    def __init__(self, path: str | Path | None, message: str, line: int | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line else f"{self.path}: "
        super().__init__(f"{where}{message}")


class TemplateError(ConfigError):
    """A Jinja template could not be rendered."""


class PluginError(ConfigError):
    """A plugin could not be loaded or does not fit the hook specifications."""


class RemoteError(CogfleetError):
    """The target answered in a way cogfleet cannot work with.

    ``status`` is the HTTP status of the answer, when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        from cogfleet._credentials import redact  # an answer may quote the token it got

        super().__init__(redact(message))
        self.status = status


class BadAnswer(RemoteError):
    """The target answered what no Replicate API answers: an HTML page, JSON that is not
    an object, a body that breaks off. Not a verdict on the model: a run a step of which
    fails with it ends with exit 2."""


class NetworkError(RemoteError):
    """A URL (an input, a reference output) could not be fetched.

    ``reason`` says why in a few words: the DNS lookup failed, the connection was
    refused, it timed out, an HTTP status, or ``--offline``.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot fetch {url}: {reason}")


class CheckFailed(CogfleetError):
    """A check failed; the message says which and why."""

    exit_code = ExitCode.CHECKS_FAILED
