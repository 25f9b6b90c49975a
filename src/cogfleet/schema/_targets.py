"""Finding the callable Cog reads: a class's ``run``/``predict``/``train``, or a function.

Mirrors ``findTargetCallableNode``: from Cog 0.20 a class's ``run()`` wins over
``predict()`` and methods inherited from base classes (also from sibling modules)
count; before, only the class's own ``predict``/``train``.
"""

from __future__ import annotations

import ast

from cogfleet.schema._project import Project, top_level_classes, top_level_functions
from cogfleet.schema._sourcefile import SourceError, SourceFile

__all__ = ["FuncDef", "decorator_names", "find_class", "find_target", "predict_methods"]

FuncDef = ast.FunctionDef | ast.AsyncFunctionDef


def _methods(cls: ast.ClassDef) -> dict[str, FuncDef]:
    return {
        stmt.name: stmt
        for stmt in cls.body
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def find_class(module: SourceFile, name: str) -> ast.ClassDef | None:
    return next((c for c in top_level_classes(module) if c.name == name), None)


def predict_methods(
    project: Project, module: SourceFile, cls: ast.ClassDef, seen: set[tuple[str, str]]
) -> tuple[tuple[SourceFile, FuncDef] | None, tuple[SourceFile, FuncDef] | None]:
    key = (module.rel, cls.name)
    if key in seen:
        return None, None
    seen.add(key)
    methods = _methods(cls)
    run = (module, methods["run"]) if "run" in methods else None
    predict = (module, methods["predict"]) if "predict" in methods else None
    for base in cls.bases:
        if not isinstance(base, (ast.Name, ast.Attribute)):
            continue
        parent_name = module.segment(base)
        parent_module: SourceFile | None = module
        parent_cls = find_class(module, parent_name)
        if parent_cls is None:
            parent_module, parent_cls = _imported_class(project, module, parent_name)
        if parent_module is None or parent_cls is None:
            continue
        parent_run, parent_predict = predict_methods(project, parent_module, parent_cls, seen)
        run = run or parent_run
        predict = predict or parent_predict
    return run, predict


def _imported_class(
    project: Project, module: SourceFile, parent: str
) -> tuple[SourceFile | None, ast.ClassDef | None]:
    if "." in parent:
        head, class_name = parent.split(".", 1)
        entry = module.imports.get(head)
        if entry is None:
            return None, None
    else:
        entry = module.imports.get(parent)
        if entry is None:
            return None, None
        class_name = entry[1]
    _, imported, _ = project.load_import(module, entry[0], entry[1])
    if imported is None:
        return None, None
    return imported, find_class(imported, class_name)


def decorator_names(module: SourceFile, func: FuncDef) -> tuple[bool, bool]:
    """(``@cog.streaming``, ``@cog.concurrent``) as Cog recognises them."""
    streaming = concurrent = False
    for decorator in func.decorator_list:
        expr = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            entry = module.imports.get(expr.value.id)
            if entry is not None and entry == ("cog", "cog"):
                streaming |= expr.attr == "streaming"
                concurrent |= expr.attr == "concurrent"
        elif isinstance(expr, ast.Name):
            entry = module.imports.get(expr.id)
            if entry is not None and entry[0] == "cog":
                streaming |= entry[1] == "streaming"
                concurrent |= entry[1] == "concurrent"
    return streaming, concurrent


def find_target(
    project: Project,
    module: SourceFile,
    name: str,
    train: bool,
    *,
    allow_predict: bool = True,
    run_method: bool = True,
) -> tuple[SourceFile, FuncDef]:
    """``findTargetCallableNode``: the class method or function Cog would read.

    With ``run_method`` (Cog >= 0.20) a class's ``run()`` wins over ``predict()``
    and inherited methods count; before, only the class's own ``predict``/``train``.
    """
    method_name = "train" if train else "predict"
    cls = find_class(module, name)
    if not run_method:
        if cls is not None:
            method = _methods(cls).get(method_name)
            if method is None:
                raise SourceError(module.rel, f"{name}.{method_name} not found", cls.lineno)
            return module, method
        for func in top_level_functions(module):
            if func.name in (name, method_name):
                return module, func
        raise SourceError(module.rel, f"predictor not found: {name}")
    if cls is not None:
        if not train:
            run, predict = predict_methods(project, module, cls, set())
            if run is not None:
                return run
            if predict is not None and allow_predict:
                return predict
            message = (
                f"{name} must define run() or predict()"
                if allow_predict
                else f"{name}.run not found"
            )
            raise SourceError(module.rel, message, cls.lineno)
        method = _methods(cls).get(method_name)
        if method is None:
            raise SourceError(module.rel, f"{name}.{method_name} not found", cls.lineno)
        return module, method
    functions = {f.name: f for f in top_level_functions(module)}
    if name in functions:
        return module, functions[name]
    if name != method_name and method_name in functions:
        return module, functions[method_name]
    raise SourceError(module.rel, f"predictor not found: {name}")
