"""The document of Cog <= 0.16, which the SDK wrote by importing the predictor.

Up to 0.16, ``cog build`` ran ``python -m cog.command.openapi_schema`` in the image:
the SDK built pydantic models from ``predict()``'s signature and FastAPI wrote the
document, which the CLI re-marshalled through Go maps. :func:`runtime_document` gives
the same document from the source alone: the ``Input``/``Output`` components
(:mod:`._runtime_fields`) inside the FastAPI app's fixed components and paths
(:mod:`._runtime_app`), both following the pydantic major the image gets
(:attr:`Rules.pydantic <cogfleet.schema.Rules.pydantic>`).

A model with a trainer gets the training components and paths too. What the SDK
refused is a :class:`SourceError` worded as the SDK words it; so is the one case not
reproduced (predict and train sharing a ``choices`` input name under pydantic 2).
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
from cogfleet.schema._versions import Rules

__all__ = ["runtime_document"]


def _target(
    project: Project, ref: str, *, train: bool
) -> tuple[SourceFile, ast.FunctionDef | ast.AsyncFunctionDef, bool]:
    """The method or function the SDK calls: (module, function, is a method)."""
    file, _, name = ref.partition(":")
    module = project.module(str(Path(file)))
    if module is None:
        raise SourceError(file, "file not found")
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
    module, func, is_method = _target(project, ref, train=train)
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
    components, paths = skeleton(rules, REF + "Input", REF + "Output")
    components["Input"] = input_schema
    components["Output"] = output_schema
    components.update(enums)
    components.update(extra)
    if train_ref is not None:
        train_input, train_output, train_enums, train_extra = _render_mode(
            rules, project, train_ref, train=True
        )
        shared = sorted(set(enums) & set(train_enums))
        if shared:
            file = train_ref.split(":", 1)[0]
            if rules.pydantic == 1:
                # pydantic 1 maps both enum classes to one name and FastAPI fails.
                raise SourceError(
                    file,
                    f"KeyError: <enum '{shared[0]}'> (choices inputs of the same name in "
                    "predict and train)",
                )
            raise SourceError(
                file,
                f"choices input '{shared[0]}' in both predict and train: the document of Cog "
                f"{rules.version} (pydantic 2 renames such enum components per module) is not "
                "reproduced by cogfleet",
            )
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
