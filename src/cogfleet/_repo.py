"""A cogfleet monorepo: where it is and which variants it declares.

A variant is declared in ``models/<family>/variants.yaml``::

    schnell:
      model: acme/imagegen-schnell      # owner/name on the target (optional when the config has it)
      variables: {max_steps: 4}         # Jinja variables for this variant's templates
      template: templates/cog.yaml.j2   # optional: the cog.yaml template (default shown)

and published with ``cog-safe-push-configs/<variant>.yaml``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cogfleet._errors import ConfigError, UsageError
from cogfleet._yaml import load_yaml_file

MODELS_DIR = "models"
TEMPLATES_DIR = "templates"
CONFIGS_DIR = "cog-safe-push-configs"
PLUGINS_DIR = "plugins"
STATE_DIR = ".cogfleet"
DEFAULT_TEMPLATE = f"{TEMPLATES_DIR}/cog.yaml.j2"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_VARIANT_KEYS = {"model", "variables", "template"}


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
    template: str | None = None

    def to_json(self, root: Path) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "model": self.model,
            "config": str(self.config_path.relative_to(root)),
            "variables": self.variables,
        }


@dataclass
class Repo:
    """A monorepo checkout: its root and the variants it declares (in name order)."""

    root: Path
    variants: dict[str, Variant]

    @property
    def build_root(self) -> Path:
        return self.root / STATE_DIR / "build"

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
            raise UsageError(f"unknown variant {', '.join(map(repr, unknown))}; valid: {valid}")
        seen: dict[str, Variant] = {}
        for name in names:
            seen.setdefault(name, self.variants[name])
        return list(seen.values())

    @classmethod
    def find_root(cls, start: Path | None = None) -> Path:
        """The nearest folder at or above ``start`` (or ``$COGFLEET_REPO``) holding ``models/``."""
        env = os.environ.get("COGFLEET_REPO")
        if env:
            root = Path(env).resolve()
            if not (root / MODELS_DIR).is_dir():
                raise UsageError(f"COGFLEET_REPO={env}: no {MODELS_DIR}/ folder there")
            return root
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / MODELS_DIR).is_dir() and (folder / CONFIGS_DIR).is_dir():
                return folder
        raise UsageError(
            f"no cogfleet monorepo found at or above {here} "
            f"(expected {MODELS_DIR}/ and {CONFIGS_DIR}/ folders; or use --repo)"
        )

    @classmethod
    def load(cls, root: Path | None = None) -> Repo:
        """Discover the variants of the repo at ``root`` (found from the cwd when ``None``)."""
        root = (root or cls.find_root()).resolve()
        variants: dict[str, Variant] = {}
        declared_in: dict[str, Path] = {}
        for vfile in sorted((root / MODELS_DIR).glob("*/variants.yaml")):
            rel = vfile.relative_to(root)
            data = load_yaml_file(vfile, rel)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise ConfigError(rel, "expected a mapping of variant name -> settings")
            for name, spec in data.items():
                name = str(name)
                if not _NAME_RE.match(name):
                    raise ConfigError(
                        rel, f"variant {name!r}: names are lower-case letters, digits, . _ -"
                    )
                if name in variants:
                    other = declared_in[name].relative_to(root)
                    raise ConfigError(rel, f"variant {name!r} is also declared in {other}")
                variants[name] = _parse_variant(root, vfile, name, spec or {})
                declared_in[name] = vfile
        configs_dir = root / CONFIGS_DIR
        missing = [v for v in variants.values() if not v.config_path.is_file()]
        if missing:
            v = missing[0]
            raise ConfigError(
                v.variants_file.relative_to(root),
                f"variant {v.name!r} has no config file {v.config_path.relative_to(root)}",
            )
        if configs_dir.is_dir():
            for cfg in sorted(configs_dir.glob("*.yaml")):
                if cfg.stem not in variants:
                    raise ConfigError(
                        cfg.relative_to(root),
                        f"config for unknown variant {cfg.stem!r}; declare it in "
                        f"{MODELS_DIR}/<family>/variants.yaml (known: {', '.join(variants)})",
                    )
        return cls(root=root, variants=dict(sorted(variants.items())))


def _parse_variant(root: Path, vfile: Path, name: str, spec: Any) -> Variant:
    rel = vfile.relative_to(root)
    if not isinstance(spec, dict):
        raise ConfigError(rel, f"variant {name!r}: expected a mapping")
    unknown = set(spec) - _VARIANT_KEYS
    if unknown:
        raise ConfigError(
            rel,
            f"variant {name!r}: unknown key {sorted(unknown)[0]!r} "
            f"(known: {', '.join(sorted(_VARIANT_KEYS))})",
        )
    model = spec.get("model")
    if model is not None and (not isinstance(model, str) or not _MODEL_RE.match(model)):
        raise ConfigError(rel, f"variant {name!r}: model must be 'owner/name', got {model!r}")
    variables = spec.get("variables") or {}
    if not isinstance(variables, dict):
        raise ConfigError(rel, f"variant {name!r}: variables must be a mapping")
    template = spec.get("template")
    if template is not None:
        if not isinstance(template, str) or not (root / template).is_file():
            raise ConfigError(rel, f"variant {name!r}: template {template!r} does not exist")
    return Variant(
        name=name,
        family=vfile.parent.name,
        family_dir=vfile.parent,
        variants_file=vfile,
        config_path=root / CONFIGS_DIR / f"{name}.yaml",
        model=model,
        variables={str(k): v for k, v in variables.items()},
        template=template,
    )
