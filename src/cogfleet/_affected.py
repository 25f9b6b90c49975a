"""Which variants a change affects, and the CI matrix built from them.

A variant depends on exactly the files its rendering reads (its family's files, its
``cog.yaml`` template and everything that template includes or imports, its config and
the config's includes; :attr:`cogfleet._render.Rendered.reads`), on its declaration in
``variants.yaml``, on the repo files its config points at (reference outputs, file
inputs of test cases), and on the repo-wide files in :data:`GLOBAL_FILES` /
:data:`GLOBAL_DIRS` (plugins, packaging, nox). Nothing here is a hand-kept list of
dependencies: each variant is rendered in memory and what it read is what it depends
on.

The changed files are those between the merge base of ``REF`` and ``HEAD`` and the
working tree (committed or not, plus untracked files that git does not ignore). In a
shallow clone without a merge base the tree of ``REF`` itself is the base, which on a
pull request's merge commit is exactly the pull request's change.

Deleted files matter too: a variant that read a file at the base, which is now gone,
is affected although nothing at ``HEAD`` reads it. When any changed file no longer
exists, the variants are also rendered from a copy of the base tree and those reads
are added.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cogfleet._errors import CogfleetError, UsageError
from cogfleet._plugins import Plugins
from cogfleet._render import Rendered, render_in_memory
from cogfleet._repo import PLUGINS_DIR, STATE_DIR, Repo, Variant

#: Files whose change affects every variant.
GLOBAL_FILES = frozenset({"pyproject.toml", "noxfile.py"})
#: Folders whose content affects every variant (any file below them).
GLOBAL_DIRS = (PLUGINS_DIR,)

# GitHub's ``before`` of a push that created a branch: there is no base to compare with.
_NULL_SHA = re.compile(r"^0{40}$")
GIT_TIMEOUT = 120.0


@dataclass
class Affected:
    """One affected variant and the changed files that made it so (repo-relative)."""

    variant: str
    model: str
    reasons: list[str] = field(default_factory=list)


# --- git -------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, timeout=GIT_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise UsageError("git is not installed (needed to find changed files)") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"git {' '.join(args[:2])} timed out after {GIT_TIMEOUT:g}s") from None


def _git_text(root: Path, *args: str) -> str:
    proc = _git(root, *args)
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit {proc.returncode}"
        raise UsageError(f"git {' '.join(args)} failed: {detail}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def _nul_list(text: str) -> list[str]:
    return [p for p in text.split("\0") if p]


def is_null_ref(ref: str) -> bool:
    """True for GitHub's all-zero ``before`` (a push that created the branch)."""
    return bool(_NULL_SHA.match(ref.strip()))


def _fetch_hint(ref: str) -> str:
    remote, sep, branch = ref.partition("/")
    if sep and branch and not re.fullmatch(r"[0-9a-f]{7,40}", ref):
        return f"git fetch --depth=1 {remote} {branch}"
    return f"git fetch --depth=1 origin {ref}"


def resolve_base(root: Path, ref: str) -> tuple[str, bool]:
    """The commit to compare with: the merge base of ``ref`` and ``HEAD`` when the history
    has one, else ``ref`` itself (shallow clones). Returns ``(sha, is_merge_base)``."""
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != b"true":
        raise UsageError(f"{root} is not inside a git work tree (needed for --changed-since)")
    proc = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if proc.returncode != 0:
        raise UsageError(f"base ref {ref!r} not found; fetch it (e.g. {_fetch_hint(ref)})")
    sha = proc.stdout.decode().strip()
    if _git(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        return sha, False  # no commit yet: compare the work tree with ref's tree
    merge = _git(root, "merge-base", sha, "HEAD")
    if merge.returncode == 0 and merge.stdout.strip():
        return merge.stdout.decode().strip(), True
    return sha, False


def changed_files(root: Path, ref: str) -> tuple[str, list[str]]:
    """The base commit for ``ref`` and the files changed since it, relative to ``root``.

    Covers committed, staged and unstaged changes and untracked (not ignored) files;
    renames count as a deletion plus an addition so both paths are seen.
    """
    base, _ = resolve_base(root, ref)
    # --relative: paths relative to root (and only those inside it), whether root is the
    # top of the git repository or a folder inside one
    diff = _git_text(
        root, "diff", "--name-only", "--no-renames", "-z", "--relative", base, "--"
    )
    untracked = _git_text(root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    paths = set(_nul_list(diff)) | set(_nul_list(untracked))
    return base, sorted(p for p in paths if not _is_output(p))


def _is_output(path: str) -> bool:
    """Files no rendering reads: cogfleet's own state and Python's bytecode caches.

    A repo that does not git-ignore ``__pycache__/`` would otherwise see every variant
    affected as soon as a plugin under ``plugins/`` is imported once.
    """
    parts = PurePosixPath(path).parts
    return (
        path.startswith(f"{STATE_DIR}/")
        or "__pycache__" in parts
        or path.endswith((".pyc", ".pyo"))
    )


# --- reads -----------------------------------------------------------------------------


def is_global(path: str) -> bool:
    """True when a change to ``path`` (repo-relative) affects every variant."""
    if path in GLOBAL_FILES:
        return True
    parts = PurePosixPath(path).parts
    return bool(parts) and parts[0] in GLOBAL_DIRS


def config_files(repo: Repo, rendered: Rendered) -> set[str]:
    """Repo files the variant's config points at (reference outputs, file inputs).

    They are not read while rendering but while testing, so a new reference image
    affects the variant as much as a change to its config does.
    """
    found: set[str] = set()
    stack: list[object] = [rendered.config.model_dump()]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, str) and _looks_like_path(value):
            if (repo.root / value).is_file():
                found.add(PurePosixPath(value).as_posix())
    return found


def _looks_like_path(text: str) -> bool:
    if not text or len(text) > 500 or "\n" in text or text.startswith(("/", "data:")):
        return False
    if "://" in text:
        return False
    return ".." not in PurePosixPath(text).parts


def dependencies(repo: Repo, variant: Variant, plugins: Plugins) -> tuple[Rendered, set[str]]:
    """Render ``variant`` in memory; return it and every repo file it depends on."""
    rendered = render_in_memory(repo, variant, plugins)
    return rendered, set(rendered.reads) | config_files(repo, rendered)


def _declaration(variant: Variant, root: Path) -> str:
    """Everything variants.yaml says of ``variant`` (its source folder included), in a
    form that compares equal between two checkouts at different places."""
    data = variant.to_json(root)
    data["source"] = os.path.relpath(variant.family_dir, root)
    return json.dumps(data, sort_keys=True, default=str)


def _extract_tree(root: Path, commit: str, dest: Path) -> None:
    """Write the tree of ``commit`` (the part at and below ``root``) into ``dest``."""
    prefix = _git_text(root, "rev-parse", "--show-prefix").strip()
    # streamed: a base holding large files is never held in memory at once
    with subprocess.Popen(
        ["git", "archive", "--format=tar", f"{commit}:{prefix}"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError) as exc:
            proc.kill()
            raise UsageError(f"cannot read the base tree {commit[:12]}: {exc}") from None
        detail = proc.stderr.read().decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise UsageError(f"cannot read the base tree {commit[:12]}: {detail}")


@dataclass
class _Base:
    declarations: dict[str, str]
    """Each variant's declaration at the base (see :func:`_declaration`)."""
    reads: dict[str, set[str]]


def _base_state(root: Path, commit: str, plugins: Plugins, *, render: bool) -> _Base | None:
    """The variants declared at ``commit`` and, when ``render``, what each read there.

    Plugins are the ones of the work tree: the base is only consulted when no global
    file changed, so the plugins are the same at both ends. A base that does not load
    or render gives what it can (``None`` or fewer reads): the work tree's reads still
    decide, so nothing is lost that the current state shows.
    """
    with tempfile.TemporaryDirectory(prefix="cogfleet-base-") as tmp:
        dest = Path(tmp)
        try:
            _extract_tree(root, commit, dest)
            base_repo = Repo.load(dest)
        except CogfleetError:
            return None
        reads: dict[str, set[str]] = {}
        if render:
            for variant in base_repo.variants.values():
                try:
                    reads[variant.name] = dependencies(base_repo, variant, plugins)[1]
                except CogfleetError:
                    continue
        declarations = {n: _declaration(v, dest) for n, v in base_repo.variants.items()}
        return _Base(declarations=declarations, reads=reads)


# --- the answer ------------------------------------------------------------------------


def affected_variants(repo: Repo, ref: str, plugins: Plugins | None = None) -> list[Affected]:
    """The variants of ``repo`` that the changes since ``ref`` affect, in name order.

    A null ref (GitHub's all-zero ``before``) means there is no base: every variant.
    """
    plugins = plugins if plugins is not None else Plugins(repo.root)
    variants = list(repo.variants.values())
    if is_null_ref(ref):
        return [_entry(repo, v, plugins, ["(no base commit)"]) for v in variants]
    base, changed = changed_files(repo.root, ref)
    if not changed:
        return []
    global_changes = [p for p in changed if is_global(p)]
    if global_changes:
        return [_entry(repo, v, plugins, global_changes) for v in variants]

    rendered = {v.name: dependencies(repo, v, plugins) for v in variants}
    deleted = [p for p in changed if not (repo.root / p).exists()]
    vfiles = {repo.rel(v.variants_file) for v in variants}
    base_state: _Base | None = None
    if deleted or vfiles & set(changed):
        base_state = _base_state(repo.root, base, plugins, render=bool(deleted))

    changed_set = set(changed)
    out: list[Affected] = []
    for variant in variants:
        reads = set(rendered[variant.name][1])
        if base_state is not None and variant.name in base_state.reads:
            reads |= base_state.reads[variant.name]
        elif deleted and (base_state is None or variant.name in base_state.declarations):
            # what the variant read at the base is unknown (the base did not load or
            # render): any deleted file may have been one of them
            reads |= set(deleted)
        reasons = sorted(reads & changed_set)
        vfile = repo.rel(variant.variants_file)
        if vfile in changed_set:
            if base_state is None:
                reasons.append(vfile)  # the base did not load: assume the declaration changed
            elif variant.name not in base_state.declarations:
                reasons.append(f"{vfile} (new variant)")
            elif base_state.declarations[variant.name] != _declaration(variant, repo.root):
                reasons.append(vfile)
        if reasons:
            out.append(Affected(variant.name, rendered[variant.name][0].model, reasons))
    return out


def _entry(repo: Repo, variant: Variant, plugins: Plugins, reasons: list[str]) -> Affected:
    return Affected(variant.name, model_of(repo, variant, plugins), list(reasons))


def model_of(repo: Repo, variant: Variant, plugins: Plugins) -> str:
    """The variant's ``owner/name``: declared in variants.yaml, else from its config."""
    if variant.model is not None:
        return variant.model
    return render_in_memory(repo, variant, plugins).model


def matrix(entries: list[tuple[str, str, str]]) -> dict[str, list[dict[str, str]]]:
    """GitHub Actions' ``strategy.matrix`` for ``(variant, model, cog_version)`` entries
    (the jobs install the ``cog`` CLI of the variant's pinned Cog version)."""
    return {
        "include": [
            {"variant": name, "model": model, "cog_version": cog} for name, model, cog in entries
        ]
    }
