"""Backwards compatibility of two Cog OpenAPI documents (the ``schema-compat`` step).

A new version is *compatible* with the live one when every request an existing
client sends still validates, and every output it reads keeps its shape:

* inputs are compared "new must accept all that old accepted": a removed input, a
  changed type or format, a tighter range or length, a removed choice, an added
  pattern, an input that became required, or a new input that is required or has
  neither a default nor ``nullable`` (cog-safe-push's reading) breaks clients;
* outputs are compared "new must only produce what old clients can read": a changed
  type, single value vs list, a changed item type, a removed or retyped object field,
  a field that may now be missing or ``null`` breaks clients.

Deliberately compatible: defaults, descriptions, titles, ``x-order``, deprecation,
added optional inputs, added choices, widened or removed ranges, and an output that
switches between a list and an iterator (``x-cog-array-type``): both arrive as the
same JSON array in the prediction's final ``output``.

The module also holds the ``$ref`` resolution shared with :mod:`cogfleet.schema._fuzz`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from cogfleet._errors import ConfigError

__all__ = [
    "check_compatibility",
    "component",
    "load_schema_file",
    "resolve_refs",
]

_REF_PREFIX = "#/components/schemas/"
# Keys of an enum component that describe the component itself, not the input
# pointing at it ("An enumeration." must not replace the input's description).
_COMPONENT_ONLY_KEYS = frozenset({"title", "description"})
# Range keywords: (keyword, the direction that breaks inputs, a human word).
_LOWER_BOUNDS = ("minLength", "minItems")
_UPPER_BOUNDS = ("maxLength", "maxItems")
# numeric bounds: (inclusive key, exclusive key, the direction that narrows the input)
_NUMBER_BOUNDS = (("minimum", "exclusiveMinimum", 1), ("maximum", "exclusiveMaximum", -1))

Direction = Literal["input", "output"]


def component(schema_doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    """Return ``components.schemas[name]`` of an OpenAPI document, or None when absent."""
    components = schema_doc.get("components")
    if not isinstance(components, dict):
        return None
    schemas = components.get("schemas")
    if not isinstance(schemas, dict):
        return None
    found = schemas.get(name)
    return found if isinstance(found, dict) else None


def resolve_refs(node: Any, schema_doc: dict[str, Any]) -> Any:
    """Return a deep copy of ``node`` with every local ``$ref`` inlined.

    A single-element ``allOf`` wrapping a ``$ref`` (how Cog writes choice inputs) is
    merged into its parent, so a choice input comes out as
    ``{"type": "string", "enum": [...], "default": ..., "x-order": ...}``. The parent's
    own keys win; the component's title and description ("An enumeration.") are
    dropped. A reference cycle is cut as ``{"type": "object"}``, which is also what
    Cog itself emits for recursive output models.

    Raises:
        ConfigError: a ``$ref`` that does not point into ``components.schemas``.
    """
    return _resolve(node, schema_doc, ())


def _lookup_ref(ref: Any, schema_doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
        raise ConfigError(None, f"schema: unsupported $ref {ref!r} (only {_REF_PREFIX}<name>)")
    name = ref[len(_REF_PREFIX) :]
    target = component(schema_doc, name)
    if target is None:
        raise ConfigError(None, f"schema: $ref {ref!r} does not resolve")
    return name, target


def _resolve(node: Any, schema_doc: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, schema_doc, seen) for item in node]
    if not isinstance(node, dict):
        # a JSON scalar: any copy of it is the same value (mutation testing: equivalent)
        return copy.deepcopy(node)  # pragma: no mutate
    if "$ref" in node:
        name, target = _lookup_ref(node["$ref"], schema_doc)
        if name in seen:
            return {"type": "object"}
        resolved: dict[str, Any] = _resolve(target, schema_doc, (*seen, name))
        # Siblings of $ref are ignored by OpenAPI 3.0, but Cog never writes any;
        # keeping them (parent wins) is the forgiving reading.
        for key, value in node.items():
            if key != "$ref":
                resolved[key] = _resolve(value, schema_doc, seen)
        return resolved
    out: dict[str, Any] = {}
    all_of = node.get("allOf")
    # read only when allOf is a list of objects (mutation testing: `None` is equivalent)
    parts: list[dict[str, Any]] = []  # pragma: no mutate
    if isinstance(all_of, list) and all(isinstance(part, dict) for part in all_of):
        parts = all_of
    merge_all_of = bool(parts)
    if merge_all_of:
        for part in parts:
            part_resolved = _resolve(part, schema_doc, seen)
            for key, value in part_resolved.items():
                if "$ref" in part and key in _COMPONENT_ONLY_KEYS:
                    continue
                out[key] = value
    for key, value in node.items():
        if key == "allOf" and merge_all_of:
            continue
        out[key] = _resolve(value, schema_doc, seen)
    return out


def load_schema_file(path: Path) -> dict[str, Any]:
    """Read a Cog OpenAPI document from a JSON file (for ``cogfleet schema-diff``).

    Also accepts a Replicate version object (``{"openapi_schema": {...}, ...}``) and a
    model object (``{"latest_version": {"openapi_schema": {...}}}``) as returned by the
    API, so a saved ``GET /v1/models/o/m/versions/ID`` answer can be diffed directly.

    Raises:
        ConfigError: unreadable file, invalid JSON, not an OpenAPI document with
            ``components.schemas.Input`` or ``TrainingInput`` (a train-only model has
            only the latter), or a ``$ref`` that does not resolve.
    """
    try:
        # "UTF-8" names the same codec, and so does None under Python's UTF-8 mode
        # (mutation testing: equivalent)
        text = path.read_text(encoding="utf-8")  # pragma: no mutate
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(path, f"cannot read schema file: {reason}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from exc
    except RecursionError:
        raise ConfigError(path, "not valid JSON: nested too deeply") from None
    if isinstance(doc, dict) and isinstance(doc.get("latest_version"), dict):
        doc = doc["latest_version"]
    if isinstance(doc, dict) and "openapi_schema" in doc:
        doc = doc["openapi_schema"]
        if not isinstance(doc, dict):
            raise ConfigError(path, "the version object's openapi_schema is empty")
    if not isinstance(doc, dict):
        raise ConfigError(path, "not an OpenAPI document (expected a JSON object)")
    if component(doc, "Input") is None and component(doc, "TrainingInput") is None:
        raise ConfigError(
            path,
            "not a Cog OpenAPI document: components.schemas has neither Input nor TrainingInput",
        )
    try:
        for name in ("Input", "Output", "TrainingInput", "TrainingOutput"):
            found = component(doc, name)
            if found is not None:
                resolve_refs(found, doc)
    except ConfigError as exc:
        raise ConfigError(path, exc.message) from exc
    except RecursionError:
        raise ConfigError(path, "schemas nested too deeply") from None
    for name in ("Input", "TrainingInput"):
        problem = _input_shape_problem(component(doc, name))
        if problem:
            raise ConfigError(path, f"components.schemas.{name}: {problem}")
    return doc


def _input_shape_problem(schema: Any) -> str | None:
    """What makes an input schema unreadable as one (``None`` when it reads)."""
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return "expected a JSON object"
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        return "properties: expected a JSON object"
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            return f"properties.{name}: expected a JSON object"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return "required: expected a list of names"
    return None


def check_compatibility(
    old: dict[str, Any],
    new: dict[str, Any],
    parts: Collection[str] = ("predict", "train"),
) -> list[str]:
    """List the backwards-incompatible changes from OLD to NEW (empty = compatible).

    OLD and NEW are whole Cog OpenAPI documents: a predict part (``Input``/``Output``),
    a train part (``TrainingInput``/``TrainingOutput``), or both. Each part OLD has
    (of ``parts``: a safe push compares the parts its config tests) is compared; a
    part NEW dropped is a break. Each line names what changed, e.g.
    ``input 'steps': maximum lowered from 50 to 4``, ``Output: type changed from
    string to array of string``, ``TrainingInput.epochs: removed``.

    Raises:
        ConfigError: a document with neither ``Input`` nor ``TrainingInput``, or a
            broken $ref.
    """
    for label, doc in (("old", old), ("new", new)):
        if component(doc, "Input") is None and component(doc, "TrainingInput") is None:
            raise ConfigError(
                None, f"{label} schema has neither components.schemas.Input nor TrainingInput"
            )
    problems: list[str] = []
    if "predict" in parts and component(old, "Input") is not None:
        if component(new, "Input") is None:
            problems.append("Input: removed (the new version cannot run predictions)")
        else:
            # the first problems of the list (mutation testing: `=` is equivalent)
            problems += _compare_inputs(  # pragma: no mutate
                old, new, "Input", lambda name: f"input '{name}'"
            )
            problems += _compare_outputs(old, new, "Output")
    if "train" in parts and component(old, "TrainingInput") is not None:
        if component(new, "TrainingInput") is None:
            problems.append("TrainingInput: removed (the new version cannot be trained)")
        else:
            problems += _compare_inputs(
                old, new, "TrainingInput", lambda name: f"TrainingInput.{name}"
            )
            problems += _compare_outputs(old, new, "TrainingOutput")
    return problems


def _compare_inputs(
    old_doc: dict[str, Any], new_doc: dict[str, Any], name: str, label: Any
) -> list[str]:
    old_comp = resolve_refs(component(old_doc, name), old_doc)
    new_comp = resolve_refs(component(new_doc, name), new_doc)
    old_props: dict[str, Any] = old_comp.get("properties") or {}
    new_props: dict[str, Any] = new_comp.get("properties") or {}
    old_required = set(old_comp.get("required") or [])
    new_required = set(new_comp.get("required") or [])
    problems: list[str] = []
    for prop, old_schema in old_props.items():
        where = label(prop)
        if prop not in new_props:
            problems.append(f"{where}: removed")
            continue
        if prop in new_required and prop not in old_required:
            problems.append(f"{where}: optional input made required")
        _compare(old_schema, new_props[prop], where, "input", problems)
    for prop, new_schema in new_props.items():
        if prop in old_props:
            continue
        if prop in new_required:
            problems.append(f"{label(prop)}: new required input")
        elif "default" not in new_schema and new_schema.get("nullable") is not True:
            # As cog-safe-push reads it: Cog <= 0.16 writes `str = Input(default=None)`
            # without a default, and Cog 0.19 on makes that input required.
            problems.append(
                f"{label(prop)}: new input without a default (give it one, or make it Optional)"
            )
    return problems


def _compare_outputs(old_doc: dict[str, Any], new_doc: dict[str, Any], name: str) -> list[str]:
    old_out = component(old_doc, name)
    new_out = component(new_doc, name)
    if old_out is None:
        return []
    if new_out is None:
        return [f"{name}: removed"]
    problems: list[str] = []
    _compare(
        resolve_refs(old_out, old_doc), resolve_refs(new_out, new_doc), name, "output", problems
    )
    return problems


def describe(schema: dict[str, Any]) -> str:
    """A short human description of a (resolved) schema: ``array of string (uri)``."""
    if "anyOf" in schema and isinstance(schema["anyOf"], list):
        return " | ".join(describe(v) for v in schema["anyOf"] if isinstance(v, dict))
    kind = schema.get("type", "any")
    if kind == "array":
        items = schema.get("items")
        return f"array of {describe(items)}" if isinstance(items, dict) else "array"
    text = str(kind)
    if isinstance(schema.get("format"), str):
        text += f" ({schema['format']})"
    return text


def _num(value: Any) -> str:
    # Go writes float64 bounds; 50.0 and 50 mean the same to a user.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        return [v for v in any_of if isinstance(v, dict)]
    return [schema]


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    where: str,
    direction: Direction,
    problems: list[str],
) -> None:
    """Append the breaking differences between two resolved value schemas."""
    if "anyOf" in old or "anyOf" in new:
        _compare_unions(old, new, where, direction, problems)
        return
    old_type, new_type = old.get("type"), new.get("type")
    if old_type != new_type:
        choice = "choice " if ("enum" in old or "enum" in new) else ""
        problems.append(f"{where}: {choice}type changed from {describe(old)} to {describe(new)}")
        return
    if old.get("format") != new.get("format"):
        problems.append(
            f"{where}: format changed from {old.get('format') or 'none'} "
            f"to {new.get('format') or 'none'}"
        )
    if direction == "input":
        _compare_input_constraints(old, new, where, problems)
    else:
        _compare_output_shape(old, new, where, problems)
    old_items, new_items = old.get("items"), new.get("items")
    if isinstance(old_items, dict) and isinstance(new_items, dict):
        _compare(old_items, new_items, f"{where} items", direction, problems)


def _compare_unions(
    old: dict[str, Any],
    new: dict[str, Any],
    where: str,
    direction: Direction,
    problems: list[str],
) -> None:
    # An input union may gain variants (accepts more); an output union may lose them.
    old_kinds = {describe(v) for v in _variants(old)}
    new_kinds = {describe(v) for v in _variants(new)}
    lost = old_kinds - new_kinds if direction == "input" else new_kinds - old_kinds
    if lost:
        problems.append(f"{where}: type changed from {describe(old)} to {describe(new)}")


def _compare_input_constraints(
    old: dict[str, Any], new: dict[str, Any], where: str, problems: list[str]
) -> None:
    old_enum, new_enum = old.get("enum"), new.get("enum")
    if isinstance(new_enum, list):
        if not isinstance(old_enum, list):
            listed = ", ".join(json.dumps(v) for v in new_enum)
            problems.append(f"{where}: now restricted to choices {listed}")
        else:
            removed = [v for v in old_enum if v not in new_enum]
            if removed:
                listed = ", ".join(json.dumps(v) for v in removed)
                problems.append(f"{where}: choices removed: {listed}")
    for key in _LOWER_BOUNDS:
        if key in new and key not in old:
            problems.append(f"{where}: {key} added ({_num(new[key])})")
        elif key in new and _is_number(old[key]) and _is_number(new[key]) and new[key] > old[key]:
            problems.append(f"{where}: {key} raised from {_num(old[key])} to {_num(new[key])}")
    for key in _UPPER_BOUNDS:
        if key in new and key not in old:
            problems.append(f"{where}: {key} added ({_num(new[key])})")
        elif key in new and _is_number(old[key]) and _is_number(new[key]) and new[key] < old[key]:
            problems.append(f"{where}: {key} lowered from {_num(old[key])} to {_num(new[key])}")
    for inclusive, exclusive, narrows in _NUMBER_BOUNDS:
        _compare_number_bound(old, new, where, inclusive, exclusive, narrows, problems)
    if "pattern" in new and "pattern" not in old:
        problems.append(f"{where}: pattern added ({new['pattern']})")
    elif "pattern" in new and new["pattern"] != old["pattern"]:
        problems.append(f"{where}: pattern changed from {old['pattern']} to {new['pattern']}")
    if old.get("nullable") is True and new.get("nullable") is not True:
        problems.append(f"{where}: no longer accepts null")


def _number_bound(
    schema: dict[str, Any], inclusive: str, exclusive: str, narrows: int
) -> tuple[float, bool] | None:
    """The tightest numeric bound ``(value, exclusive)`` of ``schema`` on one side.

    OpenAPI 3.0 writes ``exclusiveMinimum: true`` beside ``minimum``; JSON Schema and
    OpenAPI 3.1 write the bound itself, ``exclusiveMinimum: 0``. Both are read.
    """
    found: list[tuple[float, bool]] = []
    if _is_number(schema.get(inclusive)):
        found.append((schema[inclusive], schema.get(exclusive) is True))
    if _is_number(schema.get(exclusive)):
        found.append((schema[exclusive], True))
    if not found:
        return None
    # tighter: further in the narrowing direction, then exclusive over inclusive
    return max(found, key=lambda bound: (bound[0] * narrows, bound[1]))


def _compare_number_bound(
    old: dict[str, Any], new: dict[str, Any], where: str,
    inclusive: str, exclusive: str, narrows: int, problems: list[str],
) -> None:
    new_bound = _number_bound(new, inclusive, exclusive, narrows)
    if new_bound is None:
        return
    old_bound = _number_bound(old, inclusive, exclusive, narrows)
    key = exclusive if new_bound[1] else inclusive
    if old_bound is None:
        problems.append(f"{where}: {key} added ({_num(new_bound[0])})")
        return
    moved = (new_bound[0] - old_bound[0]) * narrows
    if moved > 0:
        verb = "raised" if narrows > 0 else "lowered"
        problems.append(
            f"{where}: {key} {verb} from {_num(old_bound[0])} to {_num(new_bound[0])}"
        )
    elif moved == 0 and new_bound[1] and not old_bound[1]:
        problems.append(f"{where}: {_num(new_bound[0])} is now excluded ({exclusive})")


def _compare_output_shape(
    old: dict[str, Any], new: dict[str, Any], where: str, problems: list[str]
) -> None:
    if new.get("nullable") is True and old.get("nullable") is not True:
        problems.append(f"{where}: may now be null")
    old_props, new_props = old.get("properties"), new.get("properties")
    if isinstance(old_props, dict):
        new_props = new_props if isinstance(new_props, dict) else {}
        old_required = set(old.get("required") or [])
        new_required = set(new.get("required") or [])
        for field, old_field in old_props.items():
            field_where = f"{where}.{field}"
            if field not in new_props:
                problems.append(f"{field_where}: removed")
                continue
            if field in old_required and field not in new_required:
                problems.append(f"{field_where}: no longer always present")
            if isinstance(old_field, dict) and isinstance(new_props[field], dict):
                _compare(old_field, new_props[field], field_where, "output", problems)
    old_values, new_values = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_values, dict) and isinstance(new_values, dict):
        _compare(old_values, new_values, f"{where} values", "output", problems)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
