"""A cogfleet monorepo: where it is and which variants it declares.

A family's variants are declared in ``models/<family>/variants.yaml`` (or, for a repo
whose model source is at the top, in ``variants.yaml`` there)::

    schnell:
      model: acme/imagegen-schnell      # owner/name on the target (optional when the config has it)
      variables: {max_steps: 4}         # Jinja variables for this variant's templates
      template: templates/cog.yaml.j2   # optional: the cog.yaml template or base (default shown)
      overlay: overlays/schnell.yaml    # optional: merged onto the base as yq's *+ merges it
      merge: concatenate                # optional: the overlay appended to the base, as `cat` does
                                        # (replace-lists: yq's `*`, lists replaced not appended)
      official_model: acme/schnell      # optional: where --push-official-model pushes
      cog_version: "0.15.8"             # optional: the Cog version (default: the repo's pin)
      envsubst: {PREDICTOR: Predictor}  # optional: $NAME / ${NAME} values in the template
      replace: {MODEL_NAME: schnell}    # optional: literal text replaced in the template
      files: {predict.py: predictors/schnell.py}  # optional: build file <- repo file
      config: models/schnell/cog-safe-push.yaml   # optional: its cog-safe-push config
      source: models/schnell            # optional: its own source folder (default: the family's)
      jinja: {templates: [cog_template.yaml], keep_trailing_newline: false}  # optional: see below

or in the structured form, which names the family, its source folder and defaults for
every variant (``{variant}`` in a default's text is the variant's name)::

    family: flux
    source: .                           # the model source, relative to this file's folder
    defaults:
      template: cog.yaml.template
      overlay: model-cog-configs/{variant}.yaml
    variants:
      schnell: {}
      dev: {official_model: acme/flux-dev}
    own_files: [.dockerignore.j2]       # files init wrote (templates of what a script generates)

Each variant is published with ``<configs-dir>/<variant>.yaml`` (``configs-dir`` from
``[tool.cogfleet]``, default ``cog-safe-push-configs``), or with the file its ``config:``
names (``config: cog-safe-push-{variant}.yaml`` in the defaults of a repo that keeps
its configs that way).

``jinja:`` names repo files that are Jinja templates though not named ``*.j2`` (the
variant's ``template`` or ``files:`` sources, as an adopted select script rendered them
with ``jinja2``), and how that script's Jinja rendered them: ``keep_trailing_newline``
(``jinja2.Template()`` drops a final newline: false), ``trim_blocks``, ``lstrip_blocks``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cogfleet._errors import ConfigError, UsageError
from cogfleet._files import check_readable
from cogfleet._names import SAME_AS_MODEL, model_problem
from cogfleet._settings import DEFAULT_CONFIGS_DIR, Settings, load_settings
from cogfleet._variant_lines import key_line, line_of_problem
from cogfleet._variant_values import envsubst_values, replace_values
from cogfleet._yaml import load_yaml_file
from cogfleet.runtime import CogPin, check_version, installed_pin

MODELS_DIR = "models"
TEMPLATES_DIR = "templates"
CONFIGS_DIR = DEFAULT_CONFIGS_DIR
PLUGINS_DIR = "plugins"
STATE_DIR = ".cogfleet"
VARIANTS_FILE = "variants.yaml"
DEFAULT_TEMPLATE = f"{TEMPLATES_DIR}/cog.yaml.j2"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_NAME = 100  # the longest variant name: it names files and folders


def _check_models_apart(root: Path, variants: list[Variant]) -> None:
    """No two variants publish to one model (the last push would win, each time)."""
    owner: dict[str, tuple[Variant, str]] = {}
    for variant in variants:
        for key, model in (("model", variant.model), ("official_model", variant.official_model)):
            if model is None:
                continue
            other = owner.setdefault(model, (variant, key))
            if other[0] is not variant:
                raise ConfigError(
                    variant.variants_file.relative_to(root),
                    f"variant {variant.name!r}: {key}: {model!r} is already the {other[1]} of "
                    f"variant {other[0].name!r}; each variant publishes to models of its own",
                    line=key_line(variant.variants_file, variant.name, key),
                )


def _clipped(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
_VARIANT_KEYS = {
    "model", "variables", "template", "overlay", "official_model", "cog_version", "envsubst",
    "files", "merge", "config", "replace", "source", "jinja",
}
#: Settings whose mappings a variant's own add to (key by key) rather than replace.
_MAPPING_KEYS = ("variables", "envsubst", "files", "replace", "jinja")
#: ``jinja:`` options (Jinja's own names) for the templates it names; cogfleet's defaults.
JINJA_OPTIONS = {"keep_trailing_newline": True, "trim_blocks": False, "lstrip_blocks": False}
#: How an overlay meets its base: yq's ``*+`` merge, yq's ``*`` (lists replaced, not
#: appended), or appended as ``cat`` appends it.
MERGES = ("yq", "replace-lists", "concatenate")
#: What ``files:`` may not write: cog.yaml and the config come from elsewhere.
_NOT_COPIED = ("cog.yaml", "cog-safe-push.yaml")
_FAMILY_KEYS = {"family", "source", "defaults", "variants", "own_files"}


@dataclass(frozen=True)
class Variant:
    """One publishable model variant of the monorepo."""

    name: str
    family: str
    family_dir: Path
    variants_file: Path
    config_path: Path
    model: str | None = None
    variables: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    template: str | None = None  # repo-relative: the cog.yaml template, or the overlay's base
    overlay: str | None = None  # repo-relative: merged onto the base (yq *+)
    merge: str = "yq"  # or "concatenate": the overlay's text appended to the base's
    official_model: str | None = None
    cog_pin: CogPin | None = None
    """The variant's own ``cog_version:`` (None: the repository's pin applies)."""
    envsubst: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    """``$NAME`` / ``${NAME}`` values substituted in the cog.yaml template, as a select
    script's ``envsubst < cog.yaml.tpl > cog.yaml`` did (only these names)."""
    replace: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    """Literal text -> its value in the cog.yaml template (every occurrence), as a select
    script's ``sed "s/MODEL_NAME/$1/g" cog.yaml.template > cog.yaml`` did."""
    files: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    """Build-folder path -> repo-relative file copied there, as a select script's
    ``cp predictors/$1.py predict.py`` did (it replaces the family's file of that name)."""
    jinja_templates: tuple[str, ...] = ()
    """Repo files rendered as Jinja though not named ``*.j2`` (``jinja: {templates: ...}``)."""
    jinja_options: dict[str, bool] = field(default_factory=dict, hash=False, compare=False)
    """Jinja's options for ``jinja_templates`` that differ from cogfleet's."""
    own_files: tuple[str, ...] = ()
    """Files of the family ``cogfleet init`` wrote (``own_files:``): never model source."""

    def to_json(self, root: Path) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "family": self.family,
            "model": self.model,
            "config": str(self.config_path.relative_to(root)),
            "variables": self.variables,
        }
        for key in ("template", "overlay", "official_model"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.merge != "yq":
            data["merge"] = self.merge
        if self.cog_pin is not None:
            data["cog_version"] = self.cog_pin.version
        if self.envsubst:
            data["envsubst"] = self.envsubst
        if self.replace:
            data["replace"] = self.replace
        if self.files:
            data["files"] = self.files
        if self.jinja_templates:
            data["jinja"] = {"templates": list(self.jinja_templates), **self.jinja_options}
        if self.own_files:
            data["own_files"] = list(self.own_files)
        return data


@dataclass
class Repo:
    """A monorepo checkout: its root and the variants it declares (in name order)."""

    root: Path
    variants: dict[str, Variant]
    settings: Settings = field(default_factory=Settings)

    @property
    def configs_dir(self) -> Path:
        return self.root / self.settings.configs_dir

    def pin_for(self, variant: Variant) -> CogPin:
        """The Cog version ``variant`` builds and runs with (see :mod:`cogfleet.runtime`)."""
        return variant.cog_pin or self.settings.cog_pin or installed_pin()

    @property
    def build_root(self) -> Path:
        return self.root / STATE_DIR / "build"

    def own_dirs(self) -> list[str]:
        """The repo's folders that are cogfleet's, never model source: ``models/``,
        ``templates/`` and ``plugins/`` when cogfleet's families, templates or plugins are
        there (a select-script repo may keep model files in such folders:
        ``models/<name>/cog.yaml``, ``templates/prompt.txt``, ``plugins/loader.py``; the
        templates its select script renders are its own too, and ``cog build`` takes them)."""
        variants = self.variants.values()
        native = any(v.family_dir != self.root for v in variants)  # models/<family>/
        dirs = [MODELS_DIR] if native else []
        if native or any(v.template is None for v in variants):  # templates/cog.yaml.j2
            dirs.append(TEMPLATES_DIR)
        plugins = self.root / PLUGINS_DIR
        if native or any(b"cogfleet" in p.read_bytes() for p in plugins.glob("*.py")):
            dirs.append(PLUGINS_DIR)  # as the plugin loader decides (cogfleet._plugins)
        return dirs

    @property
    def plugins_dir(self) -> Path:
        return self.root / PLUGINS_DIR

    def rel(self, path: Path) -> str:
        """``path`` relative to the repo root when inside it (for messages)."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def select(self, names: list[str] | tuple[str, ...]) -> list[Variant]:
        """The named variants (all when ``names`` is empty); unknown names list the valid ones."""
        if not names or list(names) == ["all"]:
            return list(self.variants.values())
        unknown = [n for n in names if n not in self.variants]
        if unknown:
            valid = ", ".join(self.variants) or "(none)"
            shown = ", ".join(repr(_clipped(n)) for n in unknown)
            raise UsageError(f"unknown variant {shown}; valid: {valid}")
        seen: dict[str, Variant] = {}
        for name in names:
            seen.setdefault(name, self.variants[name])
        return list(seen.values())

    @staticmethod
    def is_root(folder: Path) -> bool:
        """True when ``folder`` declares variants (a top ``variants.yaml``, or one in a
        ``models/<family>/``). A ``models/`` folder alone is not enough: select-script
        repos keep per-model files there (``models/<name>/cog.yaml``)."""
        return (folder / VARIANTS_FILE).is_file() or any(
            (folder / MODELS_DIR).glob(f"*/{VARIANTS_FILE}")
        )

    @classmethod
    def find_root(cls, start: Path | None = None) -> Path:
        """The nearest monorepo at or above ``start`` (or ``$COGFLEET_REPO``)."""
        env = os.environ.get("COGFLEET_REPO")
        if env:
            root = Path(env).resolve()
            if not cls.is_root(root):
                raise UsageError(
                    f"COGFLEET_REPO={env}: no {VARIANTS_FILE} there "
                    f"(nor {MODELS_DIR}/<family>/{VARIANTS_FILE})"
                )
            return root
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if not cls.is_root(folder):
                continue
            settings = load_settings(folder)
            if (folder / settings.configs_dir).is_dir() or _names_configs(folder):
                return folder
            if "configs-dir" in settings.table:  # said where the configs are: not there
                raise ConfigError(
                    folder / "pyproject.toml" if folder != here else "pyproject.toml",
                    f"[tool.cogfleet] configs-dir: no folder {settings.configs_dir!r}",
                )
        raise UsageError(
            f"no cogfleet monorepo found at or above {here} (expected {VARIANTS_FILE} or "
            f"{MODELS_DIR}/<family>/{VARIANTS_FILE}, and the configs folder; run `cogfleet "
            "init` to adopt a repo, or use --repo)"
        )

    @classmethod
    def load(cls, root: Path | None = None) -> Repo:
        """Discover the variants of the repo at ``root`` (found from the cwd when ``None``)."""
        root = (root or cls.find_root()).resolve()
        settings = load_settings(root)
        configs_dir = root / settings.configs_dir
        variants: dict[str, Variant] = {}
        declared_in: dict[str, Path] = {}
        vfiles = sorted((root / MODELS_DIR).glob(f"*/{VARIANTS_FILE}"))
        if (root / VARIANTS_FILE).is_file():
            vfiles.append(root / VARIANTS_FILE)
        for vfile in vfiles:
            rel = vfile.relative_to(root)
            for variant in _parse_file(root, vfile, configs_dir):
                if variant.name in variants:
                    other = declared_in[variant.name].relative_to(root)
                    raise ConfigError(
                        rel, f"variant {variant.name!r} is also declared in {other}"
                    )
                variants[variant.name] = variant
                declared_in[variant.name] = vfile
        _check_models_apart(root, list(variants.values()))
        missing = [v for v in variants.values() if not v.config_path.is_file()]
        if missing:
            v = missing[0]
            if os.path.lexists(v.config_path):  # there, but no file: say what it is
                check_readable(v.config_path, v.config_path.relative_to(root), root)
            raise ConfigError(
                v.variants_file.relative_to(root),
                f"variant {v.name!r} has no config file {v.config_path.relative_to(root)}",
            )
        declared = {v.config_path for v in variants.values()}
        if configs_dir.is_dir():
            for cfg in sorted(configs_dir.glob("*.yaml")):
                if cfg.stem not in variants and cfg not in declared:
                    raise ConfigError(
                        cfg.relative_to(root),
                        f"config for unknown variant {cfg.stem!r}; declare it in "
                        f"{MODELS_DIR}/<family>/{VARIANTS_FILE} "
                        f"(known: {', '.join(sorted(variants))})",
                    )
        _check_state_dirs(root, variants)
        return cls(root=root, variants=dict(sorted(variants.items())), settings=settings)


def _check_state_dirs(root: Path, variants: dict[str, Variant]) -> None:
    """cogfleet's own folders must be folders: a file there breaks a write after work."""
    rels = [STATE_DIR, *(f"{STATE_DIR}/{sub}" for sub in ("build", "cache", "local")),
            *(f"{STATE_DIR}/build/{name}" for name in variants)]
    for rel in rels:
        path = root / rel
        if os.path.lexists(path) and not path.is_dir():
            raise ConfigError(rel, "is a file, not a folder: cogfleet keeps its build folders "
                              "and state there; remove it")


def _names_configs(folder: Path) -> bool:
    """True when ``folder``'s own ``variants.yaml`` says where its configs are
    (``config:``), so no configs folder is needed to know it for the repo's root."""
    if folder.parent.name == MODELS_DIR and Repo.is_root(folder.parent.parent):
        return False  # a family's folder, not the root
    try:
        data = load_yaml_file(folder / VARIANTS_FILE)
    except ConfigError:
        return False
    if not isinstance(data, dict):
        return False
    specs = [data.get("defaults"), *(data.get("variants") or {}).values()] if isinstance(
        data.get("variants"), dict) else list(data.values())
    return any(isinstance(spec, dict) and "config" in spec for spec in specs)


def _parse_file(root: Path, vfile: Path, configs_dir: Path) -> list[Variant]:
    """The variants one ``variants.yaml`` declares; an error names the setting's line."""
    try:
        return _parse_variants(root, vfile, configs_dir)
    except ConfigError as exc:
        if exc.line is not None or exc.path != str(vfile.relative_to(root)):
            raise
        raise ConfigError(exc.path, exc.message, line=line_of_problem(vfile, exc.message)) \
            from None


def _parse_variants(root: Path, vfile: Path, configs_dir: Path) -> list[Variant]:
    rel = vfile.relative_to(root)
    data = load_yaml_file(vfile, rel, root)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(rel, "expected a mapping of variant name -> settings")
    family = vfile.parent.name
    family_dir = vfile.parent
    defaults: dict[str, Any] = {}
    own_files: list[str] = []
    if "variants" in data:  # the structured form
        unknown = sorted(set(map(str, data)) - _FAMILY_KEYS)
        if unknown:
            raise ConfigError(
                rel, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_FAMILY_KEYS))})"
            )
        family = data.get("family", family)
        if not isinstance(family, str) or not _NAME_RE.match(family):
            raise ConfigError(
                rel, f"family: names are lower-case letters, digits, . _ -; got {family!r}"
            )
        source = data.get("source", ".")
        family_dir = (vfile.parent / str(source)).resolve()
        if not isinstance(source, str) or not _inside(family_dir, root) or not family_dir.is_dir():
            raise ConfigError(rel, f"source: {source!r} is not a folder inside the repo")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise ConfigError(rel, "defaults: expected a mapping of variant settings")
        _check_keys(rel, "defaults", defaults)
        for key in _MAPPING_KEYS:  # a variant's own mapping is added to it, key by key
            if defaults.get(key) is not None and not isinstance(defaults[key], dict):
                raise ConfigError(rel, f"defaults: {key} must be a mapping")
        own_files = data.get("own_files") or []
        if not isinstance(own_files, list) or not all(isinstance(f, str) for f in own_files):
            raise ConfigError(rel, "own_files: expected a list of the files init wrote")
        data = data.get("variants") or {}
        if not isinstance(data, dict):
            raise ConfigError(rel, "variants: expected a mapping of variant name -> settings")
    out = []
    for name, spec in data.items():
        name = str(name)
        if not _NAME_RE.match(name):
            raise ConfigError(
                rel, f"variant {_clipped(name)!r}: names are lower-case letters, digits, . _ -"
            )
        if len(name) > MAX_NAME:
            raise ConfigError(rel, f"variant {_clipped(name)!r}: {len(name)} characters long; "
                              f"a name has at most {MAX_NAME}")
        if spec is not None and not isinstance(spec, dict):
            raise ConfigError(rel, f"variant {name!r}: expected a mapping")
        merged = {k: _for_variant(v, name) for k, v in defaults.items()}
        for key, value in (spec or {}).items():
            if key in _MAPPING_KEYS and isinstance(value, dict) and isinstance(
                merged.get(key), dict
            ):
                value = {**merged[key], **value}
            merged[key] = value
        variant = _parse_variant(root, vfile, name, merged, family, family_dir, configs_dir)
        out.append(replace(variant, own_files=tuple(own_files)) if own_files else variant)
    return out


def _for_variant(value: Any, name: str) -> Any:
    if isinstance(value, dict):  # files: {predict.py: predictors/{variant}.py}
        return {k: _for_variant(v, name) for k, v in value.items()}
    if isinstance(value, list):  # jinja: {templates: [templates/{variant}.yaml]}
        return [_for_variant(v, name) for v in value]
    return value.replace("{variant}", name) if isinstance(value, str) else value


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_keys(rel: Path, where: str, spec: dict[Any, Any]) -> None:
    unknown = set(map(str, spec)) - _VARIANT_KEYS
    if unknown:
        raise ConfigError(
            rel,
            f"{where}: unknown key {sorted(unknown)[0]!r} "
            f"(known: {', '.join(sorted(_VARIANT_KEYS))})",
        )


def _parse_variant(
    root: Path,
    vfile: Path,
    name: str,
    spec: dict[str, Any],
    family: str,
    family_dir: Path,
    configs_dir: Path,
) -> Variant:
    rel = vfile.relative_to(root)
    _check_keys(rel, f"variant {name!r}", spec)
    if "source" in spec:  # a folder of its own: `cd models/<name> && cog push` repos
        source = spec["source"]
        family_dir = (vfile.parent / source).resolve() if isinstance(source, str) else root
        if not isinstance(source, str) or not _inside(family_dir, root) or (
            not family_dir.is_dir()
        ):
            raise ConfigError(rel, f"variant {name!r}: source: {source!r} is not a folder "
                              "inside the repo")
    model = spec.get("model")
    problem = None if model is None else model_problem(model)
    if problem:
        raise ConfigError(rel, f"variant {name!r}: model: {problem}")
    official = spec.get("official_model")
    problem = None if official is None else model_problem(official)
    if problem:
        raise ConfigError(rel, f"variant {name!r}: official_model: {problem}")
    if official is not None and official == model:
        raise ConfigError(rel, f"variant {name!r}: official_model: {official!r} {SAME_AS_MODEL}")
    variables = spec.get("variables") or {}
    if not isinstance(variables, dict):
        raise ConfigError(rel, f"variant {name!r}: variables must be a mapping")
    for key in variables:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(rel, f"variant {name!r}: variables: {key!r} is not a name a "
                              "template can use (letters, digits and _, not first a digit)")
    paths: dict[str, str | None] = {}
    for key in ("template", "overlay"):
        value = spec.get(key)
        if value is not None:
            target = (root / str(value)).resolve()
            if not isinstance(value, str) or not _inside(target, root) or not target.is_file():
                what = "template" if key == "template" else "overlay file"
                raise ConfigError(rel, f"variant {name!r}: {what} {value!r} does not exist")
            value = target.relative_to(root).as_posix()
        paths[key] = value
    merge = spec.get("merge", "yq")
    if merge not in MERGES:
        raise ConfigError(rel, f"variant {name!r}: merge must be one of {', '.join(MERGES)}, "
                          f"got {merge!r}")
    if merge != "yq" and paths["overlay"] is None:
        raise ConfigError(rel, f"variant {name!r}: merge: {merge} needs an overlay")
    envsubst = envsubst_values(rel, name, spec.get("envsubst"))
    replace = replace_values(rel, name, spec.get("replace"))
    files = _copied_files(root, rel, name, spec.get("files"))
    jinja_templates, jinja_options = _jinja_settings(root, rel, name, spec.get("jinja"))
    config_path = configs_dir / f"{name}.yaml"
    if "config" in spec:
        value = spec["config"]
        named = (root / value).resolve() if isinstance(value, str) and value else None
        if named is None or not _inside(named, root) or named == root:
            raise ConfigError(rel, f"variant {name!r}: config: {value!r} is not a file path "
                              "inside the repo")
        config_path = named
    cog_pin = None
    if "cog_version" in spec:
        line = key_line(vfile, name, "cog_version")
        version = check_version(spec["cog_version"], rel, line, f"variant {name!r}: cog_version")
        cog_pin = CogPin(version, rel.as_posix(), line)
    return Variant(
        name=name,
        family=family,
        family_dir=family_dir,
        variants_file=vfile,
        config_path=config_path,
        model=model,
        variables={str(k): v for k, v in variables.items()},
        template=paths["template"],
        overlay=paths["overlay"],
        merge=str(merge),
        official_model=official,
        cog_pin=cog_pin,
        envsubst=envsubst,
        replace=replace,
        files=files,
        jinja_templates=jinja_templates,
        jinja_options=jinja_options,
    )


def _copied_files(root: Path, rel: Path, name: str, value: Any) -> dict[str, str]:
    """A variant's ``files:`` mapping, checked: build paths to existing repo files."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(rel, f"variant {name!r}: files must be a mapping of "
                          "build path: repo file")
    out: dict[str, str] = {}
    for dest, source in value.items():
        parts = str(dest).split("/")
        if (
            not isinstance(dest, str) or not dest or dest.startswith("/") or "\\" in dest
            or any(p in ("", ".", "..") for p in parts)
        ):
            raise ConfigError(rel, f"variant {name!r}: files: {dest!r} is not a relative "
                              "path inside the build folder")
        if dest in _NOT_COPIED:
            raise ConfigError(rel, f"variant {name!r}: files: {dest} is written by cogfleet "
                              "(use template/overlay for cog.yaml, the configs folder for "
                              "the config)")
        target = (root / str(source)).resolve() if isinstance(source, str) else None
        if target is None or not _inside(target, root) or not target.is_file():
            raise ConfigError(rel, f"variant {name!r}: files: {dest}: {source!r} is not a "
                              "file in the repo")
        out[dest] = target.relative_to(root).as_posix()
    return out


def _jinja_settings(
    root: Path, rel: Path, name: str, value: Any
) -> tuple[tuple[str, ...], dict[str, bool]]:
    """A variant's ``jinja:`` mapping: the files it names, and options other than ours."""
    if value is None:
        return (), {}
    where = f"variant {name!r}: jinja"
    if not isinstance(value, dict):
        raise ConfigError(rel, f"{where} must be a mapping (templates: [files], and options)")
    unknown = sorted(set(map(str, value)) - {"templates", *JINJA_OPTIONS})
    if unknown:
        raise ConfigError(rel, f"{where}: unknown key {unknown[0]!r} (known: "
                          f"{', '.join(['templates', *JINJA_OPTIONS])})")
    options: dict[str, bool] = {}
    for key, default in JINJA_OPTIONS.items():
        if key in value and not isinstance(value[key], bool):
            raise ConfigError(rel, f"{where}: {key} must be true or false, got {value[key]!r}")
        if value.get(key, default) != default:
            options[key] = value[key]
    listed = value.get("templates") or []
    if not isinstance(listed, list):
        raise ConfigError(rel, f"{where}: templates must be a list of repo files")
    templates = []
    for item in listed:
        target = (root / item).resolve() if isinstance(item, str) and item else None
        if target is None or not _inside(target, root) or not target.is_file():
            raise ConfigError(rel, f"{where}: templates: {item!r} is not a file in the repo")
        templates.append(target.relative_to(root).as_posix())
    return tuple(dict.fromkeys(templates)), options
