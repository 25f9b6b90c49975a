"""The document of Cog <= 0.16, which the SDK wrote by importing the predictor.

Up to 0.16, ``cog build`` ran ``python -m cog.command.openapi_schema`` in the image:
the SDK built pydantic models from ``predict()``'s signature and FastAPI wrote the
document, which the CLI re-marshalled through Go maps. :func:`runtime_document` gives
the same document from the source alone: the ``Input``/``Output`` components
(:mod:`._runtime_fields`) inside the FastAPI app's fixed components and paths
(:mod:`._runtime_app`), both following the pydantic major the image gets
(:attr:`Rules.pydantic <cogfleet.schema.Rules.pydantic>`).

A model with a trainer gets the training components and paths too. What the SDK
refused is a :class:`SourceError` worded as the SDK words it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from cogfleet.schema._annotations import parse_annotation
from cogfleet.schema._project import Project
from cogfleet.schema._runtime_app import (
    REF,
    remove_title_next_to_ref,
    skeleton,
    training_components,
    training_paths,
)
from cogfleet.schema._runtime_fields import Renderer
from cogfleet.schema._sourcefile import SourceError, SourceFile
from cogfleet.schema._targets import find_target, predict_methods
from cogfleet.schema._versions import Rules, parse_version

__all__ = ["runtime_document"]

_STATIC_ERA_NAMES = frozenset(
    {"BaseRunner", "CancelationException", "FieldInfo", "Opaque", "URLFile", "URLPath",
     "concurrent", "streaming"}
)
"""Names ``cog`` exports from 0.17 on that no SDK up to 0.16 has (an ImportError there)."""

_EXPORTED: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "AsyncConcatenateIterator": ((0, 13, 7), (0, 16, 12)),
    "ExperimentalFeatureWarning": ((0, 13, 1), (0, 16, 12)),
    "current_scope": ((0, 13, 1), (0, 16, 12)),
    "emit_metric": ((0, 13, 4), (0, 13, 7)),
    "install_mime_extensions": ((0, 13, 4), (0, 16, 12)),
}
"""Names only some SDKs up to 0.16 export: the first and last version that has each
(read from ``cog/__init__.py`` at every release tag from 0.9.9 to 0.16.12)."""


def _check_cog_imports(module: SourceFile, version: tuple[int, int, int]) -> None:
    for stmt in module.tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "cog" and not stmt.level:
            for alias in stmt.names:
                first, last = _EXPORTED.get(alias.name, (version, version))
                if alias.name in _STATIC_ERA_NAMES or not first <= version <= last:
                    raise SourceError(
                        module.rel,
                        f"ImportError: cannot import name '{alias.name}' from 'cog'",
                        stmt.lineno,
                    )


def _target(
    project: Project, ref: str, version: tuple[int, int, int], *, train: bool
) -> tuple[SourceFile, ast.FunctionDef | ast.AsyncFunctionDef, bool]:
    """The method or function the SDK calls: (module, function, is a method)."""
    file, _, name = ref.partition(":")
    module = project.module(str(Path(file)))
    if module is None:
        raise SourceError(file, "file not found")
    _check_cog_imports(module, version)
    cls = next(
        (c for c in module.tree.body if isinstance(c, ast.ClassDef) and c.name == name), None
    )
    if cls is not None and not train:
        _, predict = predict_methods(project, module, cls, set())
        if predict is None:
            raise SourceError(module.rel, "no predict method found in Predictor", cls.lineno)
        return predict[0], predict[1], True
    target_module, func = find_target(project, module, name, train, run_method=False)
    return target_module, func, cls is not None


def _render_mode(
    rules: Rules, project: Project, ref: str, *, train: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(input component, output component, enum components, other components)."""
    module, func, is_method = _target(project, ref, parse_version(rules.version), train=train)
    models, _, kinds = project.models(module)
    models = {k: v for k, v in models.items() if kinds.get(k) != "typeddict"}
    renderer = Renderer(rules, project, module, models)
    input_schema, enums = renderer.inputs(func, is_method, train=train)
    returns = parse_annotation(module, func.returns) if func.returns is not None else None
    output_schema = renderer.output(returns, func.lineno, train=train)
    return input_schema, output_schema, enums, renderer.extra_components


def runtime_document(
    build_dir: Path, predict_ref: str | None, train_ref: str | None, rules: Rules
) -> dict[str, Any]:
    """The document ``cog build`` of Cog <= 0.16 (``rules``) gives a build folder."""
    if predict_ref is None:
        raise SourceError(
            "cog.yaml", "Can't run predictions: 'predict' option not found in cog.yaml"
        )
    project = Project(build_dir)
    input_schema, output_schema, enums, extra = _render_mode(
        rules, project, predict_ref, train=False
    )
    trained = None
    if train_ref is not None:
        trained = _render_mode(rules, project, train_ref, train=True)
        train_input, _, train_enums, _ = trained
        shared = [name for name in enums if name in train_enums]
        if shared and rules.pydantic == 1:
            # pydantic 1 maps both enum classes to one name and FastAPI fails.
            raise SourceError(
                train_ref.split(":", 1)[0],
                f"KeyError: <enum '{shared[0]}'> (choices inputs of the same name in "
                "predict and train)",
            )
        for name in shared:
            _rename_enum(name, enums, input_schema, train_enums, train_input)
    components, paths = skeleton(rules, REF + "Input", REF + "Output")
    components["Input"] = input_schema
    components["Output"] = output_schema
    components.update(enums)
    components.update(extra)
    if trained is not None:
        train_input, train_output, train_enums, train_extra = trained
        components.update(training_components(rules))
        components["TrainingInput"] = train_input
        components["TrainingOutput"] = train_output
        components.update(train_enums)
        components.update(train_extra)
        paths.update(training_paths(rules))
    doc = {
        "components": {"schemas": components},
        "info": {"title": "Cog", "version": "0.1.0"},
        "openapi": "3.0.2",
        "paths": paths,
    }
    remove_title_next_to_ref(doc)
    return doc


def _rename_enum(
    name: str,
    enums: dict[str, Any],
    input_schema: dict[str, Any],
    train_enums: dict[str, Any],
    train_input: dict[str, Any],
) -> None:
    """Name predict's and train's enum ``name`` apart, as pydantic 2 does.

    Both enum classes are ``cog.predictor.<name>``: equal schemas share the component
    ``name``; different ones become ``cog__predictor__<name>__<n>``, numbered in the
    order FastAPI meets them, and the SDK's app has its training routes first.
    """
    if enums[name] == train_enums[name]:
        return
    for schemas, props, number in ((train_enums, train_input, 1), (enums, input_schema, 2)):
        new = f"cog__predictor__{name}__{number}"
        schemas[new] = schemas.pop(name)
        prop = props["properties"][name]
        target = prop["allOf"][0] if "allOf" in prop else prop
        target["$ref"] = REF + new
