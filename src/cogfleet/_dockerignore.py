"""``.dockerignore`` as Docker reads it: what a ``cog build`` of a folder leaves out.

The rules (Docker's, which differ from ``.gitignore``'s):

- one pattern a line; blank lines and lines starting with ``#`` are skipped; ``!``
  re-includes; the last pattern that matches a path decides;
- patterns are cleaned like paths (``./a//b/`` is ``a/b``), a leading ``/`` is dropped,
  and they are anchored at the folder: ``*.pyc`` is only the top level's, ``**/*.pyc``
  is every level's;
- ``*`` and ``?`` never cross ``/``; ``**`` matches any number of folders (none too);
  ``[...]`` is a character class and ``\\`` escapes the next character;
- a pattern that matches a folder leaves out everything below it.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FILENAME = ".dockerignore"
#: The marked block ``cogfleet select`` keeps in a repo's ``.dockerignore`` (its own lines).
BLOCK_START = "# >>> cogfleet select: keeps cogfleet's files out of the build (edit outside)"
BLOCK_END = "# <<< cogfleet select"


def without_select_block(text: str) -> str:
    """``text`` less the block ``cogfleet select`` added (and the blank line before it):
    the ``.dockerignore`` the user wrote."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\r\n") == BLOCK_START), None)
    if start is None:
        return text
    end = next((i for i in range(start, len(lines)) if lines[i].rstrip("\r\n") == BLOCK_END),
               len(lines) - 1)
    before = "".join(lines[:start])
    if before.endswith("\n\n"):  # the separator select put before its block
        before = before[:-1]
    return before + "".join(lines[end + 1 :])


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    negated: bool


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                out.append(".*" if i >= len(pattern) else "(?:.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in "[]":  # a character class, passed through as Docker does
            out.append(ch)
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


class DockerIgnore:
    """The patterns of one ``.dockerignore`` (none when the file is missing)."""

    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated:
                line = line[1:].strip()
            line = posixpath.normpath(line.replace(os.sep, "/"))
            if line.startswith("/") and len(line) > 1:
                line = line.lstrip("/")
            if line in (".", "/"):
                continue
            try:
                self.patterns.append(_Pattern(_compile(line), negated))
            except re.error:
                continue  # Docker rejects the build; leaving the line out is the safe side
        self.has_negations = any(p.negated for p in self.patterns)

    @classmethod
    def read(cls, folder: Path, *, select_block: bool = True) -> DockerIgnore:
        """The folder's patterns (without ``select_block``: less ``cogfleet select``'s)."""
        try:
            text = (folder / FILENAME).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return cls([])
        return cls((text if select_block else without_select_block(text)).splitlines())

    def excludes(self, rel: str) -> bool:
        """True when the posix path ``rel`` (relative to the folder) is left out."""
        if not self.patterns:
            return False
        parts = rel.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for pattern in self.patterns:
            if any(pattern.regex.match(c) for c in candidates):
                excluded = not pattern.negated
        return excluded

    def prunes(self, rel_dir: str) -> bool:
        """True when nothing below the folder ``rel_dir`` can be in the build."""
        return not self.has_negations and self.excludes(rel_dir)


def walk(
    folder: Path, ignore: DockerIgnore, skip_dirs: frozenset[str] = frozenset()
) -> Iterator[str]:
    """Posix paths (relative to ``folder``, sorted per folder) of the files a build takes."""
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if here == "." else here + "/"
        dirnames[:] = sorted(
            d for d in dirnames if d not in skip_dirs and not ignore.prunes(prefix + d)
        )
        for name in sorted(filenames):
            rel = prefix + name
            if not ignore.excludes(rel):
                yield rel
