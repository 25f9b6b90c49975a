"""Render each variant's build folder from the family source and Jinja templates.

``.cogfleet/build/<variant>/`` receives the family's files, every ``*.j2`` rendered
without its suffix, ``cog.yaml`` (from the family's own ``cog.yaml[.j2]``, the variant's
``template``, or ``templates/cog.yaml.j2``) and the variant's config as
``cog-safe-push.yaml``. Everything is rendered in memory first, so a template error
writes nothing; files whose bytes did not change are not rewritten; stale files go.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from cogfleet._config import SafePushConfig, parse_config
from cogfleet._errors import ConfigError, TemplateError
from cogfleet._plugins import Plugins
from cogfleet._repo import CONFIGS_DIR, DEFAULT_TEMPLATE, TEMPLATES_DIR, Repo, Variant

CONFIG_NAME = "cog-safe-push.yaml"
_SKIP_DIRS = {"__pycache__", ".cog", ".ruff_cache", ".pytest_cache", ".mypy_cache", ".git"}
_SKIP_FILES = {"variants.yaml", ".DS_Store"}
_UNDEFINED_RE = re.compile(r"'([^']+)' is undefined")


@dataclass
class Rendered:
    """The outcome of rendering one variant."""

    variant: Variant
    build_dir: Path
    config: SafePushConfig
    files: dict[str, bytes]
    reads: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.config.model


class _RecordingLoader(jinja2.FileSystemLoader):
    """A file-system loader that remembers which files a render read."""

    def __init__(self, searchpath: list[Path], root: Path) -> None:
        super().__init__([str(p) for p in searchpath])
        self.root = root
        self.reads: set[str] = set()
        self.files: dict[str, str] = {}  # absolute filename -> repo-relative path

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        rel = _rel(Path(filename), self.root)
        self.reads.add(rel)
        self.files[filename] = rel
        return source, filename, uptodate


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return str(path)


def _environment(repo: Repo, variant: Variant, filters: dict[str, Any]) -> jinja2.Environment:
    loader = _RecordingLoader(
        [variant.family_dir, repo.root / TEMPLATES_DIR, repo.root / CONFIGS_DIR, repo.root],
        repo.root,
    )
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(filters)
    return env


def _template_error(
    exc: Exception, template_rel: str, variant: Variant, known: dict[str, str]
) -> TemplateError:
    """Name the template file and line where rendering failed, the variable and the variant."""
    line = getattr(exc, "lineno", None)
    where = template_rel
    filename = getattr(exc, "filename", None)
    if filename:
        where = known.get(filename, filename)
    tb = exc.__traceback__
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if fname in known:
            where, line = known[fname], tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, jinja2.UndefinedError):
        match = _UNDEFINED_RE.search(str(exc))
        what = f"undefined variable {match.group(1)!r}" if match else str(exc)
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        what = f"template syntax error: {exc.message}"
    elif isinstance(exc, jinja2.TemplateNotFound):
        what = f"included template not found: {exc.name}"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return TemplateError(where, f"{what} (variant {variant.name!r})", line=line)


def _render_one(
    env: jinja2.Environment,
    name: str,
    display: str,
    context: dict[str, Any],
    variant: Variant,
) -> str:
    loader = env.loader
    assert isinstance(loader, _RecordingLoader)
    try:
        template = env.get_template(name)
        return template.render(context)
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise _template_error(exc, display, variant, loader.files) from None


def render_in_memory(repo: Repo, variant: Variant, plugins: Plugins) -> Rendered:
    """Render ``variant`` without touching the disk (beyond reading sources)."""
    context: dict[str, Any] = dict(plugins.template_variables(variant))
    context.update(variant.variables)
    context.update({"variant": variant.name, "family": variant.family})
    if variant.model is not None:
        context["model"] = variant.model
    env = _environment(repo, variant, plugins.template_filters())
    loader = env.loader
    assert isinstance(loader, _RecordingLoader)
    files: dict[str, bytes] = {}
    family_has_cog_yaml = False
    for dirpath, dirnames, filenames in os.walk(variant.family_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fname in sorted(filenames):
            if fname in _SKIP_FILES or fname.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / fname
            rel_in_family = path.relative_to(variant.family_dir).as_posix()
            loader.reads.add(_rel(path, repo.root))
            if fname.endswith(".j2"):
                out_name = rel_in_family[: -len(".j2")]
                text = _render_one(env, rel_in_family, _rel(path, repo.root), context, variant)
                files[out_name] = text.encode("utf-8")
            else:
                out_name = rel_in_family
                files[out_name] = path.read_bytes()
            if out_name == "cog.yaml":
                family_has_cog_yaml = True
    if not family_has_cog_yaml:
        template = variant.template or DEFAULT_TEMPLATE
        if not (repo.root / template).is_file():
            raise ConfigError(
                repo.rel(variant.variants_file),
                f"variant {variant.name!r}: no cog.yaml template ({template} does not exist)",
            )
        text = _render_one(env, template, template, context, variant)
        files["cog.yaml"] = text.encode("utf-8")
    config_rel = repo.rel(variant.config_path)
    config_text = _render_one(env, config_rel, config_rel, context, variant)
    config = parse_config(config_text, config_rel, plugins.checkers())
    if variant.model is not None and config.model != variant.model:
        raise ConfigError(
            config_rel,
            f"model: {config.model!r} differs from {variant.model!r} declared for variant "
            f"{variant.name!r} in {repo.rel(variant.variants_file)}",
        )
    files[CONFIG_NAME] = config_text.encode("utf-8")
    return Rendered(
        variant=variant,
        build_dir=repo.build_root / variant.name,
        config=config,
        files=files,
        reads=set(loader.reads),
    )


def _sync(build_dir: Path, files: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """Make ``build_dir`` hold exactly ``files``, rewriting only what changed."""
    written: list[str] = []
    removed: list[str] = []
    build_dir.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        target = build_dir / rel
        try:
            if target.is_file() and target.read_bytes() == data:
                continue
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
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
    left behind to be pushed.
    """
    return _write(render_in_memory(repo, variant, plugins))


def _write(rendered: Rendered) -> Rendered:
    from cogfleet._cogyaml import validate_cog_yaml

    variant = rendered.variant
    rendered.written, rendered.removed = _sync(rendered.build_dir, rendered.files)
    try:
        rendered.warnings = validate_cog_yaml(
            rendered.build_dir / "cog.yaml", rendered.build_dir
        )
    except ConfigError as exc:
        shutil.rmtree(rendered.build_dir, ignore_errors=True)
        shown = f".cogfleet/build/{variant.name}/cog.yaml"
        raise ConfigError(shown, exc.message, line=exc.line) from None
    return rendered


def render_variants(
    repo: Repo, variants: list[Variant], plugins: Plugins, *, jobs: int | None = None
) -> list[Rendered]:
    """Render several variants side by side (each into its own folder), in input order."""
    # every variant renders in memory first, so a bad template anywhere writes nothing
    workers = jobs or min(8, max(1, len(variants)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        in_memory = list(pool.map(lambda v: render_in_memory(repo, v, plugins), variants))
        return list(pool.map(_write, in_memory))
