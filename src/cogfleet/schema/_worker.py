"""Child process that imports a Cog predictor/trainer and prints its OpenAPI document.

Run as ``python -m cogfleet.schema._worker BUILD_DIR [--predict REF] [--train REF]``
with BUILD_DIR as the working directory (:func:`cogfleet.schema.generate_schema`
does this). Without refs it reads ``BUILD_DIR/cog.yaml``.

stdout carries exactly one JSON value: the document, or
``{"error": {"file": ..., "message": ..., "line": ...}}`` (exit status 2) for a
problem in the user's code. Anything the user's module prints goes to stderr, so
it cannot corrupt the answer.

Inputs come from the Cog SDK's own introspection (``cog._inspector``), patched
where the SDK and Cog's Go generator disagree: whether ``default=`` was written
(read from the source with ``ast``), ``accept=``, and outputs (resolved here from
the type hints with the Go ``SchemaType`` rules, because the SDK rejects e.g.
``list[BaseModel]``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib.util
import inspect
import json
import os
import sys
import textwrap
import traceback
import typing
import warnings
from collections.abc import AsyncIterator as AbcAsyncIterator
from collections.abc import Iterator as AbcIterator
from pathlib import Path
from types import ModuleType, UnionType
from typing import Any, NamedTuple

from cogfleet._errors import ConfigError
from cogfleet.schema._document import (
    _go_float,
    assemble_document,
    merge_documents,
    read_cog_refs,
    title_case,
)


class UserCodeError(Exception):
    """A problem in the user's predictor/trainer: reported as one line, no traceback."""

    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.message = " ".join(message.split())
        self.line = line


class _Target(NamedTuple):
    file: str
    fn: Any
    is_method: bool
    method_name: str


# ---------------------------------------------------------------------------
# Loading user code
# ---------------------------------------------------------------------------

_modules: dict[str, ModuleType] = {}


def _error_line(exc: BaseException, path: Path) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename).resolve() == path:
        return exc.lineno
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if Path(frame.f_code.co_filename).resolve() == path:
            line = lineno
    return line


def _load_module(build_dir: Path, file: str) -> ModuleType:
    path = (build_dir / file).resolve()
    key = str(path)
    if key in _modules:
        return _modules[key]
    if not path.is_file():
        raise UserCodeError(file, "file not found")
    # Same loading as coglet's load_predictor_from_ref: by path, named after the file.
    module_name = path.name.removesuffix(".py")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(file, "cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except SyntaxError as exc:
        raise UserCodeError(file, f"SyntaxError: {exc.msg}", _error_line(exc, path)) from exc
    except BaseException as exc:  # noqa: BLE001 - any failure of user code is a user error
        raise UserCodeError(
            file, f"import failed: {type(exc).__name__}: {exc}", _error_line(exc, path)
        ) from exc
    _modules[key] = module
    return module


def _find_target(build_dir: Path, ref: str, train: bool) -> _Target:
    from cog._inspector import _selected_predict_method, _unwrap

    file, name = ref.rsplit(":", 1)
    module = _load_module(build_dir, file)
    obj = getattr(module, name, None)
    if obj is None:
        raise UserCodeError(file, f"{name} not found")
    if inspect.isclass(obj):
        if train:
            method = obj.__dict__.get("train") or getattr(obj, "train", None)
            if method is None:
                raise UserCodeError(file, f"{name}.train() not found")
            method_name = "train"
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    method_name, method = _selected_predict_method(obj, name)
            except ValueError as exc:
                raise UserCodeError(file, str(exc)) from exc
        return _Target(file, _unwrap(method), True, method_name)
    if inspect.isfunction(obj):
        return _Target(file, _unwrap(obj), False, name)
    raise UserCodeError(file, f"{name} is neither a class nor a function")


# ---------------------------------------------------------------------------
# Source facts the runtime objects do not keep
# ---------------------------------------------------------------------------


class _SourceFacts(NamedTuple):
    # param name -> True: `Input(default=...)` or a plain default, False: Input() without
    # default=, None: a default expression that is not a direct Input() call.
    default_given: dict[str, bool | None]
    streaming: bool


def _is_named(node: ast.expr, name: str) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    return (isinstance(node, ast.Name) and node.id == name) or (
        isinstance(node, ast.Attribute) and node.attr == name
    )


def _source_facts(fn: Any) -> _SourceFacts | None:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    func = next(
        (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))),
        None,
    )
    if func is None:
        return None
    args = [*func.args.posonlyargs, *func.args.args]
    defaults = func.args.defaults
    given: dict[str, bool | None] = {}
    for arg, default in zip(args[len(args) - len(defaults) :], defaults, strict=True):
        if isinstance(default, ast.Call) and _is_named(default.func, "Input"):
            # Cog's Go parser only counts the keyword: Input("x") has no default.
            given[arg.arg] = any(kw.arg == "default" for kw in default.keywords)
        elif isinstance(default, (ast.Attribute, ast.Call)):
            given[arg.arg] = None
        else:
            given[arg.arg] = True
    streaming = any(_is_named(d, "streaming") for d in func.decorator_list)
    return _SourceFacts(given, streaming)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _json_literal(value: Any, what: str, file: str) -> Any:
    """A default/choice as the JSON value Cog's generator would print."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_literal(v, what, file) for v in value]
    if isinstance(value, dict):
        return {_json_key(k, what, file): _json_literal(v, what, file) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise UserCodeError(file, f"{what}: {type(value).__name__} cannot be written into the schema")


def _json_key(key: Any, what: str, file: str) -> str:
    # Go prints a non-string dict key with %v: 1 -> "1", True -> "true", 2.0 -> "2".
    literal = _json_literal(key, what, file)
    if isinstance(literal, str):
        return literal
    if isinstance(literal, float):
        return _go_float(literal)
    return json.dumps(literal)


def _primitive_fragment(primitive: Any, where: str, file: str) -> dict[str, Any]:
    from cog._adt import PrimitiveType

    if primitive is PrimitiveType.CUSTOM:
        raise UserCodeError(file, f"{where}: unsupported type")
    fragment: dict[str, Any] = primitive.json_type()
    return fragment


def _input_fragment(ft: Any, where: str, file: str) -> dict[str, Any]:
    from cog._adt import Repetition

    if ft.union_variants is not None:
        nullable = ft.repetition is Repetition.OPTIONAL
        variants = []
        for variant in ft.union_variants:
            fragment = _input_fragment(variant, where, file)
            if nullable:
                fragment["nullable"] = True
            variants.append(fragment)
        return {"anyOf": variants}
    item = _primitive_fragment(ft.primitive, where, file)
    if ft.repetition in (Repetition.REPEATED, Repetition.OPTIONAL_REPEATED):
        return {"type": "array", "items": item}
    return item


def _build_inputs(
    target: _Target, facts: _SourceFacts | None
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    from cog._adt import PrimitiveType, Repetition
    from cog._inspector import (
        _create_input_field,
        _strip_non_opaque_annotated,
        _validate_run_or_predict,
    )
    from cog.input import FieldInfo

    file, fn = target.file, target.fn
    try:
        _validate_run_or_predict(fn, target.method_name, target.is_method)
    except ValueError as exc:
        raise UserCodeError(file, str(exc)) from exc
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - unresolvable annotations are user errors
        raise UserCodeError(
            file, f"{target.method_name}(): cannot resolve annotations: {exc}"
        ) from exc
    hints = {k: _strip_non_opaque_annotated(v) for k, v in hints.items()}

    params = list(inspect.signature(fn).parameters.values())
    if target.is_method:
        params = params[1:]

    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: list[tuple[str, dict[str, Any]]] = []
    for order, param in enumerate(params):
        name = param.name
        where = f"{target.method_name}() input '{name}'"
        if name not in hints:
            raise UserCodeError(file, f"{where} has no type annotation")
        raw = None if param.default is inspect.Parameter.empty else param.default
        try:
            field = _create_input_field(order, name, hints[name], raw)
        except (ValueError, TypeError, AssertionError) as exc:
            raise UserCodeError(file, str(exc)) from exc
        info = raw if isinstance(raw, FieldInfo) else None

        # Was a default given, in the Go parser's sense?
        if param.default is inspect.Parameter.empty:
            given = False
        elif info is None:
            given = True
        else:
            from_source = facts.default_given.get(name) if facts else None
            # Without a direct Input() call in the source, fall back to the runtime
            # value (None is Input()'s "no default" sentinel).
            given = from_source if from_source is not None else info.default is not None
        default_value = (info.default if info is not None else raw) if given else None

        ft = field.type
        is_union = ft.union_variants is not None
        nullable = ft.repetition in (Repetition.OPTIONAL, Repetition.OPTIONAL_REPEATED)
        # `api_key: Secret = Input(default=None)` is the one None default that makes a
        # plain type optional; `seed: int = Input(default=None)` stays required.
        if (
            ft.primitive is PrimitiveType.SECRET
            and ft.repetition is Repetition.REQUIRED
            and not is_union
            and given
            and default_value is None
        ):
            nullable = True
        effective_default = given and not (default_value is None and not nullable)

        prop: dict[str, Any] = {"x-order": order}
        choices = info.choices if info is not None else None
        if choices:
            enum_type = _primitive_fragment(ft.primitive, where, file).get("type") or "string"
            enums.append(
                (
                    name,
                    {
                        "description": "An enumeration.",
                        "enum": [_json_literal(c, f"{where} choices", file) for c in choices],
                        "title": name,
                        "type": enum_type,
                    },
                )
            )
            prop["allOf"] = [{"$ref": "#/components/schemas/" + name}]
        else:
            prop["title"] = title_case(name)
            prop.update(_input_fragment(ft, where, file))

        if not effective_default and (
            is_union or ft.repetition in (Repetition.REQUIRED, Repetition.REPEATED)
        ):
            required.append(name)
        if effective_default:
            prop["default"] = _json_literal(default_value, f"{where} default", file)
        if nullable:
            prop["nullable"] = True
        if info is not None:
            if info.description is not None:
                prop["description"] = info.description
            if info.ge is not None:
                prop["minimum"] = float(info.ge)
            if info.le is not None:
                prop["maximum"] = float(info.le)
            if info.min_length is not None:
                prop["minLength"] = int(info.min_length)
            if info.max_length is not None:
                prop["maxLength"] = int(info.max_length)
            if info.regex is not None:
                prop["pattern"] = info.regex
            if info.deprecated:
                prop["deprecated"] = True
            if info.accept is not None:
                prop["x-cog-accept"] = info.accept
        properties[name] = prop

    schema: dict[str, Any] = {"properties": properties, "type": "object"}
    if required:
        schema["required"] = required
    return schema, enums


# ---------------------------------------------------------------------------
# Outputs (Go SchemaType rules)
# ---------------------------------------------------------------------------


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, UnionType)


def _opaque_inner(tp: Any) -> tuple[Any, bool]:
    from cog._adt import _unwrap_opaque

    inner, opaque = _unwrap_opaque(tp)
    return inner, bool(opaque)


def _is_model(tp: Any) -> bool:
    from cog.model import BaseModel as CogBaseModel

    if not inspect.isclass(tp):
        return False
    if issubclass(tp, CogBaseModel) and tp is not CogBaseModel:
        return True
    try:
        from pydantic import BaseModel as PydanticBaseModel
    except ImportError:  # pragma: no cover - pydantic is a cogfleet dependency
        return False
    return issubclass(tp, PydanticBaseModel) and tp is not PydanticBaseModel


def _is_typeddict(tp: Any) -> bool:
    return bool(typing.is_typeddict(tp))


def _opaque_output(inner: Any) -> dict[str, Any]:
    if inner is list or typing.get_origin(inner) is list:
        return {"type": "array", "items": {"type": "object"}}
    return {"type": "object"}


def _model_fields(tp: Any) -> list[tuple[str, Any, bool]]:
    """(name, annotation, has_default) for a cog/pydantic BaseModel or a TypedDict."""
    hints = typing.get_type_hints(tp, include_extras=True)
    if _is_typeddict(tp):
        required_keys = getattr(tp, "__required_keys__", frozenset(hints))
        return [(name, hints[name], name not in required_keys) for name in hints]
    if dataclasses.is_dataclass(tp):
        return [
            (
                f.name,
                hints.get(f.name, f.type),
                f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING,
            )
            for f in dataclasses.fields(tp)
        ]
    fields = getattr(tp, "model_fields", {})
    return [
        (name, hints.get(name, info.annotation), not info.is_required())
        for name, info in fields.items()
    ]


def _field_schema(tp: Any, seen: tuple[Any, ...], where: str) -> tuple[dict[str, Any], bool]:
    """Schema of one model field and whether its type makes it required."""
    inner, opaque = _opaque_inner(tp)
    if opaque:
        if _is_union(inner) and type(None) in typing.get_args(inner):
            rest = [a for a in typing.get_args(inner) if a is not type(None)]
            return {**_opaque_output(rest[0] if len(rest) == 1 else inner), "nullable": True}, False
        return _opaque_output(inner), True
    if typing.get_origin(tp) is typing.Annotated:
        return _field_schema(typing.get_args(tp)[0], seen, where)
    if _is_union(tp):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(args) == 2 and len(rest) == 1:
            schema = _output_schema(rest[0], seen, where)
            schema["nullable"] = True
            return schema, False
    return _output_schema(tp, seen, where), True


def _output_schema(tp: Any, seen: tuple[Any, ...], where: str) -> dict[str, Any]:
    from cog import AsyncConcatenateIterator, ConcatenateIterator, File, Secret
    from cog import Path as CogPath

    inner, opaque = _opaque_inner(tp)
    if opaque:
        if _is_union(inner) and type(None) in typing.get_args(inner):
            raise UserCodeError(where, "Optional is not supported as an output type")
        return _opaque_output(inner)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _output_schema(args[0], seen, where)
    if _is_union(tp):
        if len(args) == 2 and type(None) in args:
            raise UserCodeError(where, "Optional is not supported as an output type")
        raise UserCodeError(where, "union types are not supported as output")
    if tp is Any or tp is dict or tp is typing.Dict:  # noqa: UP006 - matching the alias itself
        return {"type": "object"}
    if tp is list or tp is typing.List:  # noqa: UP006
        return {"type": "array", "items": {"type": "object"}}
    primitives: dict[Any, dict[str, Any]] = {
        bool: {"type": "boolean"},
        int: {"type": "integer"},
        float: {"type": "number"},
        str: {"type": "string"},
        CogPath: {"format": "uri", "type": "string"},
        File: {"format": "uri", "type": "string"},
        Secret: {
            "format": "password",
            "type": "string",
            "writeOnly": True,
            "x-cog-secret": True,
        },
    }
    if tp in primitives:
        return dict(primitives[tp])
    if _is_model(tp) or _is_typeddict(tp):
        if tp in seen:
            # Go breaks recursive models with an opaque object.
            return {"type": "object"}
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, annotation, has_default in _model_fields(tp):
            schema, type_required = _field_schema(annotation, (*seen, tp), where)
            schema["title"] = title_case(name)
            if type_required and not has_default:
                required.append(name)
            properties[name] = schema
        result: dict[str, Any] = {"properties": properties, "type": "object"}
        if required:
            result["required"] = required
        return result
    if origin is dict:
        if len(args) == 2:
            return {"additionalProperties": _output_schema(args[1], seen, where), "type": "object"}
        return {"type": "object"}
    if origin is list:
        if len(args) != 1:
            raise UserCodeError(where, "list expects exactly 1 type argument")
        return {"items": _output_schema(args[0], seen, where), "type": "array"}
    concat = (ConcatenateIterator, AsyncConcatenateIterator)
    if origin in concat or tp in concat:
        if len(args) != 1 or args[0] is not str:
            raise UserCodeError(where, "ConcatenateIterator must have str elements")
        return {
            "items": {"type": "string"},
            "type": "array",
            "x-cog-array-display": "concatenate",
            "x-cog-array-type": "iterator",
        }
    if origin in (AbcIterator, AbcAsyncIterator):
        if len(args) != 1:
            raise UserCodeError(where, "Iterator expects exactly 1 type argument")
        return {
            "items": _output_schema(args[0], seen, where),
            "type": "array",
            "x-cog-array-type": "iterator",
        }
    name = getattr(tp, "__name__", None) or str(tp)
    raise UserCodeError(where, f"unsupported output type {name}")


def _build_output(target: _Target) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(target.fn, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - unresolvable annotations are user errors
        raise UserCodeError(target.file, f"cannot resolve the return annotation: {exc}") from exc
    if "return" not in hints:
        raise UserCodeError(target.file, f"{target.method_name}() must have a return annotation")
    try:
        schema = _output_schema(hints["return"], (), target.file)
    except UserCodeError as exc:
        raise UserCodeError(target.file, f"{target.method_name}() output: {exc.message}") from exc
    except Exception as exc:  # noqa: BLE001 - e.g. unresolvable model field annotations
        raise UserCodeError(target.file, f"{target.method_name}() output: {exc}") from exc
    schema["title"] = "Output"
    return schema


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def build_mode_document(build_dir: Path, ref: str, *, train: bool) -> dict[str, Any]:
    """The single-mode document for one ref (``"predict.py:Predictor"``)."""
    target = _find_target(build_dir, ref, train)
    facts = _source_facts(target.fn)
    input_schema, enums = _build_inputs(target, facts)
    output_schema = _build_output(target)
    return assemble_document(
        train=train,
        input_schema=input_schema,
        output_schema=output_schema,
        enums=enums,
        streaming=bool(facts and facts.streaming),
    )


def build_document(build_dir: Path, predict_ref: str | None, train_ref: str | None) -> Any:
    """The document ``cog build`` would produce for these refs (merged when both are set)."""
    predict_doc = build_mode_document(build_dir, predict_ref, train=False) if predict_ref else None
    train_doc = build_mode_document(build_dir, train_ref, train=True) if train_ref else None
    if predict_doc is not None and train_doc is not None:
        return merge_documents(predict_doc, train_doc)
    return predict_doc if predict_doc is not None else train_doc


def main(argv: list[str] | None = None) -> int:
    """Print the document (or a one-line user error) as JSON on the original stdout."""
    parser = argparse.ArgumentParser(prog="python -m cogfleet.schema._worker")
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--predict")
    parser.add_argument("--train")
    args = parser.parse_args(argv)

    # Keep the real stdout for the answer; whatever user code prints (even from C
    # extensions writing to fd 1) lands on stderr.
    sys.stdout.flush()
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    build_dir = args.build_dir.resolve()
    sys.path.insert(0, str(build_dir))
    status = 0
    try:
        predict_ref, train_ref = args.predict, args.train
        if predict_ref is None and train_ref is None:
            predict_ref, train_ref = read_cog_refs(build_dir)
        payload: Any = build_document(build_dir, predict_ref, train_ref)
    except UserCodeError as exc:
        payload = {"error": {"file": exc.file, "message": exc.message, "line": exc.line}}
        status = 2
    except ConfigError as exc:
        payload = {"error": {"file": exc.path, "message": exc.message, "line": exc.line}}
        status = 2
    with answer:
        json.dump(payload, answer, ensure_ascii=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
