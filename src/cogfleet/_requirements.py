"""Python requirements as pip reads them: ``build.python_packages`` and the
``build.python_requirements`` file of a ``cog.yaml``.

Cog hands both to pip (``cog build``) and cogfleet to uv (a local environment); a line
neither can parse fails the build, minutes in. Each requirement is read here as PEP 508
(what pip and uv accept), so the line is named before anything is built or pushed.

A requirements file is read the way pip reads one: a backslash at the end of a line
joins the next, `` #`` starts a comment, a line starting with ``-`` is an option
(``-r``, ``-e``, ``--extra-index-url``; pip checks them itself), a URL or a path is a
requirement pip fetches as it is, and options after a requirement (``--hash=...``) are
its own. A line holding ``${VAR}`` is left alone: pip expands it first.
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement

__all__ = ["requirement_problem", "requirements_file_problems"]

_COMMENT = re.compile(r"(^|\s+)#.*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PATH = re.compile(r"^(\.{1,2}[\\/]|[\\/~]|[A-Za-z]:[\\/])")
_ARCHIVE = re.compile(r"\.(whl|zip|tar|tar\.gz|tgz|tar\.bz2|tbz|tar\.xz|txz)$", re.IGNORECASE)
# options of one requirement: --hash=..., --config-settings
_OPTIONS = re.compile(r"\s+--[A-Za-z].*$")


def requirement_problem(text: str) -> str | None:
    """Why pip cannot read ``text`` as one requirement line (``None`` when it can)."""
    line = _COMMENT.sub("", text).strip()
    if not line or line.startswith("-") or "${" in line:
        return None
    if _URL.match(line) or _PATH.match(line) or _ARCHIVE.search(line.split(";")[0].strip()):
        return None
    line = _OPTIONS.sub("", line)
    try:
        Requirement(line)
    except InvalidRequirement as exc:
        why = str(exc).splitlines()[0].strip().rstrip(".")
        return f"{text.strip()!r} is not a requirement pip can read ({why})"
    return None


def requirements_file_problems(text: str) -> list[tuple[int, str]]:
    """``(line, problem)`` of every line of a requirements file pip cannot read."""
    problems: list[tuple[int, str]] = []
    joined, first = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not joined:
            first = number
        if raw.endswith("\\") and not _COMMENT.match(raw):  # as pip: a comment line ends here
            joined += raw[:-1]
            continue
        joined += raw
        problem = requirement_problem(joined)
        if problem:
            problems.append((first, problem))
        joined = ""
    if joined:
        problem = requirement_problem(joined)
        if problem:
            problems.append((first, problem))
    return problems
