"""ruff on the predictor and trainer sources, as the repository lints them.

cog-safe-push runs ``ruff check <predict file> --ignore=E402`` inside the Cog folder,
so ruff uses whatever configuration it finds for that file, less E402. cogfleet does
the same on the files the user edits, not on their copies in a build folder:

- ruff runs from the repository root on the family's source files, without
  ``--isolated``: each file gets the ``ruff.toml``, ``.ruff.toml`` or ``pyproject.toml``
  (``[tool.ruff]``) that ruff itself would find for it;
- a source rendered from a Jinja template (``predict.py.j2``) is linted as rendered,
  under the path it renders to (so the same configuration applies), and reported
  against the template, at the template line the rendered line came from;
- findings read ``models/flux/predict.py:14:5: F401 `os` imported but unused``.

Results are kept for the process, keyed by the source bytes and the state of every
configuration file ruff could read, so eleven variants sharing one ``predict.py`` run
ruff once.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONFIG_FILES = ("ruff.toml", ".ruff.toml", "pyproject.toml")
# cog-safe-push lints with `--ignore=E402`: a predictor that sets the environment before
# importing torch (an import below code) passes whatever the configuration selects
IGNORED = "--ignore=E402"
RUFF_TIMEOUT = 120.0


@dataclass(frozen=True)
class Source:
    """One file to lint: where it is shown and, for a template, its rendered text."""

    shown: str  # path in messages (relative to the folder ruff runs from)
    path: str  # path ruff sees (the rendered name for a template)
    template_text: str | None = None  # the template's source, for line mapping
    rendered: str | None = None  # text to lint instead of the file on disk


def entry_files(cog_yaml: Path) -> list[str]:
    """The run/predict/train files a ``cog.yaml`` names, relative to its folder."""
    try:
        data = yaml.safe_load(cog_yaml.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    files = []
    for key in ("run", "predict", "train"):
        ref = data.get(key) if isinstance(data, dict) else None
        if isinstance(ref, str) and ".py:" in ref:
            files.append(ref.split(".py:", 1)[0] + ".py")
    return sorted(set(files))


_STATEMENT_ONLY = re.compile(r"^\s*(\{%.*?%\}|\{#.*?#\})\s*$")


def template_lines(template: str, rendered: str) -> list[int]:
    """For each line of ``rendered`` (0-based index), the 1-based template line it came from.

    Lines without Jinja are equal in both texts and align exactly. A rendered line in a
    changed stretch maps to the template line at the same offset among the stretch's
    lines that write output (a line holding only ``{% ... %}`` or ``{# ... #}`` writes
    none); lines a loop repeats map to the loop's last such line.
    """
    tpl = template.splitlines()
    out = rendered.splitlines()
    mapping = [1] * max(len(out), 1)
    matcher = difflib.SequenceMatcher(a=tpl, b=out, autojunk=False)
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        writers = [i for i in range(a1, a2) if not _STATEMENT_ONLY.match(tpl[i])]
        for j in range(b1, b2):
            if tag == "equal":
                mapping[j] = a1 + (j - b1) + 1
            elif writers:
                mapping[j] = writers[min(j - b1, len(writers) - 1)] + 1
            else:  # only statements there (or an insertion): the stretch's first line
                mapping[j] = min(a1, max(len(tpl) - 1, 0)) + 1
    return mapping


def _config_state(folder: Path, path: str) -> list[Any]:
    """Every configuration file ruff could read for ``path``, with its size and mtime."""
    state: list[Any] = []
    current = (folder / path).parent.resolve()
    for directory in (current, *current.parents):
        for name in CONFIG_FILES:
            candidate = directory / name
            try:
                st = candidate.stat()
            except OSError:
                continue
            state.append([str(candidate), st.st_size, st.st_mtime_ns])
    return state


_CACHE: dict[str, list[str]] = {}
_LOCK = threading.Lock()


def _key(folder: Path, source: Source) -> str | None:
    try:
        text = source.rendered if source.rendered is not None else (
            (folder / source.path).read_text(encoding="utf-8", errors="replace")
        )
    except OSError:
        return None
    payload = [str(folder.resolve()), source.shown, source.path, text,
               _config_state(folder, source.path)]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def _format(item: dict[str, Any], shown: str, lines: list[int] | None) -> str:
    loc = item.get("location") or {}
    row, col = int(loc.get("row", 1)), int(loc.get("column", 1))
    if lines is not None:
        row = lines[min(max(row - 1, 0), len(lines) - 1)]
    code = item.get("code") or "syntax-error"
    return f"{shown}:{row}:{col}: {code} {item.get('message', '').strip()}"


def _run(folder: Path, args: list[str], stdin: str | None) -> tuple[list[dict[str, Any]], str]:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=json",
             "--exit-zero", IGNORED, *args],
            cwd=folder, input=stdin, capture_output=True, text=True, timeout=RUFF_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], f"ruff timed out after {RUFF_TIMEOUT:g}s"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return [], "ruff failed: " + (detail[-1] if detail else f"exit {proc.returncode}")
    try:
        found = json.loads(proc.stdout or "[]")
    except ValueError:
        return [], f"ruff failed: unreadable output {proc.stdout[:200]!r}"
    return list(found), ""


def lint_sources(folder: Path, sources: list[Source]) -> list[str]:
    """ruff's findings on ``sources`` (paths relative to ``folder``), one line each."""
    problems: list[str] = []
    plain: list[Source] = []
    for source in sources:
        key = _key(folder, source)
        with _LOCK:
            hit = _CACHE.get(key) if key else None
        if hit is not None:
            problems.extend(hit)
            continue
        if source.rendered is None:
            plain.append(source)
            continue
        found, error = _run(folder, ["--stdin-filename", source.path, "-"], source.rendered)
        lines = template_lines(source.template_text or "", source.rendered)
        result = [f"{source.shown}: {error}"] if error else [
            _format(item, source.shown, lines) for item in found
        ]
        _remember(key, result)
        problems.extend(result)
    if plain:
        found, error = _run(folder, [s.path for s in plain], None)
        if error:
            return problems + [f"{s.shown}: {error}" for s in plain]
        by_file: dict[str, list[str]] = {s.path: [] for s in plain}
        resolved = {str((folder / s.path).resolve()): s for s in plain}
        for item in found:
            owner = resolved.get(str(Path(item.get("filename", "")).resolve()))
            if owner is not None:
                by_file[owner.path].append(_format(item, owner.shown, None))
        for source in plain:
            _remember(_key(folder, source), by_file[source.path])
            problems.extend(by_file[source.path])
    return problems


def _remember(key: str | None, result: list[str]) -> None:
    if key is not None:
        with _LOCK:
            _CACHE[key] = list(result)


def ruff_problems(folder: Path, prefix: str = "") -> list[str]:
    """ruff's findings on a Cog folder's run/predict/train files (``safe-push``).

    The files are linted where they are, with the configuration ruff finds for them;
    each finding names the file relative to ``folder`` (after ``prefix``).
    """
    sources = [Source(shown=prefix + rel, path=rel) for rel in entry_files(folder / "cog.yaml")]
    return lint_sources(folder, [s for s in sources if (folder / s.path).is_file()])
