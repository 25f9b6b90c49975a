"""What Python would compute for an expression of the predictor, without running it.

Cog <= 0.16 imported the predictor, so a default, ``choices`` list or constraint was
whatever Python evaluated: constants imported from sibling modules, class attributes,
``a + b``, ``list(D.keys())``, ``D.keys()`` (the keys of a dict whose values
are classes too). :class:`Evaluator` computes the same values from the
source, for the expressions that can be computed without running the model's code;
anything else is a :class:`ValueError`.

A parameter's ``Input(...)`` may be written elsewhere too, since Python only needs the
default to *be* the object ``Input()`` returned: a module or class attribute holding
it (``SEED``, ``Inputs.seed``, a bare class-body name), or a function, static method or
class method whose body is ``return Input(...)`` (``Inputs.guidance(7.5)``, or
``seed_helper.predict_seed()`` of ``from helpers import seed as seed_helper``), with
its arguments bound as Python binds them. :meth:`Evaluator.input_ref` finds that call.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cogfleet.schema._project import Project
from cogfleet.schema._sourcefile import SourceFile

__all__ = ["Evaluator", "InputRef", "Scope"]

_DEPTH = 20
_UNKNOWN = object()
"""A value the source does not determine: a dict entry holding a class, a call..."""


def _holds_unknown(value: Any) -> bool:
    if value is _UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_holds_unknown(k) or _holds_unknown(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(_holds_unknown(v) for v in value)
    return False


@dataclass(frozen=True)
class Scope:
    """Where names are looked up: a function's locals, a class body, then the module."""

    module: SourceFile
    cls: ast.ClassDef | None = None
    before: int | None = None
    """Only class-body statements above this line are bound (the body runs in order)."""
    env: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputRef:
    """An ``Input(...)`` call a parameter's default evaluates to, and where it runs."""

    call: ast.Call
    scope: Scope
    shared: bool
    """Whether every evaluation gives the same object (a module or class attribute) rather
    than a new one (a function call): the SDK mutates that object per parameter."""

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.scope.module.rel, self.call.lineno, self.call.col_offset)


def _class_binding(cls: ast.ClassDef, name: str, before: int | None) -> ast.expr | None:
    found = None
    for stmt in cls.body:
        if before is not None and stmt.lineno >= before:
            break
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            found = stmt.value
        elif (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == name
            and stmt.value is not None
        ):
            found = stmt.value
    return found


def _module_binding(module: SourceFile, name: str) -> ast.expr | None:
    for stmt in reversed(module.tree.body):
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            return stmt.value
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == name
            and stmt.value is not None
        ):
            return stmt.value
    return None


def _top_level(module: SourceFile, name: str) -> ast.stmt | None:
    return next(
        (
            stmt
            for stmt in reversed(module.tree.body)
            if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and stmt.name == name
        ),
        None,
    )


def _decorators(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    return {d.id for d in func.decorator_list if isinstance(d, ast.Name)}


class Evaluator:
    """What Python would compute for a default/choices expression, without running it."""

    def __init__(self, project: Project, module: SourceFile) -> None:
        self.project = project
        self.module = module

    # -- values --------------------------------------------------------------

    def value(
        self,
        node: ast.expr,
        module: SourceFile | None = None,
        depth: int = 0,
        scope: Scope | None = None,
    ) -> Any:
        """The value of ``node`` in ``scope`` (or at the top of ``module``)."""
        result = self._value(node, module, depth, scope)
        if _holds_unknown(result):
            raise ValueError("not static")
        return result

    def _value(
        self,
        node: ast.expr,
        module: SourceFile | None = None,
        depth: int = 0,
        scope: Scope | None = None,
    ) -> Any:
        # A dict entry whose value is not static (``{"ddim": DDIMScheduler}``) is
        # _UNKNOWN here, so that the dict's keys still count; ``value`` refuses any
        # result that still holds one.
        scope = scope or Scope(module or self.module)
        module = scope.module
        if depth > _DEPTH:
            raise ValueError("too deep")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self._value(e, depth=depth + 1, scope=scope) for e in node.elts]
            return items
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError("dict unpacking")
            return {
                self._value(k, depth=depth + 1, scope=scope): self._entry(v, depth, scope)
                for k, v in zip(node.keys, node.values, strict=True)
                if k is not None
            }
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._value(node.operand, depth=depth + 1, scope=scope)
            if isinstance(operand, bool) or not isinstance(operand, (int, float)):
                raise ValueError("not a number")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self._value(node.left, depth=depth + 1, scope=scope)
            right = self._value(node.right, depth=depth + 1, scope=scope)
            if type(left) is type(right) and isinstance(left, (list, str, int, float)):
                return left + right
            raise ValueError("unsupported +")
        if isinstance(node, ast.Name):
            return self.name(node.id, module, depth, scope)
        if isinstance(node, ast.Attribute):
            owner = self._owner(node.value, scope, depth)
            if owner is not None:
                bound, owner_scope = owner
                found = bound(node.attr)
                if found is not None:
                    return self._value(found, depth=depth + 1, scope=owner_scope)
            raise ValueError("not static")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("keys", "values")
            and not node.args
            and not node.keywords
        ):  # D.keys(): the SDK turned the view into the enum's values, in order
            mapping = self._value(node.func.value, depth=depth + 1, scope=scope)
            if isinstance(mapping, dict):
                return list(mapping.keys() if node.func.attr == "keys" else mapping.values())
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "list"
            and len(node.args) == 1
            and not node.keywords
        ):
            return list(self._value(node.args[0], depth=depth + 1, scope=scope))
        raise ValueError("not static")

    def _entry(self, node: ast.expr, depth: int, scope: Scope) -> Any:
        """A dict entry's value, or _UNKNOWN when it is not static."""
        try:
            return self._value(node, depth=depth + 1, scope=scope)
        except ValueError:
            return _UNKNOWN

    def name(
        self, name: str, module: SourceFile, depth: int, scope: Scope | None = None
    ) -> Any:
        """The value bound to ``name``: a local, a class attribute, a module name."""
        if scope is not None and scope.module is module:
            if name in scope.env:
                return scope.env[name]
            if scope.cls is not None:
                found = _class_binding(scope.cls, name, scope.before)
                if found is not None:
                    return self._value(found, depth=depth + 1, scope=scope)
        bound = _module_binding(module, name)
        if bound is not None:
            return self._value(bound, depth=depth + 1, scope=Scope(module))
        entry = module.imports.get(name)
        if entry is not None and entry[0] != "builtins":
            _, imported, nested = self.project.load_import(module, entry[0], entry[1])
            if imported is not None and not nested:
                return self.name(entry[1], imported, depth + 1)
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        raise ValueError(f"{name} is not static")

    # -- names that hold classes and modules -------------------------------------

    def _class(
        self, name: str, module: SourceFile, depth: int
    ) -> tuple[ast.ClassDef, SourceFile] | None:
        found = _top_level(module, name)
        if isinstance(found, ast.ClassDef):
            return found, module
        entry = module.imports.get(name)
        if entry is None or entry[0] == "builtins" or depth > _DEPTH:
            return None
        _, imported, nested = self.project.load_import(module, entry[0], entry[1])
        if imported is None or nested:
            return None
        return self._class(entry[1], imported, depth + 1)

    def _owner(
        self, node: ast.expr, scope: Scope, depth: int
    ) -> tuple[Any, Scope] | None:
        """For ``X`` of ``X.attr``: a lookup of attributes of class or module ``X``."""
        if not isinstance(node, ast.Name) or node.id in scope.env:
            return None
        found = self._class(node.id, scope.module, depth)
        if found is not None:
            cls, module = found
            if cls is scope.cls:
                return None  # a class body cannot name its own class: NameError in Python
            return (lambda attr: _class_binding(cls, attr, None)), Scope(module, cls)
        sibling = self._imported_module(scope.module, node.id)
        if sibling is not None:
            return (lambda attr: _module_binding(sibling, attr)), Scope(sibling)
        return None

    def _imported_module(self, module: SourceFile, name: str) -> SourceFile | None:
        """The sibling module ``name`` is in ``module``: ``import helpers``, or
        ``from pkg import seed [as alias]`` when ``pkg/seed.py`` is that module."""
        entry = module.imports.get(name)
        if entry is None or entry[0] in ("builtins", "cog"):
            return None
        _, imported, nested = self.project.load_import(module, entry[0], entry[1])
        return imported if entry[0] == entry[1] or nested else None

    # -- Input(...) held elsewhere -------------------------------------------------

    def input_ref(
        self, node: ast.expr, scope: Scope, depth: int = 0, shared: bool = True
    ) -> InputRef | None:
        """The ``Input(...)`` call ``node`` evaluates to in ``scope``, or None."""
        if depth > _DEPTH:
            return None
        module = scope.module
        if isinstance(node, ast.Call):
            if self._is_cog_input(node.func, scope, depth):
                return InputRef(node, scope, shared)
            return self._called(node, scope, depth)
        if isinstance(node, ast.Name):
            if node.id in scope.env:
                return None
            if scope.cls is not None:
                found = _class_binding(scope.cls, node.id, scope.before)
                if found is not None:
                    return self.input_ref(found, scope, depth + 1, shared)
            bound = _module_binding(module, node.id)
            if bound is not None:
                return self.input_ref(bound, Scope(module), depth + 1, shared)
            entry = module.imports.get(node.id)
            if entry is not None and entry[0] not in ("builtins", "cog"):
                _, imported, nested = self.project.load_import(module, entry[0], entry[1])
                if imported is not None and not nested:
                    name = ast.Name(id=entry[1], ctx=ast.Load())
                    return self.input_ref(name, Scope(imported), depth + 1, shared)
            return None
        if isinstance(node, ast.Attribute):
            owner = self._owner(node.value, scope, depth)
            if owner is not None:
                bound_in, owner_scope = owner
                found = bound_in(node.attr)
                if found is not None:
                    return self.input_ref(found, owner_scope, depth + 1, shared)
        return None

    def _is_cog_input(self, func: ast.expr, scope: Scope, depth: int) -> bool:
        module = scope.module
        if isinstance(func, ast.Name):
            if func.id in scope.env or _module_binding(module, func.id) is not None:
                return False
            entry = module.imports.get(func.id)
            return (
                entry is not None
                and (entry[0] == "cog" or entry[0].startswith("cog."))
                and entry[1] == "Input"
            )
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            entry = module.imports.get(func.value.id)
            return entry is not None and entry == ("cog", "cog") and func.attr == "Input"
        return False

    def _callee(
        self, func: ast.expr, scope: Scope, depth: int
    ) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, SourceFile, bool] | None:
        """The function a call runs: (definition, its module, whether ``cls`` is bound)."""
        module = scope.module
        if isinstance(func, ast.Name):
            found = _top_level(module, func.id)
            if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return found, module, False
            entry = module.imports.get(func.id)
            if found is None and entry is not None and entry[0] not in ("builtins", "cog"):
                _, imported, nested = self.project.load_import(module, entry[0], entry[1])
                if imported is not None and not nested and depth <= _DEPTH:
                    name = ast.Name(id=entry[1], ctx=ast.Load())
                    return self._callee(name, Scope(imported), depth + 1)
            return None
        if not isinstance(func, ast.Attribute) or not isinstance(func.value, ast.Name):
            return None
        owner = self._class(func.value.id, module, depth)
        if owner is not None:
            cls, cls_module = owner
            if cls is scope.cls:
                return None  # NameError in Python, as above
            method = next(
                (
                    stmt
                    for stmt in reversed(cls.body)
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and stmt.name == func.attr
                ),
                None,
            )
            if method is None:
                return None
            return method, cls_module, "classmethod" in _decorators(method)
        imported = self._imported_module(module, func.value.id)
        if imported is not None:
            name = ast.Name(id=func.attr, ctx=ast.Load())
            return self._callee(name, Scope(imported), depth + 1)
        return None

    def _called(self, call: ast.Call, scope: Scope, depth: int) -> InputRef | None:
        """A call of a function whose whole body is ``return <an Input(...)>``."""
        callee = self._callee(call.func, scope, depth)
        if callee is None:
            return None
        func, func_module, binds_cls = callee
        body = func.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body = body[1:]  # the docstring
        if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
            return None
        returned = body[0].value
        try:
            env = self._bind(func, call, scope, func_module, binds_cls, depth)
        except ValueError:
            return None
        return self.input_ref(returned, Scope(func_module, env=env), depth + 1, shared=False)

    def _bind(
        self,
        func: ast.FunctionDef | ast.AsyncFunctionDef,
        call: ast.Call,
        scope: Scope,
        func_module: SourceFile,
        binds_cls: bool,
        depth: int,
    ) -> dict[str, Any]:
        """Python's binding of ``call``'s arguments to ``func``'s parameters, evaluated."""
        args = func.args
        if args.vararg is not None or args.kwarg is not None:
            raise ValueError("*args/**kwargs")
        positional = [a.arg for a in (*args.posonlyargs, *args.args)]
        if binds_cls:
            positional = positional[1:]
        env: dict[str, Any] = {}
        if len(call.args) > len(positional):
            raise ValueError("too many arguments")
        for name, node in zip(positional, call.args, strict=False):
            if isinstance(node, ast.Starred):
                raise ValueError("*args")
            env[name] = self._value(node, depth=depth + 1, scope=scope)
        keyword_names = {a.arg for a in args.kwonlyargs} | set(positional)
        for keyword in call.keywords:
            if keyword.arg is None or keyword.arg not in keyword_names or keyword.arg in env:
                raise ValueError("bad keyword")
            env[keyword.arg] = self._value(keyword.value, depth=depth + 1, scope=scope)
        defaults = dict(
            zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
        )
        defaults.update(
            (a.arg, d)
            for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
            if d is not None
        )
        for name in [*positional, *(a.arg for a in args.kwonlyargs)]:
            if name not in env:
                if name not in defaults:
                    raise ValueError(f"missing argument {name}")
                env[name] = self._value(defaults[name], depth=depth + 1, scope=Scope(func_module))
        return env
