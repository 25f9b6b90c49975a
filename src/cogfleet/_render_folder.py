"""Write each variant's build folder, ``.cogfleet/build/<variant>/``, from its render.

A variant is rendered in memory first (:mod:`cogfleet._render`), so a template error
writes nothing; then its folder is made to hold exactly the rendered files: files whose
bytes did not change are not rewritten, stale files go, and the folder's ``cog.yaml`` is
validated for the pinned Cog (an invalid one removes the folder again). A folder that is
up to date is reused as it is (:mod:`cogfleet._render_cache`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cogfleet._errors import ConfigError
from cogfleet._files import ensure_state_dir, write_atomic
from cogfleet._overlay import source_line
from cogfleet._plugins import Plugins
from cogfleet._render import Rendered, render_in_memory
from cogfleet._render_cache import (
    manifest_path,
    save_manifest,
    schema_checked,
    up_to_date,
    variant_key,
)
from cogfleet._repo import STATE_DIR, Repo, Variant


def _sync(build_dir: Path, files: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """Make ``build_dir`` hold exactly ``files``, rewriting only what changed."""
    written: list[str] = []
    removed: list[str] = []
    build_dir.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        target = build_dir / rel
        with contextlib.suppress(OSError):  # unreadable: rewrite it
            if target.is_file() and target.read_bytes() == data:
                continue
        write_atomic(target, data)
        written.append(rel)
    for dirpath, dirnames, filenames in os.walk(build_dir, topdown=False):
        for fname in filenames:
            path = Path(dirpath) / fname
            rel = path.relative_to(build_dir).as_posix()
            if rel not in files:
                path.unlink()
                removed.append(rel)
        for dname in dirnames:
            sub = Path(dirpath) / dname
            if not any(sub.iterdir()):
                sub.rmdir()
    return written, sorted(removed)


def render_variant(repo: Repo, variant: Variant, plugins: Plugins) -> Rendered:
    """Render ``variant`` into its build folder and validate its ``cog.yaml``.

    An invalid ``cog.yaml`` removes the build folder again, so nothing invalid is
    left behind to be pushed. A build folder that is up to date (see
    :mod:`cogfleet._render_cache`) is reused as it is.
    """
    reused = up_to_date(repo, variant, plugins)
    if reused is not None:
        return reused
    return _write(repo, render_in_memory(repo, variant, plugins), plugins)


def _write(repo: Repo, rendered: Rendered, plugins: Plugins) -> Rendered:
    from cogfleet._cogyaml import validate_cog_yaml

    variant = rendered.variant
    manifest = manifest_path(repo, variant)
    cog_version = repo.pin_for(variant).version
    checked = schema_checked(manifest, variant_key(repo, variant, plugins), rendered, cog_version)
    # gone before the folder changes: a crash mid-write must not leave a stale "up to date"
    manifest.unlink(missing_ok=True)
    ensure_state_dir(repo.root / STATE_DIR)
    rendered.written, rendered.removed = _sync(rendered.build_dir, rendered.files)
    try:
        rendered.warnings = validate_cog_yaml(
            rendered.build_dir / "cog.yaml", rendered.build_dir,
            cog_version=cog_version, schema_checked=checked,
        )  # fmt: skip
    except ConfigError as exc:
        shutil.rmtree(rendered.build_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # an empty .cogfleet/build/ is no build either
            rendered.build_dir.parent.rmdir()
        # the error is in cog.yaml or in a file it names (its requirements)
        rel = "cog.yaml"
        if exc.path and Path(exc.path).is_relative_to(rendered.build_dir):
            rel = Path(exc.path).relative_to(rendered.build_dir).as_posix()
        where, line = rendered.source_position(rel, exc.line)
        layers = rendered.cog_layers
        if layers and exc.line and rel == "cog.yaml":
            found = source_line(rendered.files["cog.yaml"].decode("utf-8"), exc.line,
                                [(str(i), text) for i, (_, text, _) in enumerate(layers)])
            if found is not None:
                layer, layer_line = found
                file, _, origins = layers[int(layer)]
                where, line = file, layer_line
                if origins is not None and 1 <= layer_line <= len(origins):
                    where, line = origins[layer_line - 1]
                exc.message += f" (merged into the cog.yaml of variant {variant.name!r})"
        raise ConfigError(where, exc.message, line=line) from None
    save_manifest(repo, rendered, plugins)
    return rendered


def render_variants(
    repo: Repo, variants: list[Variant], plugins: Plugins, *, jobs: int | None = None,
    check: Callable[[Rendered], None] | None = None,
) -> list[Rendered]:
    """Render several variants side by side (each into its own folder), in input order.

    ``check`` (the command's own checks of each variant, such as its flags against the
    config) runs on every variant once all are rendered in memory, before any folder
    is written: an error it raises leaves nothing behind either.
    """
    workers = jobs or min(8, max(1, len(variants)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reused = list(pool.map(lambda v: up_to_date(repo, v, plugins), variants))
        # every other variant renders in memory first, so a bad template anywhere writes nothing
        stale = [v for v, r in zip(variants, reused, strict=True) if r is None]
        in_memory = list(pool.map(lambda v: render_in_memory(repo, v, plugins), stale))
        if check is not None:
            for one in [r for r in reused if r is not None] + in_memory:
                check(one)
        written = iter(list(pool.map(lambda r: _write(repo, r, plugins), in_memory)))
    return [r if r is not None else next(written) for r in reused]
