"""The parameters of the target callable and their ``Input(...)`` calls, as Cog reads them.

Only keyword arguments of ``Input(...)`` count (``parseInputCall``); each is read the
way the Go parser reads it (literals, module constants where Cog resolves them, and
``default=`` that does not resolve counts as ``default=None``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

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

__all__ = ["InputCall", "Param", "read_params"]


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
        if key == "default":
            static_value = module.resolve(value, text)
            info.default = static_value if static_value is not None else NONE
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
        elif key in ("ge", "le"):
            number = go_parse_float(text.strip())
            if number is not None:
                setattr(info, key, number)
        elif key in ("min_length", "max_length"):
            number = go_parse_float(text.strip())
            if number is not None and number >= 0:
                setattr(info, key, int(number))
        elif key in ("regex", "accept"):
            if not text.startswith("("):
                setattr(info, key, go_string_literal(text))
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
    pairs = _param_nodes(func)
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
            else:
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
