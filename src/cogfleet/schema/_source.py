"""Reading a predictor's source the way Cog's static parser reads it, without importing it.

Cog (>= 0.17) derives the schema from the source text with a tree-sitter parser
(``pkg/schema/python`` in Cog's Go source). :func:`parse_target` reproduces what that
parser sees, with Python's own :mod:`ast`, in steps that each have a module:

- :mod:`._sourcefile`: one file's imports, literal module constants and literal
  values, read as the Go parser reads the text (never executed);
- :mod:`._annotations`: type annotations as written;
- :mod:`._project`: sibling modules of the build folder the file imports, and the
  ``BaseModel`` / ``TypedDict`` classes found there and in the file itself;
- :mod:`._targets`: the target callable (a class's ``run``/``predict``/``train``,
  inherited ones included, or a function);
- :mod:`._inputs`: its parameters, their annotations and ``Input(...)`` arguments.

Everything that Cog refuses is a :class:`~._sourcefile.SourceError` carrying the file
and line. The result is a :class:`Signature`, which the per-version renderers turn
into schema fragments.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from cogfleet.schema._annotations import Annotation, parse_annotation
from cogfleet.schema._inputs import Param, read_params
from cogfleet.schema._project import ModelField, Project
from cogfleet.schema._sourcefile import SourceError
from cogfleet.schema._targets import decorator_names, find_target

__all__ = ["Signature", "parse_target"]


@dataclass
class Signature:
    """Everything the renderers need about one target callable."""

    file: str
    line: int
    method: str
    params: list[Param]
    returns: Annotation | None
    imports: dict[str, tuple[str, str]]
    models: dict[str, list[ModelField]]
    typed_dicts: set[str]
    model_kinds: dict[str, str]
    streaming: bool
    is_async: bool
    is_method: bool


def parse_target(
    build_dir: Path, ref: str, *, train: bool, allow_predict: bool = True, run_method: bool = True
) -> Signature:
    """Parse ``ref`` (``"predict.py:Predictor"``) in ``build_dir`` into a :class:`Signature`.

    Raises :class:`SourceError` for what Cog's static parser refuses.
    """
    file, _, name = ref.partition(":")
    project = Project(build_dir)
    rel = str(Path(file))
    module = project.module(rel)
    if module is None:
        raise SourceError(rel, "file not found")
    target_module, func = find_target(
        project, module, name, train, allow_predict=allow_predict, run_method=run_method
    )
    params, is_method = read_params(target_module, func, func.name)
    returns = parse_annotation(target_module, func.returns) if func.returns is not None else None
    models, typed_dicts, kinds = project.models(target_module)
    streaming, _ = decorator_names(target_module, func)
    return Signature(
        file=target_module.rel,
        line=func.lineno,
        method=func.name,
        params=params,
        returns=returns,
        imports=target_module.imports,
        models=models,
        typed_dicts=typed_dicts,
        model_kinds=kinds,
        streaming=streaming,
        is_async=isinstance(func, ast.AsyncFunctionDef),
        is_method=is_method,
    )
