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
``.dockerignore`` applies. A family whose source is the repository root (an adopted
select-script repo) takes what ``cog build`` of the root takes after the select script,
as it is (its templates, overlays, configs and every variant's files too; no ``*.j2``
there is rendered unless a variant names it), less cogfleet's own: its state and
folders, ``variants.yaml``, the ``[tool.cogfleet]`` table init added to
``pyproject.toml``, and the ``cog.yaml`` and config the render writes.

Everything is rendered in memory here, so a template error writes nothing; writing
the build folder (and reusing one that is up to date) is :mod:`cogfleet._render_folder`.

Every rendered file keeps, line by line, the template file and line it came from
(through ``{% include %}``, blocks and loops), so an error found in rendered text
(a config key, a ``cog.yaml`` problem) names the file and line the user wrote. The
Jinja side (the recording loader, compiled-template cache, line tracking and template
errors) is :mod:`cogfleet._templates`.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from cogfleet._config import SafePushConfig, parse_config
from cogfleet._dockerignore import FILENAME as DOCKERIGNORE
from cogfleet._dockerignore import DockerIgnore, walk, without_select_block
from cogfleet._errors import ConfigError
from cogfleet._files import check_readable
from cogfleet._overlay import merge_overlay
from cogfleet._plugins import Plugins
from cogfleet._repo import (
    DEFAULT_TEMPLATE,
    JINJA_OPTIONS,
    STATE_DIR,
    VARIANTS_FILE,
    Repo,
    Variant,
)
from cogfleet._templates import (
    RecordingLoader,
    digest,
    rel_path,
    render_one,
    template_environment,
)
from cogfleet._variant_values import SHELL_NAME
from cogfleet._yaml import load_yaml_text

CONFIG_NAME = "cog-safe-push.yaml"
PYPROJECT = "pyproject.toml"
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
    # what the render depended on, for the up-to-date check (:mod:`cogfleet._render_cache`)
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
        data = load_yaml_text(text, rel)
    except ConfigError:
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
    sources_in_family = family_files(repo, variant)
    plain = {p.relative_to(variant.family_dir).as_posix() for p in sources_in_family}
    # at the root, only the files a variant names are templates: Cog sends the rest as is
    at_root = variant.family_dir == repo.root
    passengers = _of_other_variants(repo, variant) if at_root else set()
    for path in sources_in_family:
        rel_in_family = path.relative_to(variant.family_dir).as_posix()
        twin = rel_in_family[: -len(".j2")] if rel_in_family.endswith(".j2") else None
        if twin in plain and twin != "cog.yaml" and not at_root:  # (cog.yaml: see below)
            # both would be the build folder's file: which one wins is no choice to guess
            raise ConfigError(rel_path(path, repo.root), f"renders {twin}, and "
                              f"{rel_path(variant.family_dir / twin, repo.root)} is there too; "
                              "keep one of them")
        if rel_in_family in ("cog.yaml", "cog.yaml.j2"):
            family_cog = family_cog or rel_in_family
            if explicit and not at_root:
                continue  # the variant names where its cog.yaml comes from
        if rel_in_family not in passengers:  # in the image, but no change of this variant's
            loader.reads.add(rel_path(path, repo.root))
        if path.name.endswith(".j2") and not at_root:
            out_name = rel_in_family[: -len(".j2")]
            text, sources[out_name] = render_one(
                env, rel_in_family, rel_path(path, repo.root), context, variant
            )
            files[out_name] = text.encode("utf-8")
        else:
            out_name = rel_in_family
            data = path.read_bytes()
            loader.digests[rel_path(path, repo.root)] = digest(data)
            if at_root and out_name == PYPROJECT:
                data = without_cogfleet_table(data)
                if not data.strip():
                    continue  # written by `cogfleet init`: not the model's
            if at_root and out_name == DOCKERIGNORE:
                data = without_select_block(data.decode("utf-8", "replace")).encode("utf-8")
                if not data:
                    continue  # only select's block: the user has none
            files[out_name] = data
            sources[out_name] = [(rel_path(path, repo.root), 0)]  # line for line
    adopted = _AdoptedJinja(repo, variant, plugins, context, loader)
    for out_name, source in variant.files.items():  # what the select script copied
        if source in variant.jinja_templates:  # or rendered with jinja2
            text, sources[out_name] = adopted.render(source)
            files[out_name] = text.encode("utf-8")
            continue
        files[out_name] = _read_plain(repo, loader, repo.root / source)
        sources[out_name] = [(source, 0)]
    if at_root and DOCKERIGNORE in variant.files:  # the select script writes one per variant
        own = DockerIgnore(files[DOCKERIGNORE].decode("utf-8", "replace").splitlines())
        for rel in [r for r in files if r not in variant.files and own.excludes(r)]:
            del files[rel]
            sources.pop(rel, None)
    dockerignore = variant.family_dir / DOCKERIGNORE
    if dockerignore.is_file():  # decides which family files are copied
        _read_plain(repo, loader, dockerignore)
    cog_layers: list[_Layer] = []
    if explicit or family_cog is None:
        files["cog.yaml"], cog_origins = _cog_yaml(
            repo, variant, env, context, family_cog, cog_layers, adopted
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
        config = with_official_model(repo, variant, config, config_rel, config_text)
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


class _AdoptedJinja:
    """Renders the repo files ``jinja:`` names as Jinja templates, with its options, in an
    environment of their own that records what it reads in the variant's loader."""

    def __init__(
        self, repo: Repo, variant: Variant, plugins: Plugins, context: dict[str, Any],
        loader: RecordingLoader,
    ) -> None:
        self.repo, self.variant, self.plugins = repo, variant, plugins
        self.context, self.loader = context, loader
        self.env: jinja2.Environment | None = None

    def render(self, rel: str) -> tuple[str, list[tuple[str, int]]]:
        if self.env is None:
            self.env = template_environment(
                self.repo, self.variant, self.plugins.template_filters(),
                options={**JINJA_OPTIONS, **self.variant.jinja_options},
            )
        own = self.env.loader
        assert isinstance(own, RecordingLoader)
        try:
            return render_one(self.env, rel, rel, self.context, self.variant)
        finally:
            self.loader.reads |= own.reads
            self.loader.digests.update(own.digests)
            self.loader.resolved.update(own.resolved)


def _read_plain(repo: Repo, loader: RecordingLoader, path: Path) -> bytes:
    """Read a file that is not a template, recording it as read (and its digest)."""
    rel = rel_path(path, repo.root)
    check_readable(path, rel, repo.root)
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
    adopted: _AdoptedJinja,
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
        elif base_rel in variant.jinja_templates:
            text, origins = adopted.render(base_rel)
        else:  # plain text, as a select script copies it (a run: line's ${#X} stays)
            text = _text(_read_plain(repo, loader, repo.root / base_rel), base_rel)
            origins = [(base_rel, 0)]
        text = replace_literal(envsubst(text, variant.envsubst), variant.replace)
        return text.encode("utf-8"), origins
    # with an overlay, only a .j2 base is a template (yq reads the base as plain YAML)
    base_origins: list[tuple[str, int]] | None = None
    if base_rel.endswith(".j2"):
        base_text, base_origins = render_one(env, base_name, base_rel, context, variant)
    elif base_rel in variant.jinja_templates:
        base_text, base_origins = adopted.render(base_rel)
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
    merged = merge_overlay(base_text, overlay_text, base_rel, overlay_rel,
                           append_lists=variant.merge != "replace-lists")
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


# the last table of the file, and the blank line init put before it
_COGFLEET_TABLE = re.compile(
    rb"(?:(?<=\n)\r?\n)?^\[tool\.cogfleet\][^\n]*(?:\n(?!\s*\[)[^\n]*)*\n?\Z", re.MULTILINE
)


def without_cogfleet_table(data: bytes) -> bytes:
    """``pyproject.toml`` as it was before ``cogfleet init`` appended ``[tool.cogfleet]``
    (the last table) to it, or created it with that table alone (then: empty)."""
    return _COGFLEET_TABLE.sub(b"", data, count=1)


def _declared(repo: Repo, variant: Variant) -> set[str]:
    """The repo files ``variant`` names: its template, overlay, files and config."""
    named = {variant.template, variant.overlay, *variant.files.values(), *variant.jinja_templates}
    return {rel for rel in named if rel is not None} | {repo.rel(variant.config_path)}


def _of_other_variants(repo: Repo, variant: Variant) -> set[str]:
    """Files of a root family that only its other variants name (``model-cog-configs/dev.yaml``
    for ``schnell``): Cog sends them, but a change to them changes nothing of ``variant``."""
    others: set[str] = set()
    for other in repo.variants.values():
        if other.name != variant.name and other.family_dir == variant.family_dir:
            others |= _declared(repo, other)
    return others - _declared(repo, variant)


def _left_out(repo: Repo, variant: Variant) -> set[str]:
    """Paths (relative to the family folder) that are never copied as family files.

    A family whose source is the repository root is what a ``cog build`` of the root takes
    after the select script: everything but cogfleet's own (its state, its folders, the
    ``cog.yaml`` and config the render writes) and local environments. Its templates,
    overlays, configs and each variant's files are copied as they are, as Cog sends them.
    """
    family_dir = variant.family_dir
    if family_dir == repo.root:
        return {*LOCAL_STATE, *repo.own_dirs(), "cog.yaml", CONFIG_NAME, VARIANTS_FILE,
                *variant.own_files}
    out: set[str] = set()
    for other in repo.variants.values():
        if other.family_dir != family_dir:
            continue
        # they make cog.yaml or a file of their variant's (or are its config), not the
        # family's image
        for rel in (other.template, other.overlay, *other.files.values(), other.config_path):
            if rel is not None:
                with contextlib.suppress(ValueError):
                    out.add((repo.root / rel).relative_to(family_dir).as_posix())
    return out


def root_left_out(repo: Repo) -> list[str]:
    """``.dockerignore`` patterns for what a build folder of a family whose source is the
    root never holds, though ``cog build`` of the root would send it: cogfleet's own files
    and folders, local environments, caches and compiled Python (what :func:`family_files`
    skips). ``cog.yaml`` and ``cog-safe-push.yaml`` are sent: the variant's."""
    out = [*LOCAL_STATE, *repo.own_dirs(), VARIANTS_FILE]
    for variant in repo.variants.values():
        if variant.family_dir == repo.root:
            out += variant.own_files
    pyproject = repo.root / PYPROJECT
    with contextlib.suppress(OSError):
        if pyproject.is_file() and not without_cogfleet_table(pyproject.read_bytes()).strip():
            out.append(PYPROJECT)  # written by `cogfleet init`: not the model's
    out += [f"**/{name}" for name in sorted(_SKIP_DIRS)]
    out += ["**/*.pyc", "**/*.pyo"]
    return out


def with_official_model(
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
    from cogfleet._config import model_clash

    clash = model_clash(config)
    if clash is not None:
        raise ConfigError(
            config_rel,
            f"{clash[0]}: {clash[1]} (official_model {declared!r} is declared for variant "
            f"{variant.name!r} in {repo.rel(variant.variants_file)})",
            line=_line_of(config_text, tuple(clash[0].split("."))),
        )
    return config


def family_files(repo: Repo, variant: Variant) -> list[Path]:
    """The family's files a render copies or renders, in a stable order."""
    left_out = _left_out(repo, variant)
    at_root = variant.family_dir == repo.root
    # at the root, as `cog build` reads it: the user's lines, not those select adds
    ignore = DockerIgnore.read(variant.family_dir, select_block=not at_root)
    found = []
    for rel in walk(variant.family_dir, ignore, _SKIP_DIRS):
        parts = rel.split("/")
        if any("/".join(parts[: n + 1]) in left_out for n in range(len(parts))):
            continue
        name = parts[-1]
        if name.endswith((".pyc", ".pyo")) or (
            name in _SKIP_FILES and not at_root  # at the root, Cog sends them all
        ):
            continue
        path = variant.family_dir / rel
        check_readable(path, rel_path(path, repo.root), repo.root)
        found.append(path)
    return found
