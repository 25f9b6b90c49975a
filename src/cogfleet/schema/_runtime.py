"""The document of Cog <= 0.16, which the SDK wrote by importing the predictor.

Up to 0.16, ``cog build`` ran ``python -m cog.command.openapi_schema`` in the image:
the SDK built pydantic models from ``predict()``'s signature and FastAPI wrote the
document, which the CLI re-marshalled through Go maps. This module gives the same
document from the source alone, following what that code does with the pydantic
major the image gets (:attr:`Rules.pydantic`):

- inputs are validated as the SDK validates them (str, int, float, bool, Path,
  File, Secret, and Union/List of those; ``Optional`` from 0.14.3; ``deprecated=``
  from 0.15.1), and values are what Python would see, so constants imported from
  sibling modules resolve;
- a ``None`` default is no default and the input is optional (never required);
- ``x-order`` is on every input with pydantic 1 and from 0.16.9; with today's
  pydantic 2 (>= 2.12) the SDKs before 0.16.9 keep it only on ``choices`` inputs;
- a BaseModel output named ``Output`` is inlined, any other is a ``$ref`` to its
  own component.

A model with a trainer gets the training components and paths too. What the SDK
refused is a :class:`SourceError` worded as the SDK words it; so is the one case not
reproduced (predict and train sharing a ``choices`` input name under pydantic 2).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from cogfleet.schema._source import (
    Annotation,
    ModelField,
    SourceError,
    _Module,
    _predict_methods,
    _Project,
    find_target,
)
from cogfleet.schema._versions import Rules

__all__ = ["runtime_document"]

_ALLOWED = "str, int, float, bool, cog.File, cog.Path, cog.Secret"
_REF = "#/components/schemas/"


def _version(rules: Rules) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in rules.version.split("."))
    return major, minor, patch


def _title(name: str) -> str:
    # pydantic's default field title.
    return name.replace("_", " ").title()


class _Evaluator:
    """What Python would compute for a default/choices expression, without running it."""

    def __init__(self, project: _Project, module: _Module) -> None:
        self.project = project
        self.module = module

    def value(self, node: ast.expr, module: _Module | None = None, depth: int = 0) -> Any:
        module = module or self.module
        if depth > 20:
            raise ValueError("too deep")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.value(e, module, depth + 1) for e in node.elts]
            return items
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError("dict unpacking")
            return {
                self.value(k, module, depth + 1): self.value(v, module, depth + 1)
                for k, v in zip(node.keys, node.values, strict=True)
                if k is not None
            }
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand, module, depth + 1)
            if isinstance(operand, bool) or not isinstance(operand, (int, float)):
                raise ValueError("not a number")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = self.value(node.left, module, depth + 1)
            right = self.value(node.right, module, depth + 1)
            if type(left) is type(right) and isinstance(left, (list, str, int, float)):
                return left + right
            raise ValueError("unsupported +")
        if isinstance(node, ast.Name):
            return self.name(node.id, module, depth)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "list"
        ):
            if len(node.args) == 1 and not node.keywords:
                inner = node.args[0]
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr in ("keys", "values")
                    and not inner.args
                ):
                    mapping = self.value(inner.func.value, module, depth + 1)
                    if isinstance(mapping, dict):
                        return list(
                            mapping.keys() if inner.func.attr == "keys" else mapping.values()
                        )
                return list(self.value(inner, module, depth + 1))
        raise ValueError("not static")

    def name(self, name: str, module: _Module, depth: int) -> Any:
        for stmt in reversed(module.tree.body):
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in stmt.targets
            ):
                return self.value(stmt.value, module, depth + 1)
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.target.id == name
                and stmt.value is not None
            ):
                return self.value(stmt.value, module, depth + 1)
        entry = module.imports.get(name)
        if entry is not None and entry[0] != "builtins":
            _, imported, nested = self.project.load_import(module, entry[0], entry[1])
            if imported is not None and not nested:
                return self.name(entry[1], imported, depth + 1)
        if name in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name]
        raise ValueError(f"{name} is not static")


class _Types:
    """Python's view of annotation names: what ``cog.Path``, ``List``... refer to."""

    def __init__(self, module: _Module) -> None:
        self.module = module

    def kind(self, name: str) -> str:
        """``cog.Path`` -> ``Path``; ``typing.List`` -> ``List``; a builtin -> itself."""
        if "." in name:
            head, rest = name.split(".", 1)
            entry = self.module.imports.get(head)
            if entry is not None and entry[1] == entry[0]:
                return f"{entry[0]}.{rest}"
            return name
        entry = self.module.imports.get(name)
        if entry is None:
            return name
        module, original = entry
        if module == "builtins":
            return original
        return f"{module}.{original}"


def _cog(kind: str) -> str | None:
    # Names that mean the cog type (cog.Path, cog.types.Path...).
    if kind.startswith("cog."):
        return kind.rsplit(".", 1)[1]
    return None


class _Renderer:
    def __init__(
        self, rules: Rules, project: _Project, module: _Module, models: dict[str, list[ModelField]]
    ) -> None:
        self.rules = rules
        self.version = _version(rules)
        self.p2 = rules.pydantic == 2
        self.project = project
        self.module = module
        self.types = _Types(module)
        self.models = models
        self.evaluator = _Evaluator(project, module)
        self.extra_components: dict[str, Any] = {}

    # -- input types -------------------------------------------------------

    def unsupported(self, what: str, param: str, line: int | None) -> SourceError:
        return SourceError(
            self.module.rel,
            f"Unsupported input type {what} for parameter `{param}`. Supported input types are: "
            f"{_ALLOWED}, or a Union or List of those types.",
            line,
        )

    def input_fragment(
        self, ann: Annotation, param: str, line: int | None
    ) -> tuple[dict[str, Any], bool]:
        """(schema fragment, nullable) for a parameter annotation."""
        if ann.kind == "simple":
            kind = self.types.kind(ann.name)
            if ann.name == "None" or kind == "None":
                raise self.unsupported("NoneType", param, line)
            base = {"str": "str", "int": "int", "float": "float", "bool": "bool"}.get(kind)
            if base is None:
                base = _cog(kind)
            fragment = self.primitive(base)
            if fragment is None:
                raise self.unsupported(ann.name.rsplit(".", 1)[-1], param, line)
            return fragment, False
        if ann.kind == "union":
            return self.union(list(ann.args), param, line)
        outer = self.types.kind(ann.name)
        short = outer.rsplit(".", 1)[-1]
        if short in ("List", "list") and outer in ("list", "typing.List", "List"):
            if len(ann.args) != 1:
                raise self.unsupported(str(ann), param, line)
            items, nullable = self.input_fragment(ann.args[0], param, line)
            if nullable:
                raise self.unsupported("NoneType", param, line)
            return {"items": items, "type": "array"}, False
        if outer in ("typing.Optional", "Optional", "typing_extensions.Optional"):
            return self.union([ann.args[0], Annotation("simple", "None")], param, line)
        if outer in ("typing.Union", "Union"):
            return self.union(list(ann.args), param, line)
        raise self.unsupported(short, param, line)

    def union(
        self, args: list[Annotation], param: str, line: int | None
    ) -> tuple[dict[str, Any], bool]:
        nullable = any(a.kind == "simple" and a.name == "None" for a in args)
        rest = [a for a in args if not (a.kind == "simple" and a.name == "None")]
        if nullable and self.version < (0, 14, 3):
            raise self.unsupported("NoneType", param, line)
        fragments = [self.input_fragment(a, param, line)[0] for a in rest]
        if len(fragments) == 1:
            return fragments[0], nullable
        return {"anyOf": fragments}, nullable

    def primitive(self, name: str | None) -> dict[str, Any] | None:
        if name == "str":
            return {"type": "string"}
        if name == "int":
            return {"type": "integer"}
        if name == "float":
            return {"type": "number"}
        if name == "bool":
            return {"type": "boolean"}
        if name in ("Path", "File"):
            return {"format": "uri", "type": "string"}
        if name == "Secret":
            fragment: dict[str, Any] = {
                "format": "password",
                "type": "string",
                "x-cog-secret": True,
            }
            if self.p2:
                fragment["writeOnly"] = True
            return fragment
        return None

    # -- values ------------------------------------------------------------

    def evaluate(self, node: ast.expr, what: str, line: int | None) -> Any:
        try:
            return self.evaluator.value(node)
        except (ValueError, TypeError, RecursionError):
            raise SourceError(
                self.module.rel,
                f"{what}: `{self.module.segment(node)}` cannot be evaluated without running "
                "the model's code",
                line,
            ) from None

    # -- Input -------------------------------------------------------------

    def inputs(
        self, func: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool, *, train: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``Input`` (``TrainingInput``) component and the enum components."""
        args = func.args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
        defaults.extend(args.defaults)
        pairs = list(zip(positional, defaults, strict=True))
        pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
        if is_method and pairs:
            pairs = pairs[1:]
        properties: dict[str, Any] = {}
        required: list[str] = []
        enums: dict[str, Any] = {}
        keep_order = not self.p2 or self.version >= (0, 16, 9)
        for order, (arg, default_node) in enumerate(pairs):
            name, line = arg.arg, arg.lineno
            if arg.annotation is None:
                raise SourceError(
                    self.module.rel,
                    f"No input type provided for parameter `{name}`. Supported input types are: "
                    f"{_ALLOWED}, or a Union or List of those types.",
                    line,
                )
            ann = self.module.annotation(arg.annotation)
            fragment, nullable = self.input_fragment(ann, name, line)
            kwargs: dict[str, Any] = {}
            has_default = False
            default: Any = None
            if default_node is not None:
                if self._is_input(default_node):
                    assert isinstance(default_node, ast.Call)
                    kwargs = self._input_kwargs(default_node, name, line)
                    if "default" in kwargs:
                        has_default = True
                        default = kwargs["default"]
                else:
                    has_default = True
                    default = self.evaluate(default_node, f"default of `{name}`", line)
            prop: dict[str, Any] = {}
            choices = kwargs.get("choices")
            if choices:
                base = fragment.get("type")
                if base not in ("string", "integer") or "format" in fragment:
                    raise SourceError(
                        self.module.rel,
                        f"The input {name} uses the option choices. Choices can only be used "
                        "with str or int types.",
                        line,
                    )
                values = list(dict.fromkeys(choices))
                enums[name] = {
                    "description": "An enumeration.",
                    "enum": values,
                    "title": name,
                    "type": base,
                }
                if train and self.p2:
                    # The SDK's pydantic-2 fix-ups rewrite only Input's enum properties.
                    prop["$ref"] = _REF + name
                else:
                    prop["allOf"] = [{"$ref": _REF + name}]
                prop["x-order"] = order
            else:
                prop["title"] = _title(name)
                prop.update(fragment)
                if nullable:
                    prop["nullable"] = True
                if keep_order:
                    prop["x-order"] = order
            if has_default and default is not None:
                prop["default"] = _json_value(default)
            for key, out in (
                ("description", "description"),
                ("ge", "minimum"),
                ("le", "maximum"),
                ("min_length", "minLength"),
                ("max_length", "maxLength"),
                ("regex", "pattern"),
            ):
                if kwargs.get(key) is not None:
                    value = kwargs[key]
                    prop[out] = float(value) if key in ("ge", "le") else value
            if kwargs.get("deprecated"):
                prop["deprecated"] = True
            if not has_default and (not nullable or (self.p2 and self.version < (0, 16, 9))):
                required.append(name)
            properties[name] = prop
        title = "TrainingInput" if train else "Input"
        schema: dict[str, Any] = {"properties": properties, "title": title, "type": "object"}
        had_optional_required = (
            self.p2
            and self.version >= (0, 16, 9)
            and any(name not in required and not _has_default(pairs, name) for name in properties)
        )
        if required or had_optional_required:
            schema["required"] = required
        return schema, enums

    def _is_input(self, node: ast.expr) -> bool:
        if not isinstance(node, ast.Call):
            return False
        kind = self.types.kind(self.module.segment(node.func))
        return _cog(kind) == "Input"

    def _input_kwargs(self, call: ast.Call, name: str, line: int | None) -> dict[str, Any]:
        known = [
            "default",
            "description",
            "ge",
            "le",
            "min_length",
            "max_length",
            "regex",
            "choices",
        ]
        if self.version >= (0, 15, 1):
            known.append("deprecated")
        kwargs: dict[str, Any] = {}
        for i, arg in enumerate(call.args):
            if i >= len(known):
                raise SourceError(
                    self.module.rel, "Input() got too many positional arguments", line
                )
            kwargs[known[i]] = self.evaluate(arg, f"Input() argument of `{name}`", line)
        for keyword in call.keywords:
            if keyword.arg is None:
                raise SourceError(
                    self.module.rel, "Input(**kwargs) cannot be read statically", line
                )
            if keyword.arg not in known:
                raise SourceError(
                    self.module.rel,
                    f"TypeError: Input() got an unexpected keyword argument '{keyword.arg}'",
                    line,
                )
            kwargs[keyword.arg] = self.evaluate(keyword.value, f"{keyword.arg} of `{name}`", line)
        return kwargs

    # -- Output ------------------------------------------------------------

    def output(
        self, ann: Annotation | None, line: int | None, *, train: bool = False
    ) -> dict[str, Any]:
        """The ``Output`` (``TrainingOutput``) component."""
        title = "TrainingOutput" if train else "Output"
        if ann is None:
            raise SourceError(
                self.module.rel,
                "You must set an output type. If your model can return multiple output types, "
                "you can explicitly set `Any` as the output type.",
                line,
            )
        if ann.kind == "simple":
            model = self._model_name(ann.name)
            if model is not None:
                if model == title:
                    schema = self.model_schema(model, line)
                    schema["title"] = title
                    return schema
                self.extra_components[model] = {**self.model_schema(model, line), "title": model}
                return {"$ref": _REF + model}
        schema = self.output_fragment(ann, line)
        schema["title"] = title
        return schema

    def _model_name(self, name: str) -> str | None:
        short = name.rsplit(".", 1)[-1]
        if name in self.models:
            return short
        return None

    def output_fragment(self, ann: Annotation, line: int | None) -> dict[str, Any]:
        if ann.kind == "simple":
            kind = self.types.kind(ann.name)
            if kind in ("typing.Any", "Any"):
                return {}
            if kind in ("dict", "typing.Dict"):
                return {"type": "object"}
            if kind in ("list", "typing.List"):
                return {"items": {}, "type": "array"}
            model = self._model_name(ann.name)
            if model is not None:
                self.extra_components[model] = {**self.model_schema(model, line), "title": model}
                return {"$ref": _REF + model}
            base = {"str": "str", "int": "int", "float": "float", "bool": "bool"}.get(kind) or _cog(
                kind
            )
            fragment = self.primitive(base)
            if fragment is None:
                raise SourceError(self.module.rel, f"unsupported output type {ann.name}", line)
            return fragment
        if ann.kind == "union":
            raise SourceError(self.module.rel, "unsupported output type: a union", line)
        outer = self.types.kind(ann.name)
        short = outer.rsplit(".", 1)[-1]
        if short in ("List", "list"):
            return {"items": self.output_fragment(ann.args[0], line), "type": "array"}
        if outer in ("typing.Iterator", "collections.abc.Iterator", "Iterator"):
            return {
                "items": self.output_fragment(ann.args[0], line),
                "type": "array",
                "x-cog-array-type": "iterator",
            }
        if _cog(outer) == "ConcatenateIterator":
            return {
                "items": self.output_fragment(ann.args[0], line),
                "type": "array",
                "x-cog-array-display": "concatenate",
                "x-cog-array-type": "iterator",
            }
        if short in ("Dict", "dict") and len(ann.args) == 2:
            return {
                "additionalProperties": self.output_fragment(ann.args[1], line),
                "type": "object",
            }
        raise SourceError(
            self.module.rel,
            f'TypeError: Fields of type "{outer}" are not supported.',
            line,
        )

    def model_schema(self, name: str, line: int | None) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in self.models[name]:
            ann = field.annotation
            optional = _optional_inner(ann, self.types)
            fragment = self.output_fragment(optional if optional is not None else ann, line)
            if "$ref" in fragment:
                prop = fragment
            else:
                prop = {**fragment, "title": _title(field.name)}
            if optional is not None and self.p2:
                prop["nullable"] = True
            if field.default is not None:
                prop["default"] = field.default.python_value()
            elif optional is None or (self.p2 and self.version < (0, 16, 9)):
                required.append(field.name)
            properties[field.name] = prop
        schema: dict[str, Any] = {"properties": properties, "type": "object"}
        if required:
            schema["required"] = required
        return schema


def _optional_inner(ann: Annotation, types: _Types) -> Annotation | None:
    args = ann.args
    if (
        ann.kind == "generic"
        and types.kind(ann.name) in ("typing.Optional", "Optional")
        and len(args) == 1
    ):
        return args[0]
    is_union = ann.kind == "union" or (
        ann.kind == "generic" and types.kind(ann.name) in ("typing.Union", "Union")
    )
    if is_union and len(args) == 2:
        for i, arg in enumerate(args):
            if arg.kind == "simple" and arg.name == "None":
                return args[1 - i]
    return None


def _has_default(pairs: list[tuple[ast.arg, ast.expr | None]], name: str) -> bool:
    for arg, default in pairs:
        if arg.arg == name:
            if default is None:
                return False
            if isinstance(default, ast.Call):
                return any(k.arg == "default" for k in default.keywords) or bool(default.args)
            return True
    return False


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def _skeleton(
    rules: Rules, input_ref: str, output_ref: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fixed components and paths of the SDK's FastAPI app (predict mode)."""
    p2 = rules.pydantic == 2
    version = _version(rules)

    def opt(schema: dict[str, Any]) -> dict[str, Any]:
        return {**schema, "nullable": True} if p2 else schema

    request_props: dict[str, Any] = {
        "created_at": opt({"format": "date-time", "title": "Created At", "type": "string"}),
        "id": opt({"title": "Id", "type": "string"}),
        "input": opt({"$ref": input_ref}),
        "output_file_prefix": opt({"title": "Output File Prefix", "type": "string"}),
        "webhook": opt(
            {
                "format": "uri",
                "maxLength": 65536,
                "minLength": 1,
                "title": "Webhook",
                "type": "string",
            }
        ),
        "webhook_events_filter": opt(
            {
                "default": ["start", "output", "logs", "completed"],
                "items": {"$ref": _REF + "WebhookEvent"},
                "type": "array",
            }
        ),
    }
    if version >= (0, 14, 11):
        request_props["context"] = opt(
            {"additionalProperties": {"type": "string"}, "title": "Context", "type": "object"}
        )
    metrics: dict[str, Any] = {"title": "Metrics", "type": "object"}
    if p2:
        metrics = {**metrics, "additionalProperties": True, "nullable": True}
    response_props: dict[str, Any] = {
        "completed_at": opt({"format": "date-time", "title": "Completed At", "type": "string"}),
        "created_at": opt({"format": "date-time", "title": "Created At", "type": "string"}),
        "error": opt({"title": "Error", "type": "string"}),
        "id": opt({"title": "Id", "type": "string"}),
        "input": opt({"$ref": input_ref}),
        "logs": {"default": "", "title": "Logs", "type": "string"},
        "metrics": metrics,
        "output": {"$ref": output_ref},
        "started_at": opt({"format": "date-time", "title": "Started At", "type": "string"}),
        "status": opt({"$ref": _REF + "Status"}),
        "version": opt({"title": "Version", "type": "string"}),
    }
    components: dict[str, Any] = {
        "HTTPValidationError": {
            "properties": {
                "detail": {
                    "items": {"$ref": _REF + "ValidationError"},
                    "title": "Detail",
                    "type": "array",
                }
            },
            "title": "HTTPValidationError",
            "type": "object",
        },
        "PredictionRequest": {
            "properties": request_props,
            "title": "PredictionRequest",
            "type": "object",
        },
        "PredictionResponse": {
            "properties": response_props,
            "title": "PredictionResponse",
            "type": "object",
        },
        "Status": {
            "description": "An enumeration.",
            "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
            "title": "Status",
            "type": "string",
        },
        "ValidationError": {
            "properties": {
                "loc": {
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "title": "Location",
                    "type": "array",
                },
                "msg": {"title": "Message", "type": "string"},
                "type": {"title": "Error Type", "type": "string"},
            },
            "required": ["loc", "msg", "type"],
            "title": "ValidationError",
            "type": "object",
        },
        "WebhookEvent": {
            "description": "An enumeration.",
            "enum": ["start", "output", "logs", "completed"],
            "title": "WebhookEvent",
            "type": "string",
        },
    }

    def json_response(schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "content": {"application/json": {"schema": schema}},
            "description": "Successful Response",
        }

    validation_error = {
        "content": {"application/json": {"schema": {"$ref": _REF + "HTTPValidationError"}}},
        "description": "Validation Error",
    }
    prefer = {
        "in": "header",
        "name": "prefer",
        "required": False,
        "schema": {"title": "Prefer", "type": "string"},
    }
    prediction_id = {
        "in": "path",
        "name": "prediction_id",
        "required": True,
        "schema": {"title": "Prediction ID", "type": "string"},
    }
    request_ref = {"$ref": _REF + "PredictionRequest"}
    response = json_response({"$ref": _REF + "PredictionResponse"})
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "operationId": "root__get",
                "responses": {"200": json_response({"title": "Response Root  Get"})},
                "summary": "Root",
            }
        },
        "/health-check": {
            "get": {
                "operationId": "healthcheck_health_check_get",
                "responses": {
                    "200": json_response({"title": "Response Healthcheck Health Check Get"})
                },
                "summary": "Healthcheck",
            }
        },
        "/predictions": {
            "post": {
                "description": "Run a single prediction on the model",
                "operationId": "predict_predictions_post",
                "parameters": [prefer],
                "requestBody": {"content": {"application/json": {"schema": request_ref}}},
                "responses": {"200": response, "422": validation_error},
                "summary": "Predict",
            }
        },
        "/predictions/{prediction_id}": {
            "put": {
                "description": "Run a single prediction on the model (idempotent creation).",
                "operationId": "predict_idempotent_predictions__prediction_id__put",
                "parameters": [prediction_id, prefer],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"allOf": [request_ref], "title": "Prediction Request"}
                        }
                    },
                    "required": True,
                },
                "responses": {"200": response, "422": validation_error},
                "summary": "Predict Idempotent",
            }
        },
        "/predictions/{prediction_id}/cancel": {
            "post": {
                "description": "Cancel a running prediction",
                "operationId": "cancel_predictions__prediction_id__cancel_post",
                "parameters": [prediction_id],
                "responses": {
                    "200": json_response(
                        {"title": "Response Cancel Predictions  Prediction Id  Cancel Post"}
                    ),
                    "422": validation_error,
                },
                "summary": "Cancel",
            }
        },
        "/shutdown": {
            "post": {
                "operationId": "start_shutdown_shutdown_post",
                "responses": {
                    "200": json_response({"title": "Response Start Shutdown Shutdown Post"})
                },
                "summary": "Start Shutdown",
            }
        },
    }
    return components, paths


def _target(
    project: _Project, ref: str, *, train: bool
) -> tuple[_Module, ast.FunctionDef | ast.AsyncFunctionDef, bool]:
    """The method or function the SDK calls: (module, function, is a method)."""
    file, _, name = ref.partition(":")
    module = project.module(str(Path(file)))
    if module is None:
        raise SourceError(file, "file not found")
    cls = next(
        (c for c in module.tree.body if isinstance(c, ast.ClassDef) and c.name == name), None
    )
    if cls is not None and not train:
        _, predict = _predict_methods(project, module, cls, set())
        if predict is None:
            raise SourceError(module.rel, "no predict method found in Predictor", cls.lineno)
        return predict[0], predict[1], True
    target_module, func = find_target(project, module, name, train, run_method=False)
    return target_module, func, cls is not None


def _render_mode(
    rules: Rules, project: _Project, ref: str, *, train: bool
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(input component, output component, enum components, other components)."""
    module, func, is_method = _target(project, ref, train=train)
    models, _, kinds = project.models(module)
    models = {k: v for k, v in models.items() if kinds.get(k) != "typeddict"}
    renderer = _Renderer(rules, project, module, models)
    input_schema, enums = renderer.inputs(func, is_method, train=train)
    returns = module.annotation(func.returns) if func.returns is not None else None
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
    project = _Project(build_dir)
    input_schema, output_schema, enums, extra = _render_mode(
        rules, project, predict_ref, train=False
    )
    components, paths = _skeleton(rules, _REF + "Input", _REF + "Output")
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
        components.update(_training_components(rules))
        components["TrainingInput"] = train_input
        components["TrainingOutput"] = train_output
        components.update(train_enums)
        components.update(train_extra)
        paths.update(_training_paths(rules))
    doc = {
        "components": {"schemas": components},
        "info": {"title": "Cog", "version": "0.1.0"},
        "openapi": "3.0.2",
        "paths": paths,
    }
    _remove_title_next_to_ref(doc)
    return doc


def _training_components(rules: Rules) -> dict[str, Any]:
    """TrainingRequest/TrainingResponse: the prediction ones around TrainingInput/Output."""
    p2 = rules.pydantic == 2
    components, _ = _skeleton(rules, _REF + "TrainingInput", _REF + "TrainingOutput")
    request = components["PredictionRequest"]
    response = components["PredictionResponse"]
    request["title"], response["title"] = "TrainingRequest", "TrainingResponse"
    if p2:
        # The pydantic-2 fix-ups of the SDK touch only the prediction components.
        events = request["properties"]["webhook_events_filter"]
        events["title"] = "Webhook Events Filter"
        response["properties"]["output"]["nullable"] = True
    return {"TrainingRequest": request, "TrainingResponse": response}


def _training_paths(rules: Rules) -> dict[str, Any]:
    p2 = rules.pydantic == 2
    validation_error = {
        "content": {"application/json": {"schema": {"$ref": _REF + "HTTPValidationError"}}},
        "description": "Validation Error",
    }
    prefer = {
        "in": "header",
        "name": "prefer",
        "required": False,
        "schema": {"title": "Prefer", "type": "string"},
    }
    training_id = {
        "in": "path",
        "name": "training_id",
        "required": True,
        "schema": {"title": "Training ID", "type": "string"},
    }
    request_ref = {"$ref": _REF + "TrainingRequest"}
    response = {
        "content": {"application/json": {"schema": {"$ref": _REF + "TrainingResponse"}}},
        "description": "Successful Response",
    }
    put_schema: dict[str, Any] = (
        dict(request_ref) if p2 else {"allOf": [request_ref], "title": "Training Request"}
    )
    return {
        "/trainings": {
            "post": {
                "operationId": "train_trainings_post",
                "parameters": [prefer],
                "requestBody": {"content": {"application/json": {"schema": request_ref}}},
                "responses": {"200": response, "422": validation_error},
                "summary": "Train",
            }
        },
        "/trainings/{training_id}": {
            "put": {
                "operationId": "train_idempotent_trainings__training_id__put",
                "parameters": [training_id, prefer],
                "requestBody": {
                    "content": {"application/json": {"schema": put_schema}},
                    "required": True,
                },
                "responses": {"200": response, "422": validation_error},
                "summary": "Train Idempotent",
            }
        },
        "/trainings/{training_id}/cancel": {
            "post": {
                "operationId": "cancel_training_trainings__training_id__cancel_post",
                "parameters": [training_id],
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "title": "Response Cancel Training Trainings  Training Id  "
                                    "Cancel Post"
                                }
                            }
                        },
                        "description": "Successful Response",
                    },
                    "422": validation_error,
                },
                "summary": "Cancel Training",
            }
        },
    }


def _remove_title_next_to_ref(value: Any) -> None:
    if isinstance(value, dict):
        if "$ref" in value:
            value.pop("title", None)
        for child in value.values():
            _remove_title_next_to_ref(child)
    elif isinstance(value, list):
        for child in value:
            _remove_title_next_to_ref(child)
