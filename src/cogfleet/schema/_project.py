"""The build folder's modules: sibling imports and the BaseModel/TypedDict classes they hold.

Cog's parser follows ``from schema_types import Output`` into a sibling module of the
build folder (``moduleToFilePath``), skipping well-known external packages, and
collects the model classes of the predictor file and of those siblings.
:class:`Project` loads each module once, on demand.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

from cogfleet.schema._annotations import Annotation, parse_annotation
from cogfleet.schema._sourcefile import Literal, SourceError, SourceFile

__all__ = ["ModelField", "Project", "top_level_classes", "top_level_functions"]


@dataclass
class ModelField:
    """One annotated field of a BaseModel or TypedDict class."""

    name: str
    annotation: Annotation
    default: Literal | None
    key_required: bool | None = None


_KNOWN_EXTERNAL = frozenset(
    """builtins typing typing_extensions collections abc enum dataclasses os sys io json re
    math pathlib functools itertools contextlib concurrent asyncio multiprocessing threading
    logging warnings unittest pytest numpy torch tensorflow jax scipy sklearn transformers
    diffusers accelerate safetensors PIL cv2 skimage requests httpx aiohttp fastapi flask
    pydantic cog""".split()
)


def _module_to_path(module: str, source_rel: str) -> str:
    """``moduleToFilePath``: where a local module's file would be, relative to the build."""
    if module.startswith(".") and source_rel:
        level = len(module) - len(module.lstrip("."))
        clean = module.lstrip(".")
        if not clean:
            return ""
        base = str(Path(source_rel).parent)
        base = "" if base == "." else base
        for _ in range(level - 1):
            if not base:
                break
            base = str(Path(base).parent)
            base = "" if base == "." else base
        parts = clean.split(".")
        return str(Path(base, *parts)) + ".py" if base else str(Path(*parts)) + ".py"
    clean = module.lstrip(".")
    if not clean:
        return ""
    return str(Path(*clean.split("."))) + ".py"


def _is_known_external(module: str) -> bool:
    top = module.split(".", 1)[0] if not module.startswith(".") else module
    top = top.lstrip(".").split(".", 1)[0] if top.startswith(".") else top
    return top in _KNOWN_EXTERNAL


class Project:
    """The build folder: parsed modules by relative path, loaded on demand."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self._modules: dict[str, SourceFile | None] = {}
        self._models: dict[str, tuple[dict[str, list[ModelField]], set[str], dict[str, str]]] = {}
        self._loading: set[str] = set()

    def module(self, rel: str) -> SourceFile | None:
        rel = str(Path(rel))
        if rel in self._modules:
            return self._modules[rel]
        path = self.build_dir / rel
        try:
            resolved = path.resolve()
            resolved.relative_to(self.build_dir.resolve())
            data = resolved.read_bytes()
        except (OSError, ValueError):
            self._modules[rel] = None
            return None
        module = SourceFile(self.build_dir, rel, _source_text(rel, data))
        self._modules[rel] = module
        return module

    def load_import(
        self, module: SourceFile, name: str, original: str
    ) -> tuple[str, SourceFile | None, bool]:
        """Find the sibling module behind an import entry: (module name, parsed, nested)."""
        if not _is_known_external(name):
            rel = _module_to_path(name, module.rel)
            found = self.module(rel) if rel else None
            if found is not None:
                return name, found, False
        nested = _nested_module(name, original)
        if nested == name or _is_known_external(nested):
            return name, None, False
        rel = _module_to_path(nested, module.rel)
        return nested, (self.module(rel) if rel else None), True

    def models(
        self, module: SourceFile
    ) -> tuple[dict[str, list[ModelField]], set[str], dict[str, str]]:
        """Models visible in ``module``: its own and those of the sibling modules it imports."""
        if module.rel in self._models:
            return self._models[module.rel]
        if module.rel in self._loading:
            return {}, set(), {}
        self._loading.add(module.rel)
        try:
            models, typed_dicts, kinds = _collect_models(module, {}, set())
            for local, (name, original) in module.imports.items():
                imported_name, imported, nested = self.load_import(module, name, original)
                if imported is None:
                    if original in models and local != original:
                        models[local] = models[original]
                    continue
                other_models, other_typed, other_kinds = self.models(imported)
                for model_name, fields in other_models.items():
                    models[f"{local}.{model_name}"] = fields
                    kinds[f"{local}.{model_name}"] = other_kinds.get(model_name, "model")
                for td in other_typed:
                    typed_dicts.add(f"{local}.{td}")
                if nested or original == imported_name or imported_name == ".":
                    continue
                if original in other_models:
                    models[local] = other_models[original]
                    kinds[local] = other_kinds.get(original, "model")
                if original in other_typed:
                    typed_dicts.add(local)
                for model_name, fields in other_models.items():
                    if model_name not in models:
                        models[model_name] = fields
                        kinds[model_name] = other_kinds.get(model_name, "model")
            # A second pass sees TypedDict parents that came from other modules.
            own, own_typed, own_kinds = _collect_models(module, models, typed_dicts)
            models.update(own)
            typed_dicts |= own_typed
            kinds.update(own_kinds)
        finally:
            self._loading.discard(module.rel)
        self._models[module.rel] = (models, typed_dicts, kinds)
        return models, typed_dicts, kinds


def _nested_module(module: str, original: str) -> str:
    if not module or not original:
        return module
    if module == ".":
        return "." + original
    return module + "." + original


def top_level_classes(module: SourceFile) -> list[ast.ClassDef]:
    return [stmt for stmt in module.tree.body if isinstance(stmt, ast.ClassDef)]


def top_level_functions(module: SourceFile) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        stmt
        for stmt in module.tree.body
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def _is_base_model(module: SourceFile, cls: ast.ClassDef) -> bool:
    for base in cls.bases:
        if isinstance(base, ast.Name):
            entry = module.imports.get(base.id)
            if base.id == "BaseModel" or (
                entry is not None
                and entry[0] in ("cog", "pydantic", "pydantic.v1")
                and entry[1] == "BaseModel"
            ):
                return True
        elif isinstance(base, ast.Attribute) and module.segment(base).endswith(".BaseModel"):
            return True
    return False


def _typed_dict_info(
    module: SourceFile, cls: ast.ClassDef, typed_dicts: set[str]
) -> tuple[bool, bool, list[str]]:
    is_td, total, parents = False, True, []
    for base in cls.bases:
        if isinstance(base, ast.Name):
            entry = module.imports.get(base.id)
            if base.id == "TypedDict" or (
                entry is not None
                and entry[0] in ("typing", "typing_extensions")
                and entry[1] == "TypedDict"
            ):
                is_td = True
            elif base.id in typed_dicts:
                is_td = True
                parents.append(base.id)
        elif isinstance(base, ast.Attribute):
            text = module.segment(base)
            if text.endswith(".TypedDict"):
                is_td = True
            elif text in typed_dicts:
                is_td = True
                parents.append(text)
    for keyword in cls.keywords:
        if keyword.arg == "total" and module.segment(keyword.value).strip() == "False":
            total = False
    return is_td, total, parents


def _collect_models(
    module: SourceFile, known: dict[str, list[ModelField]], known_typed: set[str]
) -> tuple[dict[str, list[ModelField]], set[str], dict[str, str]]:
    models: dict[str, list[ModelField]] = {}
    typed_dicts: set[str] = set()
    kinds: dict[str, str] = {}
    for cls in top_level_classes(module):
        is_model = _is_base_model(module, cls)
        is_td, total, parents = _typed_dict_info(module, cls, typed_dicts | known_typed)
        if not is_model and not is_td:
            continue
        fields: list[ModelField] = []
        for stmt in cls.body:
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            try:
                annotation = parse_annotation(module, stmt.annotation)
            except SourceError:
                continue
            default = module.literal(stmt.value) if stmt.value is not None else None
            key_required: bool | None = None
            if is_td:
                annotation, key_required = _typed_dict_field(module, annotation, total)
            fields.append(ModelField(stmt.target.id, annotation, default, key_required))
        if is_td:
            merged: dict[str, ModelField] = {}
            for parent in parents:
                for parent_field in models.get(parent) or known.get(parent) or []:
                    merged[parent_field.name] = parent_field
            for own in fields:
                merged[own.name] = own
            fields = list(merged.values())
            typed_dicts.add(cls.name)
        models[cls.name] = fields
        kinds[cls.name] = "typeddict" if is_td else "model"
    return models, typed_dicts, kinds


def _typed_dict_field(module: SourceFile, ann: Annotation, total: bool) -> tuple[Annotation, bool]:
    if ann.kind != "generic" or len(ann.args) != 1:
        return ann, total
    name = ann.name
    if name == "NotRequired" or name.endswith(".NotRequired"):
        return ann.args[0], False
    if name == "Required" or name.endswith(".Required"):
        return ann.args[0], True
    entry = module.imports.get(name)
    if entry is not None and entry[0] in ("typing", "typing_extensions"):
        if entry[1] == "NotRequired":
            return ann.args[0], False
        if entry[1] == "Required":
            return ann.args[0], True
    return ann, total


def _source_text(rel: str, data: bytes) -> str:
    """A module's text as Python reads it: UTF-8, or what a coding comment declares. Bytes
    it cannot decode are a :class:`SourceError` at their line (Python refuses to import
    such a module), not a module taken for missing."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # no UTF-8 in the first two lines, or a coding comment it refuses
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        reason = f"not {encoding}: byte 0x{data[exc.start]:02x} cannot be decoded"
    except LookupError:  # a coding comment naming an encoding Python does not know
        line, reason = None, f"unknown encoding {encoding!r}"
    raise SourceError(rel, f"failed to parse Python source: {reason}", line)
