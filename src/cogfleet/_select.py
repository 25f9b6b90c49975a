"""``cogfleet select``: the model-ci-template ``script/select-model`` contract.

After ``cogfleet select VARIANT`` the repository root is a Cog folder that ``cog build``,
``cog push`` and ``cog-safe-push`` use as they would after the team's select script:

- ``cog.yaml`` (the variant's, rendered and merged) and ``cog-safe-push.yaml`` are
  written to the root, and every reference in ``cog.yaml`` resolves from there;
- a family whose source is the root (a model-ci-template repo) needs nothing else: its
  predictor and the modules it imports are already there. A family under
  ``models/<family>/`` has its rendered files written to the root as well, so that a
  predictor imports its siblings as it will in the image (Cog puts the folder, not the
  predictor's subfolder, on ``sys.path``). Those files are listed in
  ``.cogfleet/select.json``; the next select (or ``--clear``) removes them, and a root
  file that select did not write is never overwritten;
- ``.dockerignore`` gets a marked block (the rest of the file is left as it is) so that
  ``cog build`` of the root sends what the variant's build folder holds. For a family
  whose source is the root, that is what the select script and ``cog build`` sent: every
  file the user's ``.dockerignore`` lets through (the configs, overlays and templates
  too) but cogfleet's own (its state, ``variants.yaml``, the files ``cogfleet init``
  wrote) and local environments. For a ``models/<family>/`` family, only the files the
  select wrote;
- a root file select overwrites that it did not write (a committed ``cog.yaml``) is
  kept under ``.cogfleet/select-saved/``, and ``--clear`` puts it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cogfleet._dockerignore import BLOCK_END, BLOCK_START
from cogfleet._dockerignore import FILENAME as DOCKERIGNORE
from cogfleet._errors import ConfigError, UsageError
from cogfleet._files import ensure_state_dir, write_atomic
from cogfleet._plugins import Plugins
from cogfleet._render import CONFIG_NAME, root_left_out
from cogfleet._render_folder import render_variant
from cogfleet._repo import (
    STATE_DIR,
    Repo,
    Variant,
)

_MANIFEST = "select.json"
_ROOT_FILES = ("cog.yaml", CONFIG_NAME)


@dataclass
class Selection:
    """What a select wrote and removed (repo-relative paths)."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dockerignore_block(repo: Repo, variant: Variant, sent: list[str]) -> str:
    """The managed ``.dockerignore`` block for ``variant``, whose select wrote ``sent``
    (root-relative paths): a ``cog build`` of the root then takes the variant's build
    folder's files (see the module doc)."""
    if variant.family_dir == repo.root:  # the same for every variant of the family
        lines = sorted(dict.fromkeys(rel.strip("/") for rel in root_left_out(repo)))
    else:
        lines = ["*", *(f"!{_escaped(rel)}" for rel in sorted(sent))]
    return "\n".join([BLOCK_START, *lines, BLOCK_END]) + "\n"


def _escaped(rel: str) -> str:
    """``rel`` as a ``.dockerignore`` pattern that matches that path alone."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in rel)


def with_block(existing: str, block: str) -> str:
    """``existing`` .dockerignore text with the managed block put in (or replaced)."""
    lines = existing.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == BLOCK_START), None)
    if start is not None:
        end = next(
            (i for i in range(start, len(lines)) if lines[i].rstrip("\n") == BLOCK_END), None
        )
        if end is not None:
            return "".join(lines[:start]) + block + "".join(lines[end + 1 :])
    sep = "" if not existing or existing.endswith("\n\n") else (
        "\n" if existing.endswith("\n") else "\n\n"
    )
    return existing + sep + block


def _manifest_path(repo: Repo) -> Path:
    return repo.root / STATE_DIR / _MANIFEST


def _previous(repo: Repo, key: str = "files") -> dict[str, str]:
    """Root files the last select wrote: path -> sha256 (``files``: a ``models/``
    family's files; ``root``: cog.yaml and cog-safe-push.yaml)."""
    try:
        data = json.loads(_manifest_path(repo).read_text())
        files = data[key]
        return {str(k): str(v) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _remove_previous(repo: Repo, previous: dict[str, str], keep: set[str]) -> list[str]:
    """Remove what the last select wrote (unless written again, or edited since)."""
    removed = []
    for rel, digest in sorted(previous.items()):
        if rel in keep:
            continue
        path = repo.root / rel
        with contextlib.suppress(OSError):
            if _digest(path.read_bytes()) == digest:
                path.unlink()
                removed.append(rel)
                parent = path.parent
                while parent != repo.root and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
    return removed


def _saved_dir(repo: Repo) -> Path:
    """Where the root files select first overwrote are kept (a tracked cog.yaml)."""
    return repo.root / STATE_DIR / "select-saved"


def _save_originals(repo: Repo, targets: dict[str, bytes], previous_root: dict[str, str]) -> None:
    """Keep each root file select is about to overwrite for the first time, for ``--clear``."""
    for rel in targets:
        path, saved = repo.root / rel, _saved_dir(repo) / rel
        if rel in previous_root or saved.exists() or not path.is_file():
            continue
        ensure_state_dir(repo.root / STATE_DIR)
        saved.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(saved, path.read_bytes())


def clear_selection(repo: Repo) -> Selection:
    """Remove the root files of the last select (``cogfleet select --clear``) and put
    back the ones it overwrote (a committed cog.yaml), as they were."""
    previous = {**_previous(repo), **_previous(repo, "root")}
    removed = _remove_previous(repo, previous, set())
    restored = []
    saved_dir = _saved_dir(repo)
    if saved_dir.is_dir():
        for saved in sorted(p for p in saved_dir.rglob("*") if p.is_file()):
            rel = saved.relative_to(saved_dir).as_posix()
            path = repo.root / rel
            if not path.exists():  # a file edited since the select stays as it is
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, saved.read_bytes())
                restored.append(rel)
        shutil.rmtree(saved_dir)
    _manifest_path(repo).unlink(missing_ok=True)
    return Selection(removed=[r for r in removed if r not in restored], restored=restored)


def select_variant(repo: Repo, variant: Variant, plugins: Plugins) -> list[Path]:
    """Render ``variant`` and make the repository root its Cog folder (see the module doc).

    Returns the files written (see :func:`select` for what was removed too).
    """
    return [repo.root / rel for rel in select(repo, variant, plugins).written]


def _overwrites_root(repo: Repo, variant: Variant) -> ConfigError:
    return ConfigError(
        repo.rel(variant.variants_file),
        f"variant {variant.name!r}: its cog.yaml is made from the root cog.yaml, which "
        "select would overwrite; rename that file (e.g. cog.yaml.template)",
    )


def select(repo: Repo, variant: Variant, plugins: Plugins) -> Selection:
    """:func:`select_variant`, telling what was written and what was removed."""
    made_from_root = "cog.yaml" in (variant.template, variant.overlay)
    if made_from_root and variant.overlay is not None:
        raise _overwrites_root(repo, variant)
    rendered = render_variant(repo, variant, plugins)
    at_root = variant.family_dir == repo.root
    # at the root, cog.yaml is the select script's, byte for byte (it wrote no header)
    header = b"" if at_root else (
        f"# written by `cogfleet select {variant.name}` from {repo.rel(variant.family_dir)}; "
        "do not edit\n"
    ).encode()
    targets: dict[str, bytes] = {
        "cog.yaml": header + rendered.files["cog.yaml"],
        CONFIG_NAME: rendered.files[CONFIG_NAME],
    }
    if made_from_root:
        # the root cog.yaml is the variant's as it is (a select script that keeps it and
        # copies the rest, a plain Cog folder): it stays, and is never select's to remove
        if (repo.root / "cog.yaml").read_bytes() != rendered.files["cog.yaml"]:
            raise _overwrites_root(repo, variant)
        del targets["cog.yaml"]
    materialized: dict[str, bytes] = {}
    if at_root:  # the files the select script copied, as it did
        targets.update({rel: rendered.files[rel] for rel in variant.files})
    else:
        materialized = {
            rel: data for rel, data in rendered.files.items() if rel not in _ROOT_FILES
        }
    previous = _previous(repo)
    clashes = sorted(
        rel for rel in materialized
        if (repo.root / rel).exists() and rel not in previous
    )
    if clashes:
        raise UsageError(
            f"select {variant.name}: {clashes[0]} exists in the repository root and was not "
            f"written by cogfleet select; the root must take {repo.rel(variant.family_dir)}'s "
            "files for the predictor to import its modules (move or rename that file)"
        )
    selection = Selection()
    _save_originals(repo, targets, _previous(repo, "root"))
    selection.removed = _remove_previous(repo, previous, set(materialized))
    for rel, data in {**targets, **materialized}.items():
        path = repo.root / rel
        with contextlib.suppress(OSError):
            if path.is_file() and path.read_bytes() == data:
                selection.written.append(rel)
                continue
        write_atomic(path, data)
        selection.written.append(rel)
    manifest = {
        "variant": variant.name,
        "files": {r: _digest(d) for r, d in materialized.items()},
        "root": {r: _digest(d) for r, d in targets.items()},
    }
    ensure_state_dir(repo.root / STATE_DIR)
    write_atomic(_manifest_path(repo), json.dumps(manifest, sort_keys=True).encode())
    ignore = repo.root / DOCKERIGNORE
    current = ignore.read_text(encoding="utf-8") if ignore.is_file() else ""
    updated = with_block(current, dockerignore_block(repo, variant, [*targets, *materialized]))
    if updated != current:
        write_atomic(ignore, updated.encode("utf-8"))
        selection.written.append(DOCKERIGNORE)
    return selection
