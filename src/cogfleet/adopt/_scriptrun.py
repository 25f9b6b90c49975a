"""Run a repo's select script once per variant, in a scratch copy, and see what it wrote.

``cogfleet init`` reads the common select-script shapes from their text (a yq merge, a
``cat`` of base and overlay, ``cp configs/$1/cog.yaml cog.yaml``). A script that picks
each variant's values or files in a ``case`` statement, or exports variables for
``envsubst``, says what it does only when it runs. So it is run, per variant, in one
scratch copy of the repository (a select script is made to run again and again in the
same tree), with an ``envsubst`` of cogfleet's own first on ``PATH`` that records the
values it is handed (and substitutes as ``envsubst`` does), ``cog``, ``cog-safe-push``
and ``docker`` stubs that refuse to run (a script that goes on to build or push does
not), and none of cogfleet's credentials. Afterwards every file the run created or
changed is compared with the files the repository had: one with the bytes of an
existing file is a copy of it; a cog.yaml that is a copy of none is kept to be read
back as a template (:mod:`cogfleet.adopt._derive`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cogfleet._credentials import without_credentials

SCRATCH_SKIP = (".git", ".cogfleet", ".venv", "venv", "node_modules", "__pycache__", ".nox")
SCRATCH_MAX_FILE = 5_000_000  # weights and caches are not what a select script reads
TIMEOUT = 60.0
#: Tools a select script may call after selecting that must not run here.
_NOT_RUN = ("cog", "cog-safe-push", "docker", "replicate")

_RECORDER = """\
import json, os, re, sys
names = json.loads(os.environ["COGFLEET_ENVSUBST_NAMES"])
with open(os.environ["COGFLEET_ENVSUBST_OUT"], "w", encoding="utf-8") as fh:
    json.dump({name: os.environ.get(name, "") for name in names}, fh)
var = re.compile(r"\\$(?:\\{([A-Za-z_][A-Za-z0-9_]*)\\}|([A-Za-z_][A-Za-z0-9_]*))")
only = {a or b for a, b in var.findall(" ".join(sys.argv[1:]))} if sys.argv[1:] else None
def value(m):
    name = m.group(1) or m.group(2)
    return m.group(0) if only is not None and name not in only else os.environ.get(name, "")
sys.stdout.write(var.sub(value, sys.stdin.read()))
"""


@dataclass
class Render:
    """A ``jinja2`` render the run's Python did (recorded by :mod:`._sitecustomize`)."""

    template: str | None  # the repo file rendered (None: text of the script's own)
    source: str | None  # the template's text, when known
    context: dict[str, Any] | None  # the variables (None: not plain data)
    output: str
    options: dict[str, bool]
    undefined: str
    differs: list[str]


@dataclass
class Run:
    """What ``script VARIANT`` did in the scratch copy."""

    exit_code: int | None = None  # None: it did not finish (``error`` says why)
    error: str | None = None
    error_line: str | None = None  # the last line it wrote to stderr, when it failed
    envsubst: dict[str, str] | None = None  # the recorded values, when it ran envsubst
    copies: dict[str, str] = field(default_factory=dict)  # written file -> repo file it equals
    other: list[str] = field(default_factory=list)  # written files equal to no repo file
    generated: bytes | None = None  # cog.yaml's bytes, when it is a copy of no repo file
    written: dict[str, bytes] = field(default_factory=dict)  # ``other`` files' bytes
    rendered: dict[str, Render] = field(default_factory=dict)  # written file -> its render
    # written file -> why it is no template's text (a second run wrote it otherwise...)
    unstable: dict[str, str] = field(default_factory=dict)
    started: float = 0.0  # time.monotonic() when it began


def scratch_ignore(folder: str, entries: list[str]) -> set[str]:
    skipped = set()
    for entry in entries:
        path = Path(folder) / entry
        if entry in SCRATCH_SKIP or (
            path.is_file() and not path.is_symlink() and path.stat().st_size > SCRATCH_MAX_FILE
        ):
            skipped.add(entry)
    return skipped


def _snapshot(folder: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[str, int]]]:
    """One walk of ``folder``: every regular file (relative path -> (size, mtime_ns))
    and every symbolic link (relative path -> (target, lstat mtime_ns))."""
    files: dict[str, tuple[int, int]] = {}
    links: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in SCRATCH_SKIP]
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                links[rel] = (os.readlink(path), path.lstat().st_mtime_ns)
            elif path.is_file():
                stat = path.stat()
                files[rel] = (stat.st_size, stat.st_mtime_ns)
    return files, links


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Originals:
    """The repository's files as copied, found by content."""

    def __init__(self, folder: Path, stats: dict[str, tuple[int, int]]) -> None:
        # hashed before any run, which may change them
        self.digests = {rel: _digest(folder / rel) for rel in stats}
        self.by_size: dict[int, list[str]] = {}
        for rel, (size, _) in sorted(stats.items()):
            self.by_size.setdefault(size, []).append(rel)

    def equal_to(self, path: Path, rel: str, name: str) -> str | None:
        """The original file (not ``rel`` itself) whose bytes ``path`` now has: of two
        equal ones, one whose path names variant ``name``."""
        candidates = [c for c in self.by_size.get(path.stat().st_size, []) if c != rel]
        if not candidates:
            return None
        digest = _digest(path)
        equal = [c for c in candidates if self.digests[c] == digest]
        named = [c for c in equal if name in c]
        return (named or equal)[0] if equal else None

    def with_text(self, folder: Path, text: str) -> str | None:
        """The one original file whose text (read as Python reads text: universal
        newlines) is ``text``, when exactly one is."""
        size = len(text.encode("utf-8"))
        found = []
        for extra in range(text.count("\n") + 1):  # \r\n line ends are one byte longer
            for rel in self.by_size.get(size + extra, []):
                path = folder / rel
                if _digest(path) != self.digests[rel]:
                    continue  # changed by a run: not the original
                data = path.read_bytes()
                if data.decode("utf-8", "replace").replace("\r\n", "\n").replace(
                    "\r", "\n") == text:
                    found.append(rel)
        return found[0] if len(found) == 1 else None


def _renders(path: Path, copy: Path, originals: _Originals) -> list[Render]:
    """The recorded renders of one run, each with the repo file it rendered when that is
    known (a loader's file, or the one file whose text is the template's)."""
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        template, source = None, entry["source"]
        filename = entry["filename"]
        if filename and (copy / filename).is_file():  # (absolute: copy / it is it)
            resolved = (copy / filename).resolve()
            if copy.resolve() in resolved.parents:
                template = resolved.relative_to(copy.resolve()).as_posix()
                source = resolved.read_text(encoding="utf-8", errors="replace")
        elif source is not None:
            template = originals.with_text(copy, source)
        found.append(Render(template, source, entry["context"], entry["output"],
                            entry["options"], entry["undefined"], entry["differs"]))
    return found


_MAKE_FAILED_RE = re.compile(r"^make(?:\[\d+\])?: \*\*\* \[")


def _last_line(stderr: bytes) -> str | None:
    """The last line the script wrote to stderr (not make's own "*** Error" lines)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines()
             if ln.strip() and not _MAKE_FAILED_RE.match(ln)]
    return lines[-1][:200] if lines else None


def run_per_variant(
    root: Path, script: str, names: list[str], wanted: list[str],
    command: Callable[[str], list[str]] | None = None,
) -> dict[str, Run]:
    """Run ``bash SCRIPT NAME`` (or ``command(NAME)``) for each name in a scratch copy
    of ``root``.

    ``wanted``: the variables whose values a run's ``envsubst`` call is recorded with.
    """
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory(prefix="cogfleet-adopt-") as scratch_dir:
        scratch = Path(scratch_dir)
        bin_dir = scratch / "bin"
        bin_dir.mkdir()
        recorder = bin_dir / "envsubst"
        recorder.write_text(f"#!{sys.executable}\n{_RECORDER}", encoding="utf-8")
        recorder.chmod(0o755)
        for tool in _NOT_RUN:  # a select script that goes on to build or push does not
            stub = bin_dir / tool
            stub.write_text(f"#!/bin/sh\necho '{tool}: not run while cogfleet init reads "
                            "the select script' >&2\nexit 127\n", encoding="utf-8")
            stub.chmod(0o755)
        site = scratch / "py"
        site.mkdir()
        shutil.copyfile(Path(__file__).with_name("_sitecustomize.py"), site / "sitecustomize.py")
        copy = scratch / "repo"
        shutil.copytree(root, copy, symlinks=True, ignore=scratch_ignore)
        inside = copy.resolve()
        before, before_links = _snapshot(copy)
        originals = _Originals(copy, before)
        for name in names:
            out = scratch / f"{name}.json"
            out.unlink(missing_ok=True)
            jinja_out = scratch / f"{name}.jinja.jsonl"
            jinja_out.unlink(missing_ok=True)
            python_path = os.environ.get("PYTHONPATH")
            env = {
                **without_credentials(),  # the script is the repo's code
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": f"{site}{os.pathsep}{python_path}" if python_path else str(site),
                "COGFLEET_ENVSUBST_NAMES": json.dumps(wanted),
                "COGFLEET_ENVSUBST_OUT": str(out),
                "COGFLEET_JINJA_OUT": str(jinja_out),
            }
            run = runs[name] = Run(started=time.monotonic())
            argv = command(name) if command is not None else ["bash", script, name]
            try:
                proc = subprocess.run(
                    argv, cwd=copy, env=env, stdin=subprocess.DEVNULL,
                    capture_output=True, timeout=TIMEOUT, check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                run.error = str(exc)
                before, before_links = _snapshot(copy)  # whatever it wrote is not the next's
                continue
            run.exit_code = proc.returncode
            if proc.returncode:
                run.error_line = _last_line(proc.stderr)
            if out.is_file():
                run.envsubst = json.loads(out.read_text(encoding="utf-8"))
            renders = _renders(jinja_out, copy, originals)
            after, after_links = _snapshot(copy)
            for rel, stat in sorted(after.items()):
                if before.get(rel) == stat:
                    continue  # not written by this run
                data = (copy / rel).read_bytes() if stat[0] <= SCRATCH_MAX_FILE else b""
                render = next((r for r in renders if r.output.encode("utf-8") == data), None)
                if render is not None and data:  # what a jinja2 render gave, as it gave it
                    run.rendered[rel] = render
                    continue
                source = originals.equal_to(copy / rel, rel, name)
                if source is not None:
                    run.copies[rel] = source
                    continue
                run.other.append(rel)
                run.written[rel] = data
                if rel == "cog.yaml":  # read back as a template, if it is one
                    run.generated = data
            for rel, link in sorted(after_links.items()):  # `ln -sf configs/x.yaml cog.yaml`
                if before_links.get(rel) == link:
                    continue
                target = (copy / rel).resolve()
                if target.is_file() and inside in target.parents:
                    run.copies[rel] = target.relative_to(inside).as_posix()
                else:
                    run.other.append(rel)
            # the next run is compared with what this one left (a select script runs
            # again and again in the same tree)
            before, before_links = after, after_links
        home = scratch / "home"  # another $HOME: a file with the runner's in it shows
        home.mkdir()
        _again(runs, copy, lambda name: (
            command(name) if command is not None else ["bash", script, name], {
                **without_credentials(),
                "HOME": str(home),
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "COGFLEET_ENVSUBST_NAMES": "[]",
                "COGFLEET_ENVSUBST_OUT": str(scratch / "again.json"),
            }))
        where = str(scratch).encode("utf-8")
        for run in runs.values():  # the scratch copy's path is no file's text either
            for rel, data in [*run.written.items(),
                              *((r, v.output.encode("utf-8")) for r, v in run.rendered.items())]:
                if where in data:
                    run.unstable.setdefault(rel, "has the path of the folder it ran in")
    return runs


def _again(
    runs: dict[str, Run], copy: Path,
    how: Callable[[str], tuple[list[str], dict[str, str]]],
) -> None:
    """Run the script again for each variant it generated files for, a clock second after
    the first runs began and with another ``$HOME``, and mark the files that came out
    otherwise (``unstable``): a date, a random value or a path of the machine that ran
    it is no template's text."""
    again = [name for name, run in runs.items() if run.error is None and run.exit_code == 0
             and (run.written or run.rendered)]
    if not again:
        return
    # one wait in all, so `date +%s` in a script shows (finer clocks show without it)
    time.sleep(max(0.0, 1.05 - (time.monotonic() - max(runs[n].started for n in again))))
    for name in again:
        run = runs[name]
        argv, env = how(name)
        try:
            proc = subprocess.run(argv, cwd=copy, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            run.unstable.update(dict.fromkeys([*run.written, *run.rendered],
                                              f"did not run a second time ({exc})"))
            continue
        first = {**run.written, **{r: v.output.encode("utf-8") for r, v in run.rendered.items()}}
        for rel, data in first.items():
            path = copy / rel
            if proc.returncode or not path.is_file() or path.read_bytes() != data:
                run.unstable[rel] = ("differs from one run to the next (a date, a random "
                                     "value, $HOME?)")
