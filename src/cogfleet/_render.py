"""Render each variant's build folder from the family source and Jinja templates.

``.cogfleet/build/<variant>/`` receives the family's files, every ``*.j2`` rendered
without its suffix, ``cog.yaml`` and the variant's config as ``cog-safe-push.yaml``.

``cog.yaml`` comes from the variant's ``template`` (Jinja when it ends in ``.j2``, plain
text otherwise), else the family's own
``cog.yaml[.j2]``, else ``templates/cog.yaml.j2``; with an ``overlay`` that file is the
base, and the overlay is merged onto it as yq's ``*+`` would (see
:mod:`cogfleet._overlay`; a base ending in ``.j2`` is rendered first), or, with
``merge: concatenate``, appended to it as ``cat`` appends it. A variant's
``envsubst:`` values replace ``$NAME`` / ``${NAME}`` in that template or base, as an
adopted select script's ``envsubst < cog.yaml.tpl > cog.yaml`` did, its ``replace:``
values replace literal text there (``sed "s/MODEL_NAME/$1/g"``), and its ``files:``
are copied over the family's files of the same name (``cp predictors/$1.py predict.py``).

The family's files are what a ``cog build`` of its folder would take: its
``.dockerignore`` applies, and a family whose source is the repository root leaves out
the repo's own folders (configs, cogfleet state, other families), the files that make
its ``cog.yaml`` and what ``cogfleet select`` writes there.

Everything is rendered in memory first, so a template error writes nothing; files
whose bytes did not change are not rewritten; stale files go.

Every rendered file keeps, line by line, the template file and line it came from
(through ``{% include %}``, blocks and loops), so an error found in rendered text
(a config key, a ``cog.yaml`` problem) names the file and line the user wrote. The
Jinja side (the recording loader, compiled-template cache, line tracking and template
errors) is :mod:`cogfleet._templates`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from cogfleet._config import SafePushConfig, parse_config
from cogfleet._dockerignore import FILENAME as DOCKERIGNORE
from cogfleet._dockerignore import DockerIgnore, walk
from cogfleet._errors import ConfigError
from cogfleet._files import ensure_state_dir, write_atomic
from cogfleet._overlay import merge_overlay, source_line
from cogfleet._plugins import Plugins
from cogfleet._repo import (
    DEFAULT_TEMPLATE,
    SHELL_NAME,
    STATE_DIR,
    Repo,
    Variant,
)
from cogfleet._templates import (
    RecordingLoader,
    digest,
    find_template,
    rel_path,
    render_one,
    search_path,
    template_environment,
)

CONFIG_NAME = "cog-safe-push.yaml"
_SKIP_DIRS = frozenset(
    {"__pycache__", ".cog", ".ruff_cache", ".pytest_cache", ".mypy_cache", ".git"}
)
_SKIP_FILES = {"variants.yaml", ".DS_Store", DOCKERIGNORE}
#: Never model source when a family's source is the repository root: local state.
LOCAL_STATE = (STATE_DIR, ".git", ".venv", ".nox", ".tox")
# a layer of a merged cog.yaml: (file, text, where each line came from when rendered)
_Layer = tuple[str, str, list[tuple[str, int]] | None]


@dataclass
class Rendered:
    """The outcome of rendering one variant."""

    variant: Variant
    build_dir: Path
    files: dict[str, bytes]
    parse_config: Callable[[], SafePushConfig] = field(repr=False)
    reads: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # what the render depended on, for the up-to-date check (see ``_up_to_date``)
    digests: dict[str, str] = field(default_factory=dict, repr=False)
    resolved: dict[str, str | None] = field(default_factory=dict, repr=False)
    reused: bool = False  # the build folder was already up to date; nothing was rendered
    # (file, text, line origins) of a base and its overlay, from which cog.yaml was
    # merged: an error in cog.yaml then names the file and line the entry came from
    cog_layers: list[_Layer] = field(default_factory=list, repr=False)
    # rendered file -> for each of its lines, the [template file, line] it came from
    sources: dict[str, list[tuple[str, int]]] = field(default_factory=dict, repr=False)

    def source_position(self, rel: str, line: int | None) -> tuple[str, int | None]:
        """Where line ``line`` of the build folder's file ``rel`` was written by the user."""
        return source_position(self.sources, self.variant, rel, line)

    @functools.cached_property
    def config(self) -> SafePushConfig:
        """The variant's parsed config (parsed on first use when the render was reused)."""
        return self.parse_config()

    @property
    def model(self) -> str:
        return self.config.model


def source_position(
    sources: dict[str, list[tuple[str, int]]], variant: Variant, rel: str, line: int | None
) -> tuple[str, int | None]:
    """The (repo-relative file, line) the user wrote for ``line`` of build file ``rel``."""
    origins = sources.get(rel)
    if origins is None:
        return f"{STATE_DIR}/build/{variant.name}/{rel}", line
    if len(origins) == 1 and origins[0][1] == 0:  # copied as it is: line for line
        return origins[0][0], line
    if line is None or not 1 <= line <= len(origins):
        return origins[0][0], None
    return origins[line - 1]


def _context(variant: Variant, plugins: Plugins) -> dict[str, Any]:
    """What every template of ``variant`` sees."""
    context: dict[str, Any] = dict(plugins.template_variables(variant))
    context.update(variant.variables)
    context.update({"variant": variant.name, "family": variant.family})
    if variant.model is not None:
        context["model"] = variant.model
    return context


def config_model(repo: Repo, variant: Variant, plugins: Plugins) -> str | None:
    """The ``model:`` of the variant's rendered config, or ``None`` when it has none
    (or the config does not render: ``lint`` and ``render`` say why)."""
    if variant.model is not None:
        return variant.model
    rel = repo.rel(variant.config_path)
    env = template_environment(repo, variant, plugins.template_filters())
    try:
        text, _ = render_one(env, rel, rel, _context(variant, plugins), variant)
        data = yaml.safe_load(text)
    except (ConfigError, yaml.YAMLError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None


def render_in_memory(repo: Repo, variant: Variant, plugins: Plugins) -> Rendered:
    """Render ``variant`` without touching the disk (beyond reading sources)."""
    from cogfleet._config import _line_of

    context = _context(variant, plugins)
    env = template_environment(repo, variant, plugins.template_filters())
    loader = env.loader
    assert isinstance(loader, RecordingLoader)
    files: dict[str, bytes] = {}
    sources: dict[str, list[tuple[str, int]]] = {}
    explicit = variant.template is not None or variant.overlay is not None
    family_cog: str | None = None  # the family's own cog.yaml[.j2], relative to the family
    family_files = _family_files(repo, variant)
    plain = {p.relative_to(variant.family_dir).as_posix() for p in family_files}
    for path in family_files:
        rel_in_family = path.relative_to(variant.family_dir).as_posix()
        twin = rel_in_family[: -len(".j2")] if rel_in_family.endswith(".j2") else None
        if twin in plain and twin != "cog.yaml":  # (cog.yaml[.j2] is chosen below)
            # both would be the build folder's file: which one wins is no choice to guess
            raise ConfigError(rel_path(path, repo.root), f"renders {twin}, and "
                              f"{rel_path(variant.family_dir / twin, repo.root)} is there too; "
                              "keep one of them")
        if rel_in_family in ("cog.yaml", "cog.yaml.j2"):
            family_cog = family_cog or rel_in_family
            if explicit:
                continue  # the variant names where its cog.yaml comes from
        loader.reads.add(rel_path(path, repo.root))
        if path.name.endswith(".j2"):
            out_name = rel_in_family[: -len(".j2")]
            text, sources[out_name] = render_one(
                env, rel_in_family, rel_path(path, repo.root), context, variant
            )
            files[out_name] = text.encode("utf-8")
        else:
            out_name = rel_in_family
            files[out_name] = path.read_bytes()
            loader.digests[rel_path(path, repo.root)] = digest(files[out_name])
            sources[out_name] = [(rel_path(path, repo.root), 0)]  # line for line
    for out_name, source in variant.files.items():  # what the select script copied
        files[out_name] = _read_plain(repo, loader, repo.root / source)
        sources[out_name] = [(source, 0)]
    dockerignore = variant.family_dir / DOCKERIGNORE
    if dockerignore.is_file():  # decides which family files are copied
        _read_plain(repo, loader, dockerignore)
    cog_layers: list[_Layer] = []
    if explicit or family_cog is None:
        files["cog.yaml"], cog_origins = _cog_yaml(
            repo, variant, env, context, family_cog, cog_layers
        )
        if cog_origins is not None:
            sources["cog.yaml"] = cog_origins
    config_rel = repo.rel(variant.config_path)
    config_text, sources[CONFIG_NAME] = render_one(env, config_rel, config_rel, context, variant)

    def at_source(exc: ConfigError) -> ConfigError:
        where, line = source_position(sources, variant, CONFIG_NAME, exc.line)
        return type(exc)(where, exc.message, line=line)

    try:
        config = parse_config(config_text, config_rel, plugins.checkers(), repo.root)
    except ConfigError as exc:
        raise at_source(exc) from None
    if variant.model is not None and config.model != variant.model:
        raise at_source(ConfigError(
            config_rel,
            f"model: {config.model!r} differs from {variant.model!r} declared for variant "
            f"{variant.name!r} in {repo.rel(variant.variants_file)}",
            line=_line_of(config_text, ("model",)),
        ))
    try:
        config = _with_official_model(repo, variant, config, config_rel, config_text)
    except ConfigError as exc:
        raise at_source(exc) from None
    files[CONFIG_NAME] = config_text.encode("utf-8")
    rendered = Rendered(
        variant=variant,
        build_dir=repo.build_root / variant.name,
        files=files,
        parse_config=lambda: config,
        reads=set(loader.reads),
        digests=dict(loader.digests),
        resolved=dict(loader.resolved),
        cog_layers=cog_layers,
        sources=sources,
    )
    return rendered


def _read_plain(repo: Repo, loader: RecordingLoader, path: Path) -> bytes:
    """Read a file that is not a template, recording it as read (and its digest)."""
    rel = rel_path(path, repo.root)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(rel, f"cannot read: {exc.strerror}") from None
    loader.reads.add(rel)
    loader.digests[rel] = digest(data)
    return data


def _text(data: bytes, rel: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(rel, f"not UTF-8 text (byte {exc.start})") from None


def _cog_yaml(
    repo: Repo,
    variant: Variant,
    env: jinja2.Environment,
    context: dict[str, Any],
    family_cog: str | None,
    layers: list[_Layer],
) -> tuple[bytes, list[tuple[str, int]] | None]:
    """The variant's cog.yaml: its template, or its base with its overlay merged on.

    Returns the bytes and, for a template, where each line came from. With an overlay,
    ``layers`` receives the base and the overlay as ``(file, text, line origins)``
    (origins for a rendered ``.j2`` layer, else ``None``: the text is the file's), so
    an error in the merged file can be traced to the layer and line it came from.
    """
    loader = env.loader
    assert isinstance(loader, RecordingLoader)
    if variant.template is not None:
        base_name, base_rel = variant.template, variant.template
    elif variant.overlay is not None and family_cog is not None:
        base_name = family_cog
        base_rel = rel_path(variant.family_dir / family_cog, repo.root)
    else:
        base_name = base_rel = DEFAULT_TEMPLATE
        if not (repo.root / DEFAULT_TEMPLATE).is_file():
            raise ConfigError(
                repo.rel(variant.variants_file),
                f"variant {variant.name!r}: no cog.yaml template ({DEFAULT_TEMPLATE} does not "
                "exist)",
            )
    if variant.overlay is None:
        if base_rel.endswith(".j2"):
            text, origins = render_one(env, base_name, base_rel, context, variant)
        else:  # plain text, as a select script copies it (a run: line's ${#X} stays)
            text = _text(_read_plain(repo, loader, repo.root / base_rel), base_rel)
            origins = [(base_rel, 0)]
        text = replace_literal(envsubst(text, variant.envsubst), variant.replace)
        return text.encode("utf-8"), origins
    # with an overlay, only a .j2 base is a template (yq reads the base as plain YAML)
    base_origins: list[tuple[str, int]] | None = None
    if base_rel.endswith(".j2"):
        base_text, base_origins = render_one(env, base_name, base_rel, context, variant)
    else:
        base_text = _text(_read_plain(repo, loader, repo.root / base_rel), base_rel)
    base_text = replace_literal(envsubst(base_text, variant.envsubst), variant.replace)
    overlay_rel = variant.overlay
    overlay_origins: list[tuple[str, int]] | None = None
    if overlay_rel.endswith(".j2"):
        overlay_text, overlay_origins = render_one(
            env, overlay_rel, overlay_rel, context, variant
        )
    else:
        overlay_text = _text(_read_plain(repo, loader, repo.root / overlay_rel), overlay_rel)
    if variant.merge == "concatenate":  # `cat BASE > cog.yaml; cat OVERLAY >> cog.yaml`
        return (base_text + overlay_text).encode("utf-8"), _joined_origins(
            (base_text, base_origins or _plain_origins(base_rel, base_text)),
            (overlay_text, overlay_origins or _plain_origins(overlay_rel, overlay_text)),
        )
    merged = merge_overlay(base_text, overlay_text, base_rel, overlay_rel)
    layers.extend([(base_rel, base_text, base_origins),
                   (overlay_rel, overlay_text, overlay_origins)])
    return merged.encode("utf-8"), None


def _plain_origins(rel: str, text: str) -> list[tuple[str, int]]:
    """Line ``n`` of ``text`` came from line ``n`` of ``rel``."""
    return [(rel, n) for n in range(1, text.count("\n") + 2)]


def _joined_origins(
    first: tuple[str, list[tuple[str, int]]], second: tuple[str, list[tuple[str, int]]]
) -> list[tuple[str, int]]:
    """Where each line of ``first[0] + second[0]`` came from (each with its origins)."""
    (text, origins), (_, more) = first, second
    lines = text.count("\n")  # whole lines of the first text; a partial one shares
    head = list(origins[:lines])
    partial = text[text.rfind("\n") + 1 :]
    joint = origins[lines] if partial.strip() and len(origins) > lines else more[0]
    return [*head, joint, *more[1:]]


_SHELL_VAR = re.compile(rf"\$(?:\{{({SHELL_NAME})\}}|({SHELL_NAME}))")


def shell_variables(text: str) -> set[str]:
    """The names ``text`` refers to as ``$NAME`` or ``${NAME}``."""
    return {a or b for a, b in _SHELL_VAR.findall(text)}


def envsubst(text: str, values: Mapping[str, str]) -> str:
    """``text`` with ``$NAME`` and ``${NAME}`` replaced for the names in ``values``.

    What ``envsubst`` does to a select script's template, for the variables the script
    sets; any other ``$NAME`` (a ``run:`` line's ``$PATH``) is left as written.
    """
    if not values:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _SHELL_VAR.sub(replace, text)


def replace_literal(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every occurrence of each key of ``values`` replaced by its value.

    What an adopted select script's ``sed "s/MODEL_NAME/$1/g"`` (or a heredoc's
    ``$MODEL``) did to its template: one pass, longest key first.
    """
    if not values:
        return text
    keys = sorted(values, key=len, reverse=True)
    return re.sub("|".join(map(re.escape, keys)), lambda m: values[m.group(0)], text)


def _left_out(repo: Repo, variant: Variant) -> set[str]:
    """Paths (relative to the family folder) that are never copied as family files."""
    out: set[str] = set()
    family_dir = variant.family_dir
    for other in repo.variants.values():
        if other.family_dir != family_dir:
            continue
        # they make cog.yaml or a file of their variant's (or are its config), not the
        # family's image
        for rel in (other.template, other.overlay, *other.files.values(), other.config_path):
            if rel is not None:
                with contextlib.suppress(ValueError):
                    out.add((repo.root / rel).relative_to(family_dir).as_posix())
    if family_dir == repo.root:
        out.update(LOCAL_STATE)
        out.update({repo.settings.configs_dir, *repo.own_dirs()})
        out.update({"cog.yaml", CONFIG_NAME})  # what `cogfleet select` writes
    return out


def _with_official_model(
    repo: Repo, variant: Variant, config: SafePushConfig, config_rel: str, config_text: str
) -> SafePushConfig:
    """The config with the variant's ``official_model`` (variants.yaml) in it."""
    from cogfleet._config import _line_of

    declared = variant.official_model
    if declared is None:
        return config
    if config.official_model is not None and config.official_model != declared:
        raise ConfigError(
            config_rel,
            f"official_model: {config.official_model!r} differs from {declared!r} declared "
            f"for variant {variant.name!r} in {repo.rel(variant.variants_file)}",
            line=_line_of(config_text, ("official_model",)),
        )
    config.official_model = declared
    return config


def _family_files(repo: Repo, variant: Variant) -> list[Path]:
    """The family's files a render copies or renders, in a stable order."""
    left_out = _left_out(repo, variant)
    ignore = DockerIgnore.read(variant.family_dir)
    found = []
    for rel in walk(variant.family_dir, ignore, _SKIP_DIRS):
        parts = rel.split("/")
        if any("/".join(parts[: n + 1]) in left_out for n in range(len(parts))):
            continue
        name = parts[-1]
        if name in _SKIP_FILES or name.endswith((".pyc", ".pyo")):
            continue
        found.append(variant.family_dir / rel)
    return found


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
    :func:`_up_to_date`) is reused as it is.
    """
    reused = _up_to_date(repo, variant, plugins)
    if reused is not None:
        return reused
    return _write(repo, render_in_memory(repo, variant, plugins), plugins)


def _write(repo: Repo, rendered: Rendered, plugins: Plugins) -> Rendered:
    from cogfleet._cogyaml import validate_cog_yaml

    variant = rendered.variant
    manifest = _manifest_path(repo, variant)
    cog_version = repo.pin_for(variant).version
    checked = _schema_checked(manifest, _variant_key(repo, variant, plugins), rendered, cog_version)
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
        where, line = rendered.source_position("cog.yaml", exc.line)
        layers = rendered.cog_layers
        if layers and exc.line:
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
    _save_manifest(repo, rendered, plugins)
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
        reused = list(pool.map(lambda v: _up_to_date(repo, v, plugins), variants))
        # every other variant renders in memory first, so a bad template anywhere writes nothing
        stale = [v for v, r in zip(variants, reused, strict=True) if r is None]
        in_memory = list(pool.map(lambda v: render_in_memory(repo, v, plugins), stale))
        if check is not None:
            for one in [r for r in reused if r is not None] + in_memory:
                check(one)
        written = iter(list(pool.map(lambda r: _write(repo, r, plugins), in_memory)))
    return [r if r is not None else next(written) for r in reused]


# --- reusing an up-to-date build folder ------------------------------------------------
#
# A render is a pure function of what it read, so after a successful render cogfleet
# keeps a manifest (.cogfleet/cache/render/<variant>.json) of its inputs and outputs.
# The next render of the variant reuses the build folder as it is when all of these
# still hold, and renders (and validates) afresh otherwise:
#
# - the same cogfleet code and plugins (every loaded plugin module's file, by size and
#   modification time), checkers and template filters;
# - the same variant declaration and plugin template variables;
# - every template name resolves to the same file as before (misses too), the family
#   folder holds the same files, and every file read has the same bytes (sha256);
# - the build folder holds exactly the files written, with the same bytes.
#
# The config's parse is deferred to the first use of ``Rendered.config``: it passed
# with the same text and the same checkers when the manifest was written.

_MANIFEST_VERSION = 2
_CODE_KEYS: weakref.WeakKeyDictionary[Plugins, str] = weakref.WeakKeyDictionary()
_CODE_KEYS_LOCK = threading.Lock()


def _manifest_path(repo: Repo, variant: Variant) -> Path:
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


def _variant_key(repo: Repo, variant: Variant, plugins: Plugins) -> str:
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


def _schema_checked(
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


def _save_manifest(repo: Repo, rendered: Rendered, plugins: Plugins) -> None:
    variant = rendered.variant
    manifest = {
        "cog_version": repo.pin_for(variant).version,
        "key": _variant_key(repo, variant, plugins),
        "family": [rel_path(p, repo.root) for p in _family_files(repo, variant)],
        "resolved": rendered.resolved,
        "inputs": rendered.digests,
        "outputs": {rel: digest(data) for rel, data in rendered.files.items()},
        "warnings": rendered.warnings,
        "config": rendered.files[CONFIG_NAME].decode("utf-8"),
        "sources": rendered.sources,
    }
    path = _manifest_path(repo, variant)
    with contextlib.suppress(OSError):  # no manifest only means the next render does the work
        write_atomic(path, json.dumps(manifest, sort_keys=True).encode("utf-8"))


def _up_to_date(repo: Repo, variant: Variant, plugins: Plugins) -> Rendered | None:
    """The variant's existing build folder when nothing it was rendered from changed."""
    try:
        manifest = json.loads(_manifest_path(repo, variant).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != _variant_key(
        repo, variant, plugins
    ):
        return None
    try:
        if manifest["family"] != [rel_path(p, repo.root) for p in _family_files(repo, variant)]:
            return None
        searchpath = [str(p) for p in search_path(repo, variant)]
        for name, rel in manifest["resolved"].items():
            found = find_template(searchpath, name)
            if (found and rel_path(Path(os.path.normpath(found)), repo.root)) != rel:
                return None
        for rel, expected in manifest["inputs"].items():
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
        parse_config=lambda: _with_official_model(
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
