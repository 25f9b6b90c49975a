"""``cogfleet select``: the model-ci-template ``script/select-model`` contract.

Writes ``cog.yaml`` and ``cog-safe-push.yaml`` for one variant into the repo root, so
tools that expect a single Cog folder (``cog push``, ``cog-safe-push``) work on the
monorepo. File references in ``cog.yaml`` point into the variant's build folder.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cogfleet._files import write_atomic
from cogfleet._plugins import Plugins
from cogfleet._render import CONFIG_NAME, render_variant
from cogfleet._repo import Repo, Variant


def _rebase_ref(ref: str, prefix: str) -> str:
    path, sep, name = ref.partition(":")
    return f"{prefix}{path}{sep}{name}"


def select_variant(repo: Repo, variant: Variant, plugins: Plugins) -> list[Path]:
    """Render ``variant`` and write the root ``cog.yaml`` and ``cog-safe-push.yaml``."""
    rendered = render_variant(repo, variant, plugins)
    prefix = f"{repo.rel(rendered.build_dir)}/"
    cog = yaml.safe_load(rendered.files["cog.yaml"].decode("utf-8")) or {}
    for key in ("run", "predict", "train"):
        if isinstance(cog.get(key), str):
            cog[key] = _rebase_ref(cog[key], prefix)
    build = cog.get("build") or {}
    if isinstance(build.get("python_requirements"), str):
        build["python_requirements"] = prefix + build["python_requirements"]
    header = (
        f"# written by `cogfleet select {variant.name}` from {repo.rel(variant.family_dir)}; "
        "do not edit\n"
    )
    # python_version must stay a string ("3.10" is not 3.1)
    if "python_version" in build:
        build["python_version"] = str(build["python_version"])
    cog_text = header + yaml.safe_dump(cog, sort_keys=False, default_flow_style=False)
    targets = {
        repo.root / "cog.yaml": cog_text.encode("utf-8"),
        repo.root / CONFIG_NAME: rendered.files[CONFIG_NAME],
    }
    for path, data in targets.items():
        write_atomic(path, data)
    return list(targets)
