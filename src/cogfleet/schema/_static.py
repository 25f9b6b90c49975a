"""Schema fragments by the rules of Cog's static (Go) generator, Cog >= 0.17.

Mirrors ``buildInputSchema`` (``openapi_spec.go``) and the output schema, from the
types :mod:`._static_types` resolves, with the differences between Cog releases
switched by :class:`~cogfleet.schema._versions.Rules`.
"""

from __future__ import annotations

from typing import Any

from cogfleet.schema._document import title_case
from cogfleet.schema._inputs import Param
from cogfleet.schema._source import Signature
from cogfleet.schema._sourcefile import SourceError
from cogfleet.schema._static_types import (
    FILE_LIKE,
    InputType,
    Resolver,
    TypeProblem,
    input_json,
    primitive_json,
)
from cogfleet.schema._versions import Rules

__all__ = ["build_input_schema", "build_output_schema"]


# ---------------------------------------------------------------------------
# buildInputSchema
# ---------------------------------------------------------------------------


def _fail(
    sig: Signature, line: int | None, message: str, *, needs_code: bool = False
) -> SourceError:
    return SourceError(sig.file, message, line, needs_code=needs_code)


def build_input_schema(
    sig: Signature, rules: Rules
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The ``Input`` object (without title) and the enum components of ``sig``."""
    resolver = Resolver(sig, rules)
    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: list[tuple[str, dict[str, Any]]] = []
    for param in sig.params:
        try:
            it = resolver.input_type(param.annotation)
        except TypeProblem as exc:
            raise _fail(sig, param.line, exc.message, needs_code=exc.unresolvable) from None
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
    it: InputType,
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
        and primitive not in FILE_LIKE
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
        enum_type = primitive_json(primitive).get("type") or "string"
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
        fragment = input_json(it) if rules.union_inputs else _flat_json(primitive, repetition)
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
        return {"items": primitive_json(primitive), "type": "array"}
    return primitive_json(primitive)


def build_output_schema(sig: Signature, rules: Rules) -> dict[str, Any]:
    """The ``Output`` component (with its title) of ``sig``."""
    if sig.returns is None:
        raise _fail(sig, sig.line, f"missing return type annotation on {sig.method}")
    resolver = Resolver(sig, rules)
    try:
        schema = resolver.output(sig.returns, ())
    except TypeProblem as exc:
        raise _fail(sig, sig.line, exc.message, needs_code=exc.unresolvable) from None
    if sig.streaming and rules.streaming and schema.get("x-cog-array-type") != "iterator":
        raise _fail(
            sig,
            sig.line,
            "@streaming requires Iterator[...], AsyncIterator[...], ConcatenateIterator[...] or "
            "AsyncConcatenateIterator[...] return type",
        )
    schema["title"] = "Output"
    return schema
