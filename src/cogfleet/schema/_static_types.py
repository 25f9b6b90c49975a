"""Type resolution by the rules of Cog's static (Go) generator, Cog >= 0.17.

Mirrors ``ResolveInputType``/``ResolveFieldType`` (``pkg/schema/types.go``) for inputs
and ``ResolveSchemaType`` (``schema_type.go``) for outputs, ``Annotated`` and
``cog.Opaque`` included, with the differences between Cog releases switched by
:class:`~cogfleet.schema._versions.Rules`. What Cog refuses is a :class:`TypeProblem`
worded as that release words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cogfleet.schema._annotations import Annotation
from cogfleet.schema._document import title_case
from cogfleet.schema._source import Signature
from cogfleet.schema._versions import Rules

__all__ = ["FILE_LIKE", "InputType", "Resolver", "TypeProblem", "input_json", "primitive_json"]

_PRIMITIVES = ("bool", "float", "int", "str", "Path", "File", "Secret", "Any")
FILE_LIKE = ("Path", "File")


def primitive_json(name: str) -> dict[str, Any]:
    if name == "bool":
        return {"type": "boolean"}
    if name == "float":
        return {"type": "number"}
    if name == "int":
        return {"type": "integer"}
    if name == "str":
        return {"type": "string"}
    if name in FILE_LIKE:
        return {"format": "uri", "type": "string"}
    if name == "Secret":
        return {"format": "password", "type": "string", "writeOnly": True, "x-cog-secret": True}
    return {"type": "object"}


class TypeProblem(Exception):
    """A type Cog's static parser refuses; ``unresolvable`` is its ``ErrUnresolvableType``
    (a name it cannot follow), on which Cog 0.17-0.19 fell back to the SDK."""

    def __init__(self, message: str, *, unresolvable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unresolvable = unresolvable


def _unsupported(message: str) -> TypeProblem:
    return TypeProblem(f"unsupported type: {message}")


def _unresolvable_imported(name: str, module: str, rules: Rules) -> TypeProblem:
    if not rules.opaque:
        return TypeProblem(
            f"cannot resolve output type '{name}' (imported from '{module}') \u2014 external "
            "types cannot be statically analyzed. Define it as a BaseModel subclass in your "
            "predict file, or provide a .pyi stub",
            unresolvable=True,
        )
    return TypeProblem(
        f"cannot resolve type '{name}' (imported from '{module}') - external types cannot be "
        "statically analyzed. If this is a JSON-shaped third-party type, mark it opaque with "
        "`from typing import Annotated`, `from cog import Opaque`, and "
        f"`field: Annotated[{name}, Opaque]`. Otherwise define it as a BaseModel subclass in "
        "your predict file, or provide a .pyi stub",
        unresolvable=True,
    )


def _unresolvable(name: str, rules: Rules) -> TypeProblem:
    what, dash = ("type", "-") if rules.opaque else ("output type", "\u2014")
    return TypeProblem(
        f"cannot resolve {what} '{name}' {dash} it is not a primitive type (str, int, float, "
        "bool, Path) and no BaseModel definition was found in the predict file",
        unresolvable=True,
    )


_OPTIONAL_OUTPUT = "unsupported output type: Optional is not allowed as a return type"
_TYPING = ("typing", "typing_extensions")


# ---------------------------------------------------------------------------
# Inputs (InputType)
# ---------------------------------------------------------------------------


@dataclass
class InputType:
    kind: str  # primitive | any | array | union
    primitive: str = "Any"
    elem: InputType | None = None
    variants: list[InputType] = field(default_factory=list)
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


class Resolver:
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

    def opaque_input(self, inner: Annotation) -> InputType:
        """``inputTypeFromFieldType(opaqueFieldType(inner))``: an opaque input's shape."""
        unwrapped = self.unwrap_opaque(inner)
        if unwrapped is not None:
            return self.opaque_input(unwrapped)
        if inner.kind == "simple" and self.container_name(inner.name) in ("List", "list"):
            return InputType("array", elem=InputType("any"))
        optional: Annotation | None = None
        if inner.kind == "generic":
            outer = self.container_name(inner.name)
            optional = self.unwrap_opaque_optional(inner)
            if optional is None:
                if outer in ("List", "list"):
                    return InputType("array", elem=InputType("any"))
                if outer == "Optional" and len(inner.args) == 1:
                    optional = inner.args[0]
        elif inner.kind == "union":
            optional = _unwrap_optional(inner)
        if optional is None:
            return InputType("any")
        shape = self.opaque_input(optional)
        if shape.kind == "array":
            return InputType("array", elem=InputType("any"), nullable=True)
        return InputType("any", nullable=True)

    def opaque_output(self, inner: Annotation) -> dict[str, Any]:
        """``opaqueSchemaType``: an array of objects for a list, else an object."""
        if self.container_name(inner.name) in ("List", "list") and (
            inner.kind == "simple" or (inner.kind == "generic" and len(inner.args) == 1)
        ):
            return {"items": {"type": "object"}, "type": "array"}
        return {"type": "object"}

    def typed_dict(self, name: str) -> bool:
        return self.rules.typed_dicts and name in self.sig.typed_dicts

    def simple_input(self, name: str) -> InputType:
        if self.typed_dict(name):
            return InputType("any")
        resolved, entry, qualified = self.qualified(name)
        if qualified and entry is not None and self.typed_dict(f"{entry[1]}.{resolved}"):
            return InputType("any")
        if self.typed_dict(resolved) or resolved in ("dict", "Dict"):
            return InputType("any")
        if resolved not in _PRIMITIVES:
            if entry is not None:
                raise _unresolvable_imported(resolved, entry[0], self.rules)
            imported = self.imports.get(resolved)
            if imported is not None and self.rules.opaque:
                raise _unresolvable_imported(resolved, imported[0], self.rules)
            raise _unsupported(resolved)
        if resolved == "Any":
            return InputType("any")
        return InputType("primitive", resolved)

    def input_type(self, ann: Annotation) -> InputType:
        opaque = self.unwrap_opaque(ann)
        if opaque is not None:
            return self.opaque_input(opaque)
        if ann.kind == "simple":
            return self.simple_input(ann.name)
        if ann.kind == "union":
            return self.input_union(list(ann.args))
        outer, _, _ = self.qualified(ann.name)
        if outer in ("dict", "Dict"):
            return InputType("any")
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
            return InputType("array", elem=inner)
        raise _unsupported(f"{outer}[...] is not a supported input type")

    def input_union(self, args: list[Annotation]) -> InputType:
        nullable = False
        variants: list[InputType] = []
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
        return InputType("union", variants=variants, nullable=nullable)

    # -- outputs (SchemaType) ----------------------------------------------

    def output(self, ann: Annotation, seen: tuple[str, ...]) -> dict[str, Any]:
        opaque = self.unwrap_opaque(ann)
        if opaque is not None:
            if self.unwrap_opaque_optional(opaque) is not None:
                raise TypeProblem(_OPTIONAL_OUTPUT)
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
            raise TypeProblem(_OPTIONAL_OUTPUT)
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
                raise TypeProblem(f"ConcatenateIterator element type must be str, got {inner.name}")
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
            raise TypeProblem(_OPTIONAL_OUTPUT)
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
        return primitive_json(resolved)

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
            except TypeProblem as exc:
                raise TypeProblem(
                    f'field "{model_field.name}": {exc.message}', unresolvable=exc.unresolvable
                ) from None
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


def _validate_union_variant(variant: InputType) -> None:
    if variant.nullable:
        raise _unsupported("nested nullable variants are not supported in union inputs")
    if variant.kind == "primitive" and variant.primitive in ("Path", "File", "Secret"):
        raise _unsupported(f"{variant.primitive} is not supported in union inputs")
    if variant.kind == "array" and variant.elem is not None:
        _validate_union_variant(variant.elem)


def input_json(it: InputType) -> dict[str, Any]:
    if it.kind == "primitive":
        schema = primitive_json(it.primitive)
    elif it.kind == "array":
        items = input_json(it.elem) if it.elem is not None else {"type": "object"}
        schema = {"items": items, "type": "array"}
    elif it.kind == "union":
        variants = []
        for variant in it.variants:
            fragment = input_json(variant)
            if it.nullable:
                fragment["nullable"] = True
            variants.append(fragment)
        schema = {"anyOf": variants}
    else:
        schema = {"type": "object"}
    if it.nullable:
        schema["nullable"] = True
    return schema
