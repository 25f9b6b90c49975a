"""Finding the Python interpreter a cog.yaml's ``python_version`` asks for.

Cog installs the requested Python into the image; locally it has to be on the
machine already. The interpreter running cogfleet is used when it matches;
otherwise uv looks for one (never downloading: a build must not fetch a Python
behind the user's back). A missing version is an error that says how to get it,
or, with ``--python``, a fallback to another version with a warning.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from dataclasses import dataclass

from cogfleet._errors import CogfleetError


class PythonNotFound(CogfleetError):
    """The requested Python version is not installed on this machine."""


@dataclass(frozen=True)
class Interpreter:
    """A Python on this machine: its path and full version (``3.11.7``)."""

    path: str
    version: str

    def matches(self, request: str) -> bool:
        """Whether this interpreter satisfies ``python_version: request``."""
        return self.version == request or self.version.startswith(request + ".")


def uv_bin() -> str:
    """The uv executable of the ``uv`` package (a cogfleet dependency)."""
    from uv import find_uv_bin

    return str(find_uv_bin())


def _current() -> Interpreter:
    base = getattr(sys, "_base_executable", None) or sys.executable
    if not os.path.exists(base):
        base = sys.executable
    return Interpreter(os.path.realpath(base), platform.python_version())


@functools.cache
def _query(request: str) -> Interpreter | None:
    current = _current()
    if current.matches(request):
        return current
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    try:
        found = subprocess.run(
            [uv_bin(), "python", "find", "--system", "--no-python-downloads", request],
            capture_output=True, text=True, timeout=60, check=False, env=env,
            stdin=subprocess.DEVNULL, cwd=os.path.expanduser("~"),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = found.stdout.strip().splitlines()[-1] if found.returncode == 0 and found.stdout else ""
    if not path:
        return None
    try:
        version = subprocess.run(
            [path, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    interp = Interpreter(os.path.realpath(path), version)
    return interp if interp.matches(request) else None


def find_python(request: str, *, fallback: str | None = None) -> tuple[Interpreter, str | None]:
    """The interpreter for ``python_version: request`` and a warning when it is a fallback.

    Raises :class:`PythonNotFound` when neither ``request`` nor ``fallback`` is here.
    """
    found = _query(request)
    if found is not None:
        return found, None
    how = (
        f"install it (`uv python install {request}`, pyenv or your OS packages) "
        f"or run with --python X.Y to use another installed version"
    )
    if fallback is None:
        raise PythonNotFound(
            f"Python {request} (build.python_version) is not on this machine: {how}"
        )
    alternative = _query(fallback)
    if alternative is None:
        raise PythonNotFound(
            f"Python {request} (build.python_version) and {fallback} (--python) are not "
            f"on this machine: {how}"
        )
    warning = (
        f"Python {request} is not on this machine; running Python {alternative.version} "
        f"instead (--python {fallback})"
    )
    return alternative, warning
