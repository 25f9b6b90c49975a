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
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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
class Run:
    """What ``script VARIANT`` did in the scratch copy."""

    exit_code: int | None = None  # None: it did not finish (``error`` says why)
    error: str | None = None
    envsubst: dict[str, str] | None = None  # the recorded values, when it ran envsubst
    copies: dict[str, str] = field(default_factory=dict)  # written file -> repo file it equals
    other: list[str] = field(default_factory=list)  # written files equal to no repo file
    generated: bytes | None = None  # cog.yaml's bytes, when it is a copy of no repo file


def _ignore(folder: str, entries: list[str]) -> set[str]:
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


def run_per_variant(
    root: Path, script: str, names: list[str], wanted: list[str]
) -> dict[str, Run]:
    """Run ``bash SCRIPT NAME`` for each name in a scratch copy of ``root``.

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
        copy = scratch / "repo"
        shutil.copytree(root, copy, symlinks=True, ignore=_ignore)
        inside = copy.resolve()
        before, before_links = _snapshot(copy)
        originals = _Originals(copy, before)
        for name in names:
            out = scratch / f"{name}.json"
            out.unlink(missing_ok=True)
            env = {
                **without_credentials(),  # the script is the repo's code
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "COGFLEET_ENVSUBST_NAMES": json.dumps(wanted),
                "COGFLEET_ENVSUBST_OUT": str(out),
            }
            run = runs[name] = Run()
            try:
                proc = subprocess.run(
                    ["bash", script, name], cwd=copy, env=env, stdin=subprocess.DEVNULL,
                    capture_output=True, timeout=TIMEOUT, check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                run.error = str(exc)
                before, before_links = _snapshot(copy)  # whatever it wrote is not the next's
                continue
            run.exit_code = proc.returncode
            if out.is_file():
                run.envsubst = json.loads(out.read_text(encoding="utf-8"))
            after, after_links = _snapshot(copy)
            for rel, stat in sorted(after.items()):
                if before.get(rel) == stat:
                    continue  # not written by this run
                source = originals.equal_to(copy / rel, rel, name)
                if source is not None:
                    run.copies[rel] = source
                else:
                    run.other.append(rel)
                    if rel == "cog.yaml":  # read back as a template, if it is one
                        run.generated = (copy / rel).read_bytes()
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
    return runs
