"""Built-in lint: ruff on the predictor and trainer sources, as the repository lints them.

The files a variant's ``cog.yaml`` runs (``run``/``predict``/``train``) are linted at
their source in the family folder, with the ruff configuration ruff finds for each
(see :mod:`cogfleet._ruff`); a source rendered from ``*.j2`` is linted as rendered and
reported against the template. ``cog.yaml`` and the config are validated while
rendering (see ``cogfleet._render``), so by the time this hook runs they are known good.
"""

from __future__ import annotations

from pathlib import Path

from cogfleet import hookimpl
from cogfleet._repo import STATE_DIR, Variant
from cogfleet._ruff import Source, entry_files, lint_sources


def root_of(variant: Variant, build_dir: Path) -> Path:
    """The repository root: a build folder is ``<root>/.cogfleet/build/<variant>``.

    Paths in messages are relative to it (the family folder for any other build folder).
    """
    build_root = build_dir.resolve().parent
    root = build_root.parent.parent
    if (build_root.name, build_root.parent.name) == ("build", STATE_DIR) and (
        variant.family_dir.resolve().is_relative_to(root)
    ):
        return root
    return variant.family_dir


def variant_sources(variant: Variant, build_dir: Path, root: Path) -> list[Source]:
    """The sources of the files the variant runs: plain files, or the templates of them."""
    sources = []
    for rel in entry_files(build_dir / "cog.yaml"):
        if rel in variant.files:  # copied from a file of its own: lint that one
            sources.append(Source(shown=variant.files[rel], path=variant.files[rel]))
            continue
        plain = variant.family_dir / rel
        template = variant.family_dir / f"{rel}.j2"
        shown = plain.relative_to(root).as_posix()
        if plain.is_file():
            sources.append(Source(shown=shown, path=shown))
        elif template.is_file() and (build_dir / rel).is_file():
            sources.append(Source(
                shown=f"{shown}.j2",
                path=shown,
                template_text=template.read_text(encoding="utf-8", errors="replace"),
                rendered=(build_dir / rel).read_text(encoding="utf-8", errors="replace"),
            ))
    return sources


@hookimpl
def cogfleet_lint(variant: Variant, build_dir: Path) -> list[str]:
    """ruff with the repository's own configuration on the run/predict/train sources."""
    root = root_of(variant, build_dir)
    return lint_sources(root, variant_sources(variant, build_dir, root))
