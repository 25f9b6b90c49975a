"""The parameters of the target callable and their ``Input(...)`` calls, as Cog reads them.

Only keyword arguments of ``Input(...)`` count (``parseInputCall``); each is read the
way the Go parser reads it (literals, module constants where Cog resolves them, and
``default=`` that does not resolve counts as ``default=None``). What the parser could
not read and so ignored is kept on :attr:`InputCall.unread`, for the lint that tells
users about it.

A parameter's default may also name an ``Input(...)`` held elsewhere in the file, as
Cog's input registry (``collectInputRegistry``) resolves it: a class attribute
(``Inputs.seed`` for ``class Inputs: seed = Input(...)``) or a method of a class that
returns one (``Inputs.guidance(7.5)``), whose call-site arguments named ``default``,
``description``, ``ge`` or ``le`` replace those of the ``Input(...)`` when they are
literals. Anything else (a module-level ``SEED = Input(...)``, a helper function)
is a default Cog cannot resolve, an error.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field

from cogfleet.schema._annotations import Annotation, parse_annotation
from cogfleet.schema._sourcefile import (
    NONE,
    Literal,
    SourceError,
    SourceFile,
    go_parse_float,
    go_string_literal,
)
from cogfleet.schema._targets import FuncDef

__all__ = ["InputCall", "InputRegistry", "Param", "Unread", "read_params"]


@dataclass(frozen=True)
class Unread:
    """A keyword argument of ``Input(...)`` whose value Cog's parser cannot read.

    Cog ignores it (``default=`` becomes ``default=None``), where Python, and so Cog
    <= 0.16, used the value.
    """

    keyword: str
    text: str
    line: int
    via: str = ""
    """``"Inputs.guidance(...)"`` when the argument is at the call site of a registry
    method (where only literals replace the method's own values)."""


@dataclass
class InputCall:
    """Keyword arguments of one ``Input(...)`` call, as Cog's parser reads them."""

    default: Literal | None = None
    description: str | None = None
    description_is_constant: bool = False
    ge: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    regex: str | None = None
    choices: list[Literal] | None = None
    deprecated: bool | None = None
    accept: str | None = None
    unread: list[Unread] = field(default_factory=list)


@dataclass
class Param:
    """One parameter of the target callable."""

    name: str
    order: int
    annotation: Annotation
    line: int
    has_default: bool = False
    # The parameter's default: an Input(...) call, or a plain literal.
    input_call: InputCall | None = None
    plain_default: Literal | None = None
    # The default expression's source text (for messages).
    default_text: str = ""


def _is_input_call(module: SourceFile, node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func_text = module.segment(node.func)
    if func_text == "Input":
        return True
    entry = module.imports.get(func_text)
    return entry is not None and entry[0] == "cog" and entry[1] == "Input"


def _parse_input_call(module: SourceFile, call: ast.Call, param: str) -> InputCall:
    info = InputCall()
    for keyword in call.keywords:
        if keyword.arg is None:
            continue
        value = keyword.value
        text = module.go_node_text(value, keyword)
        key = keyword.arg
        unread = Unread(key, text, value.lineno)
        if key == "default":
            static_value = module.resolve(value, text)
            info.default = static_value if static_value is not None else NONE
            if static_value is None:
                info.unread.append(unread)
        elif key == "default_factory":
            raise SourceError(
                module.rel,
                f"parameter '{param}': default_factory is not supported in static schema "
                "generation",
                keyword.value.lineno,
            )
        elif key == "description":
            info.description = module.resolve_string(value, text)
            info.description_is_constant = isinstance(value, ast.Name)
            if info.description is None:
                info.unread.append(unread)
        elif key in ("ge", "le"):
            number = go_parse_float(text.strip())
            if number is not None:
                setattr(info, key, number)
            else:
                info.unread.append(unread)
        elif key in ("min_length", "max_length"):
            number = go_parse_float(text.strip())
            if number is not None and number >= 0:
                setattr(info, key, int(number))
            else:
                info.unread.append(unread)
        elif key in ("regex", "accept"):
            string = None if text.startswith("(") else go_string_literal(text)
            setattr(info, key, string)
            if string is None:
                info.unread.append(unread)
        elif key == "choices":
            choices = module.resolve_choices(value, text)
            if choices is None:
                raise SourceError(
                    module.rel,
                    f"parameter '{param}': choices expression cannot be statically resolved",
                    keyword.value.lineno,
                )
            info.choices = choices
        elif key == "deprecated":
            stripped = text.strip()
            if stripped in ("True", "False"):
                info.deprecated = stripped == "True"
            else:
                info.unread.append(unread)
    return info


# ---------------------------------------------------------------------------
# The input registry (collectInputRegistry, resolveInputReference)
# ---------------------------------------------------------------------------


@dataclass
class _Method:
    params: list[str]
    base: InputCall


@dataclass
class InputRegistry:
    """``Input(...)`` calls held by class attributes and returned by methods, per file."""

    attributes: dict[str, InputCall] = field(default_factory=dict)
    methods: dict[str, _Method] = field(default_factory=dict)

    @classmethod
    def collect(cls, module: SourceFile) -> InputRegistry:
        """Every ``Class.attr = Input(...)`` and ``Class.method`` returning one, in ``module``."""
        registry = cls()
        for stmt in module.tree.body:
            if not isinstance(stmt, ast.ClassDef):
                continue
            for member in stmt.body:
                if isinstance(member, (ast.Assign, ast.AnnAssign)):
                    registry._attribute(module, stmt.name, member)
                elif isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    registry._method(module, stmt.name, member)
        return registry

    def _attribute(self, module: SourceFile, owner: str, stmt: ast.Assign | ast.AnnAssign) -> None:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) != 1:
            return
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
        value = stmt.value
        if not isinstance(target, ast.Name) or not isinstance(value, ast.Call):
            return
        if not _is_input_call(module, value):
            return
        key = f"{owner}.{target.id}"
        try:
            self.attributes[key] = _parse_input_call(module, value, key)
        except SourceError:
            pass  # Cog leaves such an attribute out of the registry

    def _method(self, module: SourceFile, owner: str, func: FuncDef) -> None:
        args = func.args
        names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
        returned = next(
            (
                stmt.value
                for stmt in func.body
                if isinstance(stmt, ast.Return)
                and stmt.value is not None
                and _is_input_call(module, stmt.value)
            ),
            None,
        )
        if returned is None:
            return
        assert isinstance(returned, ast.Call)
        key = f"{owner}.{func.name}"
        try:
            base = _parse_input_call(module, returned, key)
        except SourceError:
            return
        params = [name for name in names if name not in ("self", "cls")]
        self.methods[key] = _Method(params, base)

    def resolve(self, module: SourceFile, node: ast.expr) -> InputCall | None:
        """``resolveInputReference``: the ``Input(...)`` a default names, if Cog finds one."""
        if isinstance(node, ast.Attribute):
            found = self.attributes.get(module.segment(node))
            return None if found is None else dataclasses.replace(found, unread=[*found.unread])
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            return None
        key = module.segment(node.func)
        method = self.methods.get(key)
        if method is None:
            return None
        info = dataclasses.replace(method.base, unread=[*method.base.unread])
        # Call-site arguments in source order: keywords by name, the rest by position
        # (tree-sitter counts ``*a`` and ``**kw`` as positional arguments too).
        arguments: list[tuple[int, int, str | None, ast.expr]] = [
            (a.lineno, a.col_offset, None, a) for a in node.args
        ]
        arguments += [(k.lineno, k.col_offset, k.arg, k.value) for k in node.keywords]
        values: dict[str, ast.expr] = {}
        position = 0
        for _, _, name, value in sorted(arguments, key=lambda item: item[:2]):
            if name is not None:
                values[name] = value
            elif position < len(method.params):
                values[method.params[position]] = value
                position += 1
        via = f"{key}(...)"
        for name, value in values.items():
            if name not in ("default", "description", "ge", "le"):
                continue
            text = module.segment(value)
            literal: object
            if name == "default":
                literal = module.literal(value, text)
                if literal is not None:
                    info.default = literal
            elif name == "description":
                string = go_string_literal(text)
                if string is not None:
                    info.description = string
                    info.description_is_constant = False
                literal = string
            else:
                number = go_parse_float(text.strip())
                if number is not None:
                    setattr(info, name, number)
                literal = number
            info.unread = [u for u in info.unread if u.keyword != name]
            if literal is None:
                info.unread.append(Unread(name, text, value.lineno, via))
        return info


def _param_nodes(func: FuncDef) -> list[tuple[ast.arg, ast.expr | None]]:
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults.extend(args.defaults)
    result = list(zip(positional, defaults, strict=True))
    result.extend(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    return result


def read_params(module: SourceFile, func: FuncDef, method: str) -> tuple[list[Param], bool]:
    """The typed parameters of ``func`` (in ``module``) and whether it is a method."""
    pairs = _param_nodes(func)
    registry: InputRegistry | None = None
    first_untyped = next((a for a, _ in pairs if a.annotation is None), None)
    is_method = first_untyped is not None and first_untyped.arg == "self"
    params: list[Param] = []
    seen_self = False
    order = 0
    for arg, default in pairs:
        if arg.annotation is None:
            if default is None:
                if is_method and not seen_self and arg.arg == "self":
                    seen_self = True
                continue  # Cog's parser skips an untyped parameter without a default
            raise SourceError(
                module.rel,
                f"parameter '{arg.arg}' on {method} has no type annotation",
                arg.lineno,
            )
        annotation = parse_annotation(module, arg.annotation)
        param = Param(arg.arg, order, annotation, arg.lineno)
        order += 1
        if default is not None:
            param.has_default = True
            param.default_text = module.segment(default)
            if _is_input_call(module, default):
                assert isinstance(default, ast.Call)
                param.input_call = _parse_input_call(module, default, arg.arg)
                params.append(param)
                continue
            if registry is None:
                registry = InputRegistry.collect(module)
            param.input_call = registry.resolve(module, default)
            if param.input_call is None:
                resolved = module.resolve(default)
                if resolved is None:
                    raise SourceError(
                        module.rel,
                        f"parameter '{arg.arg}': default `{param.default_text}` cannot be "
                        "statically resolved",
                        default.lineno,
                    )
                param.plain_default = resolved
        params.append(param)
    return params, is_method
