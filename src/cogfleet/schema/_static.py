"""Schema fragments by the rules of Cog's static (Go) generator, Cog >= 0.17.

Mirrors ``ResolveInputType``/``ResolveSchemaType`` (``pkg/schema/types.go``,
``schema_type.go``) and ``buildInputSchema`` (``openapi_spec.go``), with the
differences between Cog releases switched by :class:`~cogfleet.schema._versions.Rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cogfleet.schema._annotations import Annotation
from cogfleet.schema._document import title_case
from cogfleet.schema._inputs import Param
from cogfleet.schema._source import Signature
from cogfleet.schema._sourcefile import SourceError
from cogfleet.schema._versions import Rules

__all__ = ["build_input_schema", "build_output_schema"]

_PRIMITIVES = ("bool", "float", "int", "str", "Path", "File", "Secret", "Any")
_FILE_LIKE = ("Path", "File")


def _primitive_json(name: str) -> dict[str, Any]:
    if name == "bool":
        return {"type": "boolean"}
    if name == "float":
        return {"type": "number"}
    if name == "int":
        return {"type": "integer"}
    if name == "str":
        return {"type": "string"}
    if name in _FILE_LIKE:
        return {"format": "uri", "type": "string"}
    if name == "Secret":
        return {"format": "password", "type": "string", "writeOnly": True, "x-cog-secret": True}
    return {"type": "object"}


class _TypeError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _unsupported(message: str) -> _TypeError:
    return _TypeError(f"unsupported type: {message}")


def _unresolvable_imported(name: str, module: str, rules: Rules) -> _TypeError:
    if not rules.opaque:
        return _TypeError(
            f"cannot resolve output type '{name}' (imported from '{module}') \u2014 external "
            "types cannot be statically analyzed. Define it as a BaseModel subclass in your "
            "predict file, or provide a .pyi stub"
        )
    return _TypeError(
        f"cannot resolve type '{name}' (imported from '{module}') - external types cannot be "
        "statically analyzed. If this is a JSON-shaped third-party type, mark it opaque with "
        "`from typing import Annotated`, `from cog import Opaque`, and "
        f"`field: Annotated[{name}, Opaque]`. Otherwise define it as a BaseModel subclass in "
        "your predict file, or provide a .pyi stub"
    )


def _unresolvable(name: str, rules: Rules) -> _TypeError:
    what, dash = ("type", "-") if rules.opaque else ("output type", "\u2014")
    return _TypeError(
        f"cannot resolve {what} '{name}' {dash} it is not a primitive type (str, int, float, "
        "bool, Path) and no BaseModel definition was found in the predict file"
    )


_OPTIONAL_OUTPUT = "unsupported output type: Optional is not allowed as a return type"
_TYPING = ("typing", "typing_extensions")


# ---------------------------------------------------------------------------
# Inputs (InputType)
# ---------------------------------------------------------------------------


@dataclass
class _InputType:
    kind: str  # primitive | any | array | union
    primitive: str = "Any"
    elem: _InputType | None = None
    variants: list[_InputType] = field(default_factory=list)
    nullable: bool = False

    def flat(self) -> tuple[str, str]:
        """``fieldTypeFromInputType``: (primitive, repetition)."""
        repetition = "optional" if self.nullable else "required"
        if self.kind == "primitive":
            return self.primitive, repetition
        if self.kind == "array":
            rep = "optional_repeated" if self.nullable else "repeated"
            if self.elem is not None and self.elem.kind == "primitive":
                return self.elem.primitive, rep
            return "Any", rep
        return "Any", repetition


class _Resolver:
    def __init__(self, sig: Signature, rules: Rules) -> None:
        self.sig = sig
        self.rules = rules
        self.imports = sig.imports

    def qualified(self, name: str) -> tuple[str, tuple[str, str] | None, bool]:
        """``ResolveQualifiedName``: ``alias.Type`` -> (``Type``, import entry, True)."""
        if "." not in name:
            return name, None, False
        head, rest = name.split(".", 1)
        return rest, self.imports.get(head), True

    def is_annotated(self, name: str) -> bool:
        """``isAnnotated`` (0.20+; before, ``Annotated`` is not understood)."""
        if not self.rules.opaque:
            return False
        resolved, entry, qualified = self.qualified(name)
        if qualified:
            return (
                resolved == "Annotated"
                and entry is not None
                and entry[0] in ("typing", "typing_extensions")
                and entry[1] == entry[0]
            )
        entry = self.imports.get(name)
        return (
            entry is not None
            and entry[0] in ("typing", "typing_extensions")
            and entry[1] == "Annotated"
        )

    def is_opaque(self, name: str) -> bool:
        """``IsOpaque``: ``name`` is ``cog.Opaque``."""
        resolved, entry, qualified = self.qualified(name)
        if qualified:
            return resolved == "Opaque" and entry is not None and entry[0] == "cog"
        entry = self.imports.get(name)
        return entry is not None and entry == ("cog", "Opaque")

    def unwrap_opaque(self, ann: Annotation) -> Annotation | None:
        """``unwrapOpaqueAnnotated``: the X of ``Annotated[X, ..., Opaque, ...]``."""
        if ann.kind != "generic" or len(ann.args) < 2 or not self.is_annotated(ann.name):
            return None
        for metadata in ann.args[1:]:
            if metadata.kind == "simple" and self.is_opaque(metadata.name):
                return ann.args[0]
        return None

    def container_name(self, name: str) -> str | None:
        """``opaqueContainerName``: ``List``/``list``/``Optional``/``Union`` from typing."""
        resolved, entry, qualified = self.qualified(name)
        if qualified:
            if (
                entry is not None
                and entry[0] in _TYPING
                and entry[1] == entry[0]
                and resolved in ("List", "Optional", "Union")
            ):
                return resolved
            return None
        entry = self.imports.get(name)
        if entry is not None:
            if entry == ("builtins", "list"):
                return "list"
            if entry[0] in _TYPING and entry[1] in ("List", "Optional", "Union"):
                return entry[1]
            return None
        return "list" if name == "list" else None

    def unwrap_opaque_optional(self, ann: Annotation) -> Annotation | None:
        """``unwrapOpaqueOptional``: X of ``Optional[X]``/``Union[X, None]``, typing-qualified."""
        if ann.kind == "generic":
            name = self.container_name(ann.name)
            if name is None:
                return None
            if name == "Optional" and len(ann.args) == 1:
                return ann.args[0]
            if name == "Union" and len(ann.args) == 2:
                for i, arg in enumerate(ann.args):
                    if arg.kind == "simple" and arg.name == "None":
                        return ann.args[1 - i]
        return _unwrap_optional(ann)

    def opaque_input(self, inner: Annotation) -> _InputType:
        """``inputTypeFromFieldType(opaqueFieldType(inner))``: an opaque input's shape."""
        unwrapped = self.unwrap_opaque(inner)
        if unwrapped is not None:
            return self.opaque_input(unwrapped)
        if inner.kind == "simple" and self.container_name(inner.name) in ("List", "list"):
            return _InputType("array", elem=_InputType("any"))
        optional: Annotation | None = None
        if inner.kind == "generic":
            outer = self.container_name(inner.name)
            optional = self.unwrap_opaque_optional(inner)
            if optional is None:
                if outer in ("List", "list"):
                    return _InputType("array", elem=_InputType("any"))
                if outer == "Optional" and len(inner.args) == 1:
                    optional = inner.args[0]
        elif inner.kind == "union":
            optional = _unwrap_optional(inner)
        if optional is None:
            return _InputType("any")
        shape = self.opaque_input(optional)
        if shape.kind == "array":
            return _InputType("array", elem=_InputType("any"), nullable=True)
        return _InputType("any", nullable=True)

    def opaque_output(self, inner: Annotation) -> dict[str, Any]:
        """``opaqueSchemaType``: an array of objects for a list, else an object."""
        if self.container_name(inner.name) in ("List", "list") and (
            inner.kind == "simple" or (inner.kind == "generic" and len(inner.args) == 1)
        ):
            return {"items": {"type": "object"}, "type": "array"}
        return {"type": "object"}

    def typed_dict(self, name: str) -> bool:
        return self.rules.typed_dicts and name in self.sig.typed_dicts

    def simple_input(self, name: str) -> _InputType:
        if self.typed_dict(name):
            return _InputType("any")
        resolved, entry, qualified = self.qualified(name)
        if qualified and entry is not None and self.typed_dict(f"{entry[1]}.{resolved}"):
            return _InputType("any")
        if self.typed_dict(resolved) or resolved in ("dict", "Dict"):
            return _InputType("any")
        if resolved not in _PRIMITIVES:
            if entry is not None:
                raise _unresolvable_imported(resolved, entry[0], self.rules)
            imported = self.imports.get(resolved)
            if imported is not None and self.rules.opaque:
                raise _unresolvable_imported(resolved, imported[0], self.rules)
            raise _unsupported(resolved)
        if resolved == "Any":
            return _InputType("any")
        return _InputType("primitive", resolved)

    def input_type(self, ann: Annotation) -> _InputType:
        opaque = self.unwrap_opaque(ann)
        if opaque is not None:
            return self.opaque_input(opaque)
        if ann.kind == "simple":
            return self.simple_input(ann.name)
        if ann.kind == "union":
            return self.input_union(list(ann.args))
        outer, _, _ = self.qualified(ann.name)
        if outer in ("dict", "Dict"):
            return _InputType("any")
        if outer == "Optional":
            if len(ann.args) != 1:
                raise _unsupported(f"Optional expects exactly 1 type argument, got {len(ann.args)}")
            inner = self.input_type(ann.args[0])
            if not self.rules.union_inputs and inner.kind == "union":
                raise _unsupported("union types other than X | None are not supported")
            inner.nullable = True
            return inner
        if outer == "Union":
            return self.input_union(list(ann.args))
        if self.is_annotated(ann.name):
            return self.input_type(ann.args[0])
        if outer in ("List", "list"):
            if len(ann.args) != 1:
                raise _unsupported(f"List expects exactly 1 type argument, got {len(ann.args)}")
            opaque_item = self.unwrap_opaque(ann.args[0])
            inner = (
                self.opaque_input(opaque_item)
                if opaque_item is not None
                else self.input_type(ann.args[0])
            )
            if inner.nullable or inner.kind in ("array", "union"):
                raise _unsupported("nested generics like List[Optional[X]] are not supported")
            return _InputType("array", elem=inner)
        raise _unsupported(f"{outer}[...] is not a supported input type")

    def input_union(self, args: list[Annotation]) -> _InputType:
        nullable = False
        variants: list[_InputType] = []
        for arg in args:
            if arg.kind == "simple" and arg.name == "None":
                nullable = True
                continue
            if arg.kind == "union" or (arg.kind == "generic" and arg.name == "Union"):
                raise _unsupported("nested union inputs are not supported")
            variant = self.input_type(arg)
            if variant.kind == "union":
                raise _unsupported("nested union inputs are not supported")
            variants.append(variant)
        if not self.rules.union_inputs and not (len(variants) == 1 and nullable and len(args) == 2):
            raise _unsupported("union types other than X | None are not supported")
        if not variants:
            raise _unsupported("union inputs must include at least one non-None type")
        if len(variants) == 1:
            variants[0].nullable = variants[0].nullable or nullable
            return variants[0]
        for variant in variants:
            _validate_union_variant(variant)
        return _InputType("union", variants=variants, nullable=nullable)

    # -- outputs (SchemaType) ----------------------------------------------

    def output(self, ann: Annotation, seen: tuple[str, ...]) -> dict[str, Any]:
        opaque = self.unwrap_opaque(ann)
        if opaque is not None:
            if self.unwrap_opaque_optional(opaque) is not None:
                raise _TypeError(_OPTIONAL_OUTPUT)
            return self.opaque_output(opaque)
        if ann.kind == "generic" and self.is_annotated(ann.name):
            return self.output(ann.args[0], seen)
        if ann.kind == "simple":
            return self.simple_output(ann.name, seen)
        if ann.kind == "union":
            return self.union_output(ann)
        outer, _, _ = self.qualified(ann.name)
        if outer in ("dict", "Dict"):
            if len(ann.args) == 2:
                return {"additionalProperties": self.output(ann.args[1], seen), "type": "object"}
            raise _unsupported("dict expects 0 or 2 type arguments")
        if outer == "Optional":
            if len(ann.args) != 1:
                raise _unsupported("Optional expects exactly 1 type argument")
            raise _TypeError(_OPTIONAL_OUTPUT)
        if outer == "Union":
            return self.union_output(Annotation("union", "", ann.args))
        if self.list_name(ann.name):
            if len(ann.args) != 1:
                raise _unsupported("list expects exactly 1 type argument")
            return {"items": self.output(ann.args[0], seen), "type": "array"}
        if outer in ("Iterator", "AsyncIterator"):
            if len(ann.args) != 1:
                raise _unsupported("Iterator expects exactly 1 type argument")
            return {
                "items": self.output(ann.args[0], seen),
                "type": "array",
                "x-cog-array-type": "iterator",
            }
        if outer in ("ConcatenateIterator", "AsyncConcatenateIterator"):
            if len(ann.args) != 1:
                raise _unsupported("ConcatenateIterator expects exactly 1 type argument")
            inner = ann.args[0]
            if inner.kind != "simple":
                raise _unsupported("ConcatenateIterator element type must be a simple type")
            if inner.name != "str":
                raise _TypeError(f"ConcatenateIterator element type must be str, got {inner.name}")
            return {
                "items": {"type": "string"},
                "type": "array",
                "x-cog-array-display": "concatenate",
                "x-cog-array-type": "iterator",
            }
        raise _unsupported(f"{outer}[...] is not a supported output type")

    def list_name(self, name: str) -> bool:
        """``opaqueContainerName`` for list/List."""
        resolved, entry, qualified = self.qualified(name)
        if not self.rules.list_by_import:
            return resolved in ("List", "list")
        if qualified:
            return (
                entry is not None
                and entry[0] in ("typing", "typing_extensions")
                and entry[1] == entry[0]
                and resolved == "List"
            )
        entry = self.imports.get(name)
        if entry is not None:
            return (entry[0] == "builtins" and entry[1] == "list") or (
                entry[0] in ("typing", "typing_extensions") and entry[1] == "List"
            )
        return name == "list"

    def union_output(self, ann: Annotation) -> dict[str, Any]:
        args = ann.args
        if len(args) == 2 and any(a.kind == "simple" and a.name == "None" for a in args):
            raise _TypeError(_OPTIONAL_OUTPUT)
        raise _unsupported("union types are not supported as output")

    def simple_output(self, name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        models = self.sig.models
        if name in models and self.model_allowed(name):
            return self.model_output(name, seen)
        resolved, entry, qualified = self.qualified(name)
        if qualified and entry is not None:
            key = f"{entry[1]}.{resolved}"
            if key in models and self.model_allowed(key):
                return self.model_output(key, seen)
        if resolved in ("Any", "dict", "Dict"):
            return {"type": "object"}
        if self.list_name(name):
            return {"items": {"type": "object"}, "type": "array"}
        if resolved not in _PRIMITIVES:
            if qualified and entry is not None:
                raise _unresolvable_imported(resolved, entry[0], self.rules)
            imported = self.imports.get(resolved)
            if imported is not None:
                raise _unresolvable_imported(resolved, imported[0], self.rules)
            raise _unresolvable(resolved, self.rules)
        return _primitive_json(resolved)

    def model_allowed(self, name: str) -> bool:
        return self.rules.typed_dicts or self.sig.model_kinds.get(name, "model") != "typeddict"

    def model_output(self, name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        if name in seen:
            return {"type": "object"}
        seen = (*seen, name)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for model_field in self.sig.models[name]:
            try:
                schema, is_required = self.field_output(model_field.annotation, seen)
            except _TypeError as exc:
                raise _TypeError(f'field "{model_field.name}": {exc.message}') from None
            if model_field.key_required is not None:
                is_required = model_field.key_required
            if model_field.default is not None:
                is_required = False
            schema["title"] = title_case(model_field.name)
            if is_required:
                required.append(model_field.name)
            properties[model_field.name] = schema
        if not self.rules.ordered_object_properties:
            properties = {k: properties[k] for k in sorted(properties)}
        result: dict[str, Any] = {"properties": properties, "type": "object"}
        if required:
            result["required"] = required
        return result

    def field_output(self, ann: Annotation, seen: tuple[str, ...]) -> tuple[dict[str, Any], bool]:
        opaque = self.unwrap_opaque(ann)
        if opaque is not None:
            optional = self.unwrap_opaque_optional(opaque)
            if optional is not None:
                return {**self.opaque_output(optional), "nullable": True}, False
            return self.opaque_output(opaque), True
        if ann.kind == "generic" and self.is_annotated(ann.name):
            return self.field_output(ann.args[0], seen)
        # unwrapFieldOptional (0.20+) also knows typing.Optional and aliases of it
        inner = self.unwrap_opaque_optional(ann) if self.rules.opaque else _unwrap_optional(ann)
        if inner is not None:
            schema = self.output(inner, seen)
            schema["nullable"] = True
            return schema, False
        return self.output(ann, seen), True


def _unwrap_optional(ann: Annotation) -> Annotation | None:
    """``UnwrapOptional``: the X of ``Optional[X]``, ``Union[X, None]`` or ``X | None``."""
    if ann.kind == "generic" and ann.name == "Optional" and len(ann.args) == 1:
        return ann.args[0]
    if (ann.kind == "union" or (ann.kind == "generic" and ann.name == "Union")) and len(
        ann.args
    ) == 2:
        for i, arg in enumerate(ann.args):
            if arg.kind == "simple" and arg.name == "None":
                return ann.args[1 - i]
    return None


def _validate_union_variant(variant: _InputType) -> None:
    if variant.nullable:
        raise _unsupported("nested nullable variants are not supported in union inputs")
    if variant.kind == "primitive" and variant.primitive in ("Path", "File", "Secret"):
        raise _unsupported(f"{variant.primitive} is not supported in union inputs")
    if variant.kind == "array" and variant.elem is not None:
        _validate_union_variant(variant.elem)


def _input_json(it: _InputType) -> dict[str, Any]:
    if it.kind == "primitive":
        schema = _primitive_json(it.primitive)
    elif it.kind == "array":
        items = _input_json(it.elem) if it.elem is not None else {"type": "object"}
        schema = {"items": items, "type": "array"}
    elif it.kind == "union":
        variants = []
        for variant in it.variants:
            fragment = _input_json(variant)
            if it.nullable:
                fragment["nullable"] = True
            variants.append(fragment)
        schema = {"anyOf": variants}
    else:
        schema = {"type": "object"}
    if it.nullable:
        schema["nullable"] = True
    return schema


# ---------------------------------------------------------------------------
# buildInputSchema
# ---------------------------------------------------------------------------


def _fail(sig: Signature, line: int | None, message: str) -> SourceError:
    return SourceError(sig.file, message, line)


def build_input_schema(
    sig: Signature, rules: Rules
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The ``Input`` object (without title) and the enum components of ``sig``."""
    resolver = _Resolver(sig, rules)
    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: list[tuple[str, dict[str, Any]]] = []
    for param in sig.params:
        try:
            it = resolver.input_type(param.annotation)
        except _TypeError as exc:
            raise _fail(sig, param.line, exc.message) from None
        prop = _input_property(sig, rules, param, it, required, enums)
        properties[param.name] = prop
    schema: dict[str, Any] = {"properties": properties, "type": "object"}
    if required:
        schema["required"] = required
    return schema, enums


def _input_property(
    sig: Signature,
    rules: Rules,
    param: Param,
    it: _InputType,
    required: list[str],
    enums: list[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    primitive, repetition = it.flat()
    call = param.input_call
    default = call.default if call is not None else param.plain_default
    if (
        call is not None
        and call.accept is not None
        and rules.accept
        and primitive not in _FILE_LIKE
    ):
        raise _fail(
            sig,
            param.line,
            f"accept is only valid on Path or File inputs (parameter '{param.name}')",
        )
    if (
        it.kind == "union"
        and call is not None
        and (
            call.choices
            or call.ge is not None
            or call.le is not None
            or call.min_length is not None
            or call.max_length is not None
            or call.regex is not None
        )
    ):
        raise _fail(
            sig,
            param.line,
            "unsupported type: constraints and choices are not supported on union inputs",
        )

    # Keys in the order the generator inserts them (<= 0.18 keeps that order).
    prop: dict[str, Any] = {"x-order": param.order}
    choices = call.choices if call is not None else None
    if choices:
        enum_name = param.name
        if rules.enum_title_single:
            enum_name = enum_name[:1].upper() + enum_name[1:]
        enum_type = _primitive_json(primitive).get("type") or "string"
        if primitive in ("Any",):
            enum_type = "object"
        enums.append(
            (
                enum_name,
                {
                    "description": "An enumeration.",
                    "enum": [c.to_json() for c in choices],
                    "title": enum_name,
                    "type": enum_type,
                },
            )
        )
        prop["allOf"] = [{"$ref": "#/components/schemas/" + enum_name}]
    else:
        prop["title"] = title_case(param.name)
        fragment = _input_json(it) if rules.union_inputs else _flat_json(primitive, repetition)
        prop.update({k: fragment[k] for k in sorted(fragment)})

    if rules.none_default_is_no_default:
        nullable = repetition in ("optional", "optional_repeated") or it.nullable
        if (
            primitive == "Secret"
            and repetition == "required"
            and default is not None
            and default.kind == "none"
        ):
            nullable = True
        effective = default is not None and not (default.kind == "none" and not nullable)
        is_union = it.kind == "union"
        if not effective and (is_union or repetition in ("required", "repeated")):
            required.append(param.name)
        if effective:
            assert default is not None
            prop["default"] = default.to_json()
        if nullable:
            prop["nullable"] = True
    else:
        if default is None and repetition in ("required", "repeated"):
            required.append(param.name)
        if default is not None:
            prop["default"] = default.to_json()
        if repetition == "optional" or (
            rules.nullable_optional_list and repetition == "optional_repeated"
        ):
            prop["nullable"] = True

    if call is not None:
        description = call.description
        if call.description_is_constant and not rules.description_constants:
            description = None
        if description is not None:
            prop["description"] = description
        if call.ge is not None:
            prop["minimum"] = call.ge
        if call.le is not None:
            prop["maximum"] = call.le
        if call.min_length is not None:
            prop["minLength"] = call.min_length
        if call.max_length is not None:
            prop["maxLength"] = call.max_length
        if call.regex is not None:
            prop["pattern"] = call.regex
        if call.deprecated:
            prop["deprecated"] = True
        if rules.accept and call.accept is not None:
            prop["x-cog-accept"] = call.accept
    return prop


def _flat_json(primitive: str, repetition: str) -> dict[str, Any]:
    if repetition in ("repeated", "optional_repeated"):
        return {"items": _primitive_json(primitive), "type": "array"}
    return _primitive_json(primitive)


def build_output_schema(sig: Signature, rules: Rules) -> dict[str, Any]:
    """The ``Output`` component (with its title) of ``sig``."""
    if sig.returns is None:
        raise _fail(sig, sig.line, f"missing return type annotation on {sig.method}")
    resolver = _Resolver(sig, rules)
    try:
        schema = resolver.output(sig.returns, ())
    except _TypeError as exc:
        raise _fail(sig, sig.line, exc.message) from None
    if sig.streaming and rules.streaming and schema.get("x-cog-array-type") != "iterator":
        raise _fail(
            sig,
            sig.line,
            "@streaming requires Iterator[...], AsyncIterator[...], ConcatenateIterator[...] or "
            "AsyncConcatenateIterator[...] return type",
        )
    schema["title"] = "Output"
    return schema
