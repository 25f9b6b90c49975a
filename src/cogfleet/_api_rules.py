"""Values checked as Replicate's API checks them, worded as it words them.

Replicate validates request bodies and a version's input against their JSON Schemas
(gojsonschema) and names each problem as ``(type, field, description)``: ``field`` is
the path of the object that holds the problem (``""`` at the top level, ``"input"``
inside an input), so a misspelled key reads ``Additional property inputs is not
allowed`` and a wrong type ``Invalid type. Expected: integer, given: string``.

The local server answers with these problems (422 ``Input validation failed``), and
the config check (:mod:`cogfleet._config_inputs`) finds the same problems in test
cases before anything is pushed: one rule, two places.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

Problem = tuple[str, str, str]
"""``(type, field, description)`` of one problem, in gojsonschema's terms."""

# gojsonschema's error types, which Replicate reports in invalid_fields.
_TYPES = {
    "required": "required",
    "additionalProperties": "additional_property_not_allowed",
    "type": "invalid_type",
    "enum": "enum",
    "minimum": "number_gte",
    "maximum": "number_lte",
    "exclusiveMinimum": "number_gt",
    "exclusiveMaximum": "number_lt",
    "minLength": "string_gte",
    "maxLength": "string_lte",
    "pattern": "pattern",
    "format": "format",
}
_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def describe_errors(
    validator: jsonschema.Draft7Validator, instance: Any, prefix: str = ""
) -> list[Problem]:
    """Every problem of ``instance`` as ``(type, field, description)`` in gojsonschema's
    words, fields under ``prefix`` (``"input"`` for a prediction's input)."""
    problems: list[tuple[str, str, str]] = []
    for err in sorted(validator.iter_errors(instance), key=_order):
        problems.extend(_describe(err, prefix))
    return problems


def input_validator(
    openapi_schema: Mapping[str, Any], component: str
) -> jsonschema.Draft7Validator | None:
    """The validator of a version's ``component`` (``Input``, ``TrainingInput``), as the
    API applies it: JSON Schema draft 7 over the component, ``$ref`` resolved among the
    document's components, no format checks (a file input is any string: a URL, a
    ``data:`` URI). Unknown input names pass, as on Replicate (Cog drops them).
    ``None`` when the document has no such component."""
    components = openapi_schema.get("components", {})
    schema = components.get("schemas", {}).get(component) if isinstance(components, dict) else None
    if not isinstance(schema, dict):
        return None
    return jsonschema.Draft7Validator({**schema, "components": components})


def input_problems(
    openapi_schema: Mapping[str, Any], component: str, data: Mapping[str, Any]
) -> list[Problem]:
    """Every problem the API finds in ``data`` as the input of ``component`` (fields
    under ``input``); empty when it is accepted (or the document has no ``component``)."""
    validator = input_validator(openapi_schema, component)
    if validator is None:
        return []
    return describe_errors(validator, dict(data), "input")


def _order(err: jsonschema.ValidationError) -> tuple[int, list[str]]:
    # Missing keys first, then the rest in path order (stable across runs).
    return (0 if err.validator == "required" else 1, [str(p) for p in err.absolute_path])


def _describe(err: jsonschema.ValidationError, prefix: str = "") -> list[tuple[str, str, str]]:
    path = [p for p in (prefix, *map(str, err.absolute_path)) if p]
    here = ".".join(path)
    parent = ".".join(path[:-1])
    kind = _TYPES.get(str(err.validator), str(err.validator))
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return [(kind, here, f"{missing} is required")]
    if err.validator == "additionalProperties":
        schema = err.schema if isinstance(err.schema, dict) else {}
        allowed = set(schema.get("properties", {}))
        instance: Any = err.instance
        extra = sorted(k for k in instance if k not in allowed)
        return [(kind, here, f"Additional property {key} is not allowed") for key in extra]
    # gojsonschema names the whole path (``webhook_events_filter.1``) in the message.
    name = here or "(root)"
    if err.validator == "type":
        expected = err.validator_value
        if isinstance(expected, list):
            expected = "/".join(expected)
        given = _JSON_TYPES.get(type(err.instance), "value")
        return [(kind, here, f"Invalid type. Expected: {expected}, given: {given}")]
    if err.validator == "enum":
        values: Any = err.validator_value
        choices = ", ".join(json.dumps(v) for v in values)
        return [(kind, here, f"{name} must be one of the following: {choices}")]
    if err.validator == "minimum":
        return [(kind, here, f"Must be greater than or equal to {_num(err.validator_value)}")]
    if err.validator == "maximum":
        return [(kind, here, f"Must be less than or equal to {_num(err.validator_value)}")]
    if err.validator == "exclusiveMinimum":
        return [(kind, here, f"Must be greater than {_num(err.validator_value)}")]
    if err.validator == "exclusiveMaximum":
        return [(kind, here, f"Must be less than {_num(err.validator_value)}")]
    if err.validator == "minLength":
        return [
            (kind, here, f"String length must be greater than or equal to {err.validator_value}")
        ]
    if err.validator == "maxLength":
        return [(kind, here, f"String length must be less than or equal to {err.validator_value}")]
    if err.validator == "pattern":
        return [(kind, here, f"Does not match pattern '{err.validator_value}'")]
    if err.validator == "format":
        return [(kind, here, f"Does not match format '{err.validator_value}'")]
    return [(kind, here or parent, str(err.message))]


def _num(value: Any) -> str:
    # Schemas may carry 4.0 where Go prints 4.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)
