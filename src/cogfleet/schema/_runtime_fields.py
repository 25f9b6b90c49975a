"""The ``Input`` and ``Output`` components the SDK's pydantic models gave (Cog <= 0.16).

The SDK built a pydantic model from ``predict()``'s signature (``Input``) and its
return type (``Output``), and FastAPI wrote their JSON schema. :class:`Renderer` gives
the same components from the source, with the pydantic major of the image
(:attr:`Rules.pydantic <cogfleet.schema.Rules.pydantic>`) and the SDK version's own
rules:

- inputs are validated as the SDK validates them (str, int, float, bool, Path,
  File, Secret, and Union/List of those; ``Optional`` from 0.14.3; ``deprecated=``
  from 0.15.1), and values are what Python would see (:mod:`._runtime_values`);
- a ``None`` default is no default and the input is optional (never required);
- ``x-order`` is on every input with pydantic 1 and from 0.16.9; with today's
  pydantic 2 (>= 2.12) the SDKs before 0.16.9 keep it only on ``choices`` inputs;
- a BaseModel output named ``Output`` is inlined, any other is a ``$ref`` to its
  own component; from 0.16.9 its ``required`` list loses the Optional fields and
  stays, even empty, when pydantic 2 had listed any;
- an output ``Union[A, B]`` is pydantic's ``anyOf``, a bare ``dict`` an object of
  anything (``additionalProperties: true`` with pydantic 2), and
  ``AsyncConcatenateIterator[X]`` (0.13.7+) streams as ``ConcatenateIterator[X]``.
"""

from __future__ import annotations

import ast
from typing import Any

from cogfleet.schema._annotations import Annotation, parse_annotation
from cogfleet.schema._project import ModelField, Project
from cogfleet.schema._runtime_app import REF
from cogfleet.schema._runtime_values import Evaluator, InputRef, Scope
from cogfleet.schema._sourcefile import SourceError, SourceFile
from cogfleet.schema._versions import Rules, parse_version

__all__ = ["Renderer"]

_ALLOWED = "str, int, float, bool, cog.File, cog.Path, cog.Secret"


def _title(name: str) -> str:
    # pydantic's default field title.
    return name.replace("_", " ").title()


class _Types:
    """Python's view of annotation names: what ``cog.Path``, ``List``... refer to."""

    def __init__(self, module: SourceFile) -> None:
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


_KNOWN_MODULES = ("cog.", "typing.", "typing_extensions.", "collections.", "builtins.")
_BUILTINS = frozenset({"str", "int", "float", "bool", "list", "dict", "set", "tuple", "None"})


def _needs_code(kind: str) -> bool:
    """A type name only Python can say what it is: defined outside cog, typing and the
    builtins (a package the version installs, an alias the model's code makes)."""
    return kind not in _BUILTINS and not kind.startswith(_KNOWN_MODULES)


def _cog(kind: str) -> str | None:
    # Names that mean the cog type (cog.Path, cog.types.Path...).
    if kind.startswith("cog."):
        return kind.rsplit(".", 1)[1]
    return None


class Renderer:
    def __init__(
        self,
        rules: Rules,
        project: Project,
        module: SourceFile,
        models: dict[str, list[ModelField]],
    ) -> None:
        self.rules = rules
        self.version = parse_version(rules.version)
        self.p2 = rules.pydantic == 2
        self.project = project
        self.module = module
        self.types = _Types(module)
        self.models = models
        self.evaluator = Evaluator(project, module)
        self.extra_components: dict[str, Any] = {}

    # -- input types -------------------------------------------------------

    def unsupported(
        self, what: str, param: str, line: int | None, *, kind: str = ""
    ) -> SourceError:
        return SourceError(
            self.module.rel,
            f"Unsupported input type {what} for parameter `{param}`. Supported input types are: "
            f"{_ALLOWED}, or a Union or List of those types.",
            line,
            needs_code=bool(kind) and _needs_code(kind),
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
                raise self.unsupported(ann.name.rsplit(".", 1)[-1], param, line, kind=kind)
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
        raise self.unsupported(short, param, line, kind=outer)

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

    def evaluate(
        self, node: ast.expr, what: str, line: int | None, scope: Scope | None = None
    ) -> Any:
        try:
            return self.evaluator.value(node, scope=scope)
        except (ValueError, TypeError, RecursionError):
            source = (scope.module if scope is not None else self.module).segment(node)
            text = " ".join(source.split())  # the error is one line
            raise SourceError(
                self.module.rel,
                f"{what}: `{text}` cannot be evaluated without running "
                "the model's code",
                line,
                needs_code=True,
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
        # Defaults are evaluated in the class body (names bound above the method count).
        owner = next(
            (c for c in self.module.tree.body if isinstance(c, ast.ClassDef) and func in c.body),
            None,
        )
        scope = Scope(self.module, owner, func.lineno)
        refs = self._input_refs(pairs, scope)
        # The SDK writes x-order into the Input() object and pops its choices: an object
        # that several parameters share ends with the last one's order, choices only once.
        last_order = {ref.key: order for order, ref in enumerate(refs) if ref and ref.shared}
        popped: set[tuple[str, int, int]] = set()
        no_default: set[str] = set()
        for order, (arg, default_node) in enumerate(pairs):
            name, line = arg.arg, arg.lineno
            if arg.annotation is None:
                raise SourceError(
                    self.module.rel,
                    f"No input type provided for parameter `{name}`. Supported input types are: "
                    f"{_ALLOWED}, or a Union or List of those types.",
                    line,
                )
            ann = parse_annotation(self.module, arg.annotation)
            fragment, nullable = self.input_fragment(ann, name, line)
            kwargs: dict[str, Any] = {}
            has_default = False
            default: Any = None
            ref = refs[order]
            shown_order = order
            with_choices = False  # the Input() object was made with choices
            if default_node is not None:
                if ref is not None:
                    kwargs = self._input_kwargs(ref, name, line)
                    if "default" in kwargs:
                        has_default = True
                        default = kwargs["default"]
                    with_choices = bool(kwargs.get("choices"))
                    if ref.shared:
                        shown_order = last_order[ref.key]
                        if ref.key in popped:
                            kwargs.pop("choices", None)
                        popped.add(ref.key)
                else:
                    has_default = True
                    default = self.evaluate(default_node, f"default of `{name}`", line, scope)
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
                    prop["$ref"] = REF + name
                else:
                    prop["allOf"] = [{"$ref": REF + name}]
                prop["x-order"] = shown_order
            else:
                prop["title"] = _title(name)
                prop.update(fragment)
                if nullable:
                    prop["nullable"] = True
                if keep_order or with_choices:
                    prop["x-order"] = shown_order
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
            if not has_default:
                no_default.add(name)
            if not has_default and (not nullable or (self.p2 and self.version < (0, 16, 9))):
                required.append(name)
            properties[name] = prop
        title = "TrainingInput" if train else "Input"
        schema: dict[str, Any] = {"properties": properties, "title": title, "type": "object"}
        had_optional_required = (
            self.p2
            and self.version >= (0, 16, 9)
            and any(name not in required for name in no_default)
        )
        if required or had_optional_required:
            schema["required"] = required
        return schema, enums

    def _input_refs(
        self, pairs: list[tuple[ast.arg, ast.expr | None]], scope: Scope
    ) -> list[InputRef | None]:
        """The ``Input(...)`` each parameter's default is (None: a plain value or none)."""
        return [
            None if default is None else self.evaluator.input_ref(default, scope)
            for _, default in pairs
        ]

    def _input_kwargs(self, ref: InputRef, name: str, line: int | None) -> dict[str, Any]:
        call, scope = ref.call, ref.scope
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
            kwargs[known[i]] = self.evaluate(arg, f"Input() argument of `{name}`", line, scope)
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
            kwargs[keyword.arg] = self.evaluate(
                keyword.value, f"{keyword.arg} of `{name}`", line, scope
            )
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
                return {"$ref": REF + model}
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
                # a dict of anything: pydantic 2 says so (additionalProperties), 1 did not
                return {"additionalProperties": True, "type": "object"} if self.p2 else {
                    "type": "object"
                }
            if kind in ("list", "typing.List"):
                return {"items": {}, "type": "array"}
            model = self._model_name(ann.name)
            if model is not None:
                self.extra_components[model] = {**self.model_schema(model, line), "title": model}
                return {"$ref": REF + model}
            base = {"str": "str", "int": "int", "float": "float", "bool": "bool"}.get(kind) or _cog(
                kind
            )
            fragment = self.primitive(base)
            if fragment is None:
                raise SourceError(
                    self.module.rel, f"unsupported output type {ann.name}", line,
                    needs_code=_needs_code(kind),
                )  # fmt: skip
            return fragment
        if ann.kind == "union" or self.types.kind(ann.name) in ("typing.Union", "Union"):
            return self._union_output(ann, line)
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
        if _cog(outer) == "ConcatenateIterator" or (
            _cog(outer) == "AsyncConcatenateIterator" and self.version >= (0, 13, 7)
        ):  # (the SDK has AsyncConcatenateIterator from 0.13.7 on)
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
            needs_code=_needs_code(outer),
        )

    def _union_output(self, ann: Annotation, line: int | None) -> dict[str, Any]:
        """``Union[A, B]`` (or ``A | B``) returned: pydantic's ``anyOf`` of the members."""
        if any(a.kind == "simple" and a.name == "None" for a in ann.args):
            raise SourceError(self.module.rel, "unsupported output type: an Optional", line)
        return {"anyOf": [self.output_fragment(a, line) for a in ann.args]}

    def model_schema(self, name: str, line: int | None) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        dropped = False  # an Optional field without a default: pydantic 2 required it
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
            else:
                dropped = True
            properties[field.name] = prop
        schema: dict[str, Any] = {"properties": properties, "type": "object"}
        # from 0.16.9 the SDK takes the Optional fields out of pydantic 2's list and
        # keeps the list, empty or not
        if required or (dropped and self.p2):
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


def _json_value(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value
