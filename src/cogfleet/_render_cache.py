"""Reuse a variant's build folder when nothing it was rendered from changed.

A render is a pure function of what it read, so after a successful render cogfleet
keeps a manifest (.cogfleet/cache/render/<variant>.json) of its inputs and outputs.
The next render of the variant reuses the build folder as it is when all of these
still hold, and renders (and validates) afresh otherwise:

- the same cogfleet code and plugins (every loaded plugin module's file, by size and
  modification time), checkers and template filters;
- the same variant declaration and plugin template variables;
- every template name resolves to the same file as before (misses too), the family
  folder holds the same files, and every file read has the same bytes (sha256);
- the build folder holds exactly the files written, with the same bytes.

The config's parse is deferred to the first use of ``Rendered.config``: it passed
with the same text and the same checkers when the manifest was written.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from pathlib import Path

from cogfleet._config import SafePushConfig, parse_config
from cogfleet._errors import ConfigError
from cogfleet._files import write_atomic
from cogfleet._plugins import Plugins
from cogfleet._render import (
    CONFIG_NAME,
    Rendered,
    family_files,
    source_position,
    with_official_model,
)
from cogfleet._repo import STATE_DIR, Repo, Variant
from cogfleet._templates import digest, find_template, rel_path, search_path

_MANIFEST_VERSION = 2
_CODE_KEYS: weakref.WeakKeyDictionary[Plugins, str] = weakref.WeakKeyDictionary()
_CODE_KEYS_LOCK = threading.Lock()


def manifest_path(repo: Repo, variant: Variant) -> Path:
    return repo.root / STATE_DIR / "cache" / "render" / f"{variant.name}.json"


def _code_key(plugins: Plugins) -> str:
    """A fingerprint of the code that renders: cogfleet itself and every loaded plugin."""
    with _CODE_KEYS_LOCK:
        key = _CODE_KEYS.get(plugins)
        if key is not None:
            return key
        import cogfleet

        files = set(Path(cogfleet.__file__).parent.rglob("*.py"))
        described = []
        for info in plugins.describe():
            module_file = getattr(plugins.pm.get_plugin(info.name), "__file__", None)
            if module_file:
                files.add(Path(module_file))
            described.append([info.name, info.source, list(info.hooks)])
        stats = []
        for path in sorted(files):
            try:
                st = path.stat()
            except OSError:
                continue
            stats.append([str(path), st.st_mtime_ns, st.st_size])
        payload = {
            "version": _MANIFEST_VERSION,
            "cogfleet": cogfleet.__version__,
            "files": stats,
            "plugins": described,
            "checkers": sorted(plugins.checkers()),
            "filters": sorted(plugins.template_filters()),
        }
        key = digest(json.dumps(payload, sort_keys=True).encode())
        _CODE_KEYS[plugins] = key
        return key


def variant_key(repo: Repo, variant: Variant, plugins: Plugins) -> str:
    payload = {
        "code": _code_key(plugins),
        "root": str(repo.root),
        # everything the variant declares (its template, overlay, merge, envsubst
        # values, copied files...), so a changed declaration is rendered again
        "variant": [
            variant.to_json(repo.root), str(variant.family_dir), str(variant.config_path),
            repo.settings.configs_dir,
            repo.pin_for(variant).version,  # cog.yaml is validated for the pinned Cog
        ],
        "template_variables": plugins.template_variables(variant),
    }
    return digest(json.dumps(payload, sort_keys=True, default=repr).encode())


def schema_checked(
    manifest: Path, key: str, rendered: Rendered, cog_version: str | None
) -> bool:
    """Whether the last successful render of this variant, by the same code and
    declaration, wrote the same cog.yaml under the same Cog (so it passed Cog's JSON
    Schema, and would again)."""
    try:
        previous = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    text = rendered.files.get("cog.yaml")
    if text is None or not isinstance(previous, dict):
        return False
    outputs = previous.get("outputs")
    return (
        previous.get("key") == key
        and previous.get("cog_version") == cog_version
        and isinstance(outputs, dict)
        and outputs.get("cog.yaml") == digest(text)
    )


def save_manifest(repo: Repo, rendered: Rendered, plugins: Plugins) -> None:
    variant = rendered.variant
    manifest = {
        "cog_version": repo.pin_for(variant).version,
        "key": variant_key(repo, variant, plugins),
        "family": [rel_path(p, repo.root) for p in family_files(repo, variant)],
        "resolved": rendered.resolved,
        "inputs": rendered.digests,
        "outputs": {rel: digest(data) for rel, data in rendered.files.items()},
        "warnings": rendered.warnings,
        "config": rendered.files[CONFIG_NAME].decode("utf-8"),
        "sources": rendered.sources,
    }
    path = manifest_path(repo, variant)
    with contextlib.suppress(OSError):  # no manifest only means the next render does the work
        write_atomic(path, json.dumps(manifest, sort_keys=True).encode("utf-8"))


def up_to_date(repo: Repo, variant: Variant, plugins: Plugins) -> Rendered | None:
    """The variant's existing build folder when nothing it was rendered from changed."""
    try:
        manifest = json.loads(manifest_path(repo, variant).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != variant_key(
        repo, variant, plugins
    ):
        return None
    try:
        if manifest["family"] != [rel_path(p, repo.root) for p in family_files(repo, variant)]:
            return None
        searchpath = [str(p) for p in search_path(repo, variant)]
        for name, rel in manifest["resolved"].items():
            found = find_template(searchpath, name)
            if (found and rel_path(Path(os.path.normpath(found)), repo.root)) != rel:
                return None
        for rel, expected in manifest["inputs"].items():
            if not (repo.root / rel).is_file():  # gone, or a FIFO: the render says which
                return None
            if digest((repo.root / rel).read_bytes()) != expected:
                return None
        build_dir = repo.build_root / variant.name
        present = {
            (Path(d) / f).relative_to(build_dir).as_posix()
            for d, _, names in os.walk(build_dir) for f in names
        }
        outputs: dict[str, str] = manifest["outputs"]
        if present != set(outputs):
            return None
        files = {}
        for rel, expected in outputs.items():
            data = (build_dir / rel).read_bytes()
            if digest(data) != expected:
                return None
            files[rel] = data
        config_text: str = manifest["config"]
        warnings = list(manifest["warnings"])
        sources = {rel: [(str(f), int(n)) for f, n in lines]
                   for rel, lines in manifest["sources"].items()}
    except (OSError, KeyError, TypeError, AttributeError, ValueError):
        return None
    config_rel = repo.rel(variant.config_path)
    return Rendered(
        variant=variant,
        build_dir=build_dir,
        files=files,
        parse_config=lambda: with_official_model(
            repo, variant, _parse_at_source(config_text, config_rel, plugins, sources, variant),
            config_rel, config_text,
        ),
        reads=set(manifest["inputs"]),
        warnings=warnings,
        digests=dict(manifest["inputs"]),
        resolved=dict(manifest["resolved"]),
        reused=True,
        sources=sources,
    )


def _parse_at_source(
    text: str, config_rel: str, plugins: Plugins,
    sources: dict[str, list[tuple[str, int]]], variant: Variant,
) -> SafePushConfig:
    try:
        return parse_config(text, config_rel, plugins.checkers())
    except ConfigError as exc:
        where, line = source_position(sources, variant, CONFIG_NAME, exc.line)
        raise type(exc)(where, exc.message, line=line) from None
