"""Schema-respecting inputs for fuzzing a model version (the ``fuzz`` step).

Every input dict this module hands out has passed :func:`validate_inputs` against the
version's own OpenAPI schema: a generator bug must fail here, not spend a GPU
prediction on a request coglet would reject with 422.

Generation order: boundary cases first (each minimum, each maximum, each choice, each
boolean value, varied one field at a time over a baseline of the required inputs),
then random cases from ``random.Random(seed)``. Optional inputs the generator does
not vary are omitted, so the model applies its own defaults; nothing is ever ``null``.

The values of one property come from :mod:`._fuzz_values`. The AI path
(:func:`fuzz_prompt`, :func:`parse_ai_batch`) asks Claude for the whole batch in one
request and keeps only the items that validate.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from cogfleet._errors import ConfigError
from cogfleet.schema._compat import component, resolve_refs
from cogfleet.schema._fuzz_values import (
    Values,
    can_generate,
    file_values,
    is_file,
    is_secret,
    prop_problem,
    to_json_schema,
    validator,
)

__all__ = [
    "fuzz_prompt",
    "generate_inputs",
    "input_properties",
    "parse_ai_batch",
    "required_only_inputs",
    "validate_inputs",
]

Kind = Literal["predict", "train"]
# Gives the value for a file input: (input name, rng or None for the plain value).

def _component_name(kind: Kind) -> str:
    if kind == "predict":
        return "Input"
    if kind == "train":
        return "TrainingInput"
    raise ValueError(f"kind must be 'predict' or 'train', not {kind!r}")


def _input_component(schema_doc: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    name = _component_name(kind)
    found = component(dict(schema_doc), name)
    if found is None:
        hint = " (the model has no train())" if kind == "train" else ""
        raise ConfigError(None, f"schema has no components.schemas.{name}{hint}")
    resolved: dict[str, Any] = resolve_refs(found, dict(schema_doc))
    return resolved


def input_properties(
    schema_doc: Mapping[str, Any], *, kind: Kind = "predict"
) -> dict[str, dict[str, Any]]:
    """The input properties of ``Input`` (or ``TrainingInput``), resolved and ordered.

    ``$ref``s are inlined, so a choice input carries ``enum`` and ``type`` itself.
    The dict is ordered by ``x-order`` (properties without one keep document order,
    after the ordered ones).

    Raises:
        ConfigError: the document has no such component, or a ``$ref`` is broken.
    """
    comp = _input_component(schema_doc, kind)
    props = comp.get("properties") or {}
    if not isinstance(props, dict):
        raise ConfigError(None, f"schema: {_component_name(kind)}.properties is not an object")
    positions = {name: index for index, name in enumerate(props)}

    def order(name: str) -> tuple[int, float, int]:
        x_order = props[name].get("x-order") if isinstance(props[name], dict) else None
        if isinstance(x_order, int | float) and not isinstance(x_order, bool):
            return (0, float(x_order), positions[name])
        return (1, 0.0, positions[name])

    return {name: props[name] for name in sorted(props, key=order)}


def _required(schema_doc: Mapping[str, Any], kind: Kind) -> list[str]:
    return list(_input_component(schema_doc, kind).get("required") or [])


def validate_inputs(
    schema_doc: Mapping[str, Any], inputs: Any, *, kind: Kind = "predict"
) -> list[str]:
    """Check one input dict against the version's ``Input`` schema.

    Besides JSON Schema validation (with OpenAPI ``nullable`` translated), this
    rejects unknown keys, any ``None`` value (send nothing instead), and file inputs
    (``format: uri``) that are not URI strings.

    Returns:
        One line per problem, each naming the input; empty when the dict is valid.
    """
    if not isinstance(inputs, dict):
        return [f"inputs must be a JSON object, not {type(inputs).__name__}"]
    props = input_properties(schema_doc, kind=kind)
    problems: list[str] = []
    for name, value in inputs.items():
        if name not in props:
            problems.append(f"input '{name}': unknown input")
        elif value is None:
            problems.append(f"input '{name}': null is not allowed (omit the input instead)")
    schema = {
        "type": "object",
        # Top-level nulls are rejected above; dropping ``nullable`` there keeps the
        # messages plain ("is not of type 'string'", not "'string', 'null'").
        "properties": {
            name: to_json_schema({k: v for k, v in prop.items() if k != "nullable"})
            for name, prop in props.items()
        },
        "required": _required(schema_doc, kind),
    }
    checked = {k: v for k, v in inputs.items() if k in props and v is not None}
    errors = sorted(
        validator(schema).iter_errors(checked), key=lambda e: ([str(p) for p in e.path], e.message)
    )
    for error in errors:
        if error.path:
            where = "input '" + "/".join(str(p) for p in error.path) + "'"
        else:
            where = "inputs"
        problems.append(f"{where}: {error.message}")
    return problems



# ------------------------------------------------------------------------ generation


def _check_config(
    props: Mapping[str, dict[str, Any]],
    required: Sequence[str],
    fixed_inputs: Mapping[str, Any],
    disabled_inputs: Sequence[str],
    file_inputs: Mapping[str, str] | None,
) -> None:
    for name in fixed_inputs:
        if name not in props:
            raise ConfigError(None, f"fuzz.fixed_inputs: unknown input '{name}'")
        if fixed_inputs[name] is None:
            raise ConfigError(None, f"fuzz.fixed_inputs: '{name}' is null (omit it instead)")
        problem = prop_problem(props[name], fixed_inputs[name])
        if problem:
            raise ConfigError(None, f"fuzz.fixed_inputs: '{name}': {problem}")
    for name in disabled_inputs:
        if name not in props:
            raise ConfigError(None, f"fuzz.disabled_inputs: unknown input '{name}'")
        if name in fixed_inputs:
            raise ConfigError(None, f"fuzz.disabled_inputs: '{name}' is also in fixed_inputs")
        if name in required:
            raise ConfigError(None, f"fuzz.disabled_inputs: '{name}' is required")
    for name in file_inputs or {}:
        if name not in props:
            raise ConfigError(None, f"fuzz.file_inputs: unknown input '{name}'")


def _assert_valid(schema_doc: Mapping[str, Any], inputs: dict[str, Any], kind: Kind) -> None:
    problems = validate_inputs(schema_doc, inputs, kind=kind)
    if problems:
        # Raised even under ``python -O``: an invalid request must never be sent.
        raise AssertionError(f"generated invalid fuzz inputs {inputs!r}: {problems[0]}")


def _baseline(
    props: Mapping[str, dict[str, Any]],
    required: Sequence[str],
    fixed_inputs: Mapping[str, Any],
    values: Values,
) -> dict[str, Any]:
    base: dict[str, Any] = {}
    for name, prop in props.items():
        if name in fixed_inputs:
            base[name] = fixed_inputs[name]
        elif name in required:
            base[name] = values.typical(name, prop)
    return base


def generate_inputs(
    schema_doc: Mapping[str, Any],
    *,
    iterations: int,
    fixed_inputs: Mapping[str, Any],
    disabled_inputs: Sequence[str],
    seed: int | None = 0,
    file_inputs: Mapping[str, str] | None = None,
    kind: Kind = "predict",
) -> list[dict[str, Any]]:
    """Generate ``iterations`` valid input dicts for a model version.

    Boundary cases come first (one field varied at a time over the baseline of
    required inputs): each ``minimum``/``maximum``, ``minLength``/``maxLength``, each
    choice, both booleans. Random cases from ``random.Random(seed)`` fill the rest, so
    the same seed gives the same list (``seed=None``: a different list each run).
    ``fixed_inputs`` are in every dict and never varied; ``disabled_inputs`` are never
    sent. File inputs (``format: uri``) get
    ``file_inputs[name]`` or a tiny generated PNG ``data:`` URI.

    Raises:
        ConfigError: a fixed/disabled/file input that is unknown, a disabled input that
            is required, a fixed value that fails the schema, or an input no value can
            be generated for.
        AssertionError: a generated dict failed validation (a bug in this module).
    """
    if iterations < 0:
        raise ConfigError(None, f"fuzz.iterations must be >= 0, not {iterations}")
    props = input_properties(schema_doc, kind=kind)
    required = _required(schema_doc, kind)
    _check_config(props, required, fixed_inputs, disabled_inputs, file_inputs)
    values = Values(file_values(file_inputs))
    base = _baseline(props, required, fixed_inputs, values)
    _assert_valid(schema_doc, base, kind)
    # Never sent unless required: an optional input no value can be made for (a
    # pattern without a valid default), and an optional Secret (a made-up API key
    # only makes the model fail for a reason that says nothing about it).
    varied = [
        n
        for n in props
        if n not in fixed_inputs
        and n not in disabled_inputs
        and (n in required or (can_generate(values, n, props[n]) and not is_secret(props[n])))
    ]

    cases: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(case: dict[str, Any]) -> bool:
        key = json.dumps(case, sort_keys=True)
        if key in seen:
            return False
        seen.add(key)
        cases.append(case)
        return True

    for name in varied:
        for edge in values.boundaries(name, props[name]):
            if len(cases) >= iterations:
                break
            add({**base, name: edge})

    rng = random.Random(seed)
    while len(cases) < iterations:
        # A tiny schema has few distinct dicts; after a few tries a repeat is fine.
        for _ in range(20):
            case = dict(base)
            for name in varied:
                if name in required or rng.random() < 0.5:
                    case[name] = values.random(name, props[name], rng)
            case = {n: case[n] for n in props if n in case}
            if add(case):
                break
        else:
            cases.append(case)

    for case in cases:
        _assert_valid(schema_doc, case, kind)
    return cases


def required_only_inputs(
    schema_doc: Mapping[str, Any],
    *,
    file_inputs: Mapping[str, str] | None = None,
    kind: Kind = "predict",
) -> dict[str, Any]:
    """The smallest valid input dict: required inputs only, each with a plain value."""
    props = input_properties(schema_doc, kind=kind)
    required = _required(schema_doc, kind)
    _check_config(props, required, {}, [], file_inputs)
    values = Values(file_values(file_inputs))
    inputs = _baseline(props, required, {}, values)
    _assert_valid(schema_doc, inputs, kind)
    return inputs


# ---------------------------------------------------------------------------- the AI


_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.S)


def _extract_json_array(text: str) -> list[Any]:
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE_RE.finditer(text)]
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            parsed = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, list):
            return parsed
    raise ValueError("the AI answer contains no JSON array of input objects")


def parse_ai_batch(
    text: str,
    schema_doc: Mapping[str, Any],
    *,
    iterations: int,
    fixed_inputs: Mapping[str, Any],
    disabled_inputs: Sequence[str],
    file_inputs: Mapping[str, str] | None = None,
    kind: Kind = "predict",
) -> list[dict[str, Any]]:
    """Turn Claude's answer (a JSON array, maybe in a ```json fence) into input dicts.

    Each item gets ``fixed_inputs`` forced in and ``disabled_inputs`` removed; ``null``
    values and optional secrets are dropped (the input is omitted). File inputs are
    always filled from
    ``file_inputs`` or a generated PNG (the AI cannot upload files). Items that still
    fail :func:`validate_inputs` are dropped. At most ``iterations`` dicts are returned.

    Raises:
        ValueError: one line saying why nothing usable was found.
        ConfigError: an unknown or conflicting fixed/disabled/file input.
    """
    props = input_properties(schema_doc, kind=kind)
    required = _required(schema_doc, kind)
    _check_config(props, required, fixed_inputs, disabled_inputs, file_inputs)
    file_value = file_values(file_inputs)
    items = _extract_json_array(text)
    valid: list[dict[str, Any]] = []
    first_problem = ""
    for index, item in enumerate(items):
        if len(valid) >= iterations:
            break
        if not isinstance(item, dict):
            first_problem = first_problem or f"item {index} is not an object"
            continue
        inputs = {
            k: v
            for k, v in item.items()
            if v is not None
            and k not in disabled_inputs
            # Optional secrets are never made up (see generate_inputs).
            and not (k in props and is_secret(props[k]) and k not in required)
        }
        inputs.update(fixed_inputs)
        for name, prop in props.items():
            if not is_file(prop) or name in fixed_inputs or name in disabled_inputs:
                continue
            if name in inputs or name in required:
                inputs[name] = file_value(name, None)
        problems = validate_inputs(schema_doc, inputs, kind=kind)
        if problems:
            first_problem = first_problem or f"item {index}: {problems[0]}"
            continue
        valid.append({n: inputs[n] for n in props if n in inputs})
    if not valid:
        reason = first_problem or "the array is empty"
        raise ValueError(f"no valid inputs in the AI answer ({reason})")
    return valid


def fuzz_prompt(
    schema_doc: Mapping[str, Any],
    *,
    iterations: int,
    fixed_inputs: Mapping[str, Any],
    disabled_inputs: Sequence[str],
    user_prompt: str | None,
    kind: Kind = "predict",
) -> str:
    """The instruction sent to Claude asking for the whole fuzz batch in one request.

    The schema shown leaves out fixed and disabled inputs (cogfleet sets or omits them
    itself), file inputs (filled with real files after parsing) and optional secrets.
    """
    props = input_properties(schema_doc, kind=kind)
    required = _required(schema_doc, kind)
    _check_config(props, required, fixed_inputs, disabled_inputs, None)
    shown: dict[str, Any] = {}
    for name, prop in props.items():
        if name in fixed_inputs or name in disabled_inputs or is_file(prop):
            continue
        if is_secret(prop) and name not in required:
            continue
        entry = {k: v for k, v in prop.items() if k not in ("title", "x-order")}
        entry["required"] = name in required
        shown[name] = entry
    lines = [
        f"You are testing a machine learning model by choosing {iterations} different "
        "sets of inputs for it.",
        "",
        "Its inputs (JSON Schema, OpenAPI flavour) are:",
        json.dumps(shown, indent=2),
        "",
        "Rules:",
        "- Every required input must be present in every set.",
        "- Respect each input's type, minimum/maximum, minLength/maxLength, pattern and "
        "enum (choices) exactly.",
        "- Never use null; leave an optional input out to use its default.",
        "- Vary the inputs: cover edge values and realistic, varied text prompts.",
    ]
    skipped = [
        n for n, prop in props.items() if is_file(prop) or (is_secret(prop) and n not in required)
    ]
    if fixed_inputs or disabled_inputs or skipped:
        omitted = sorted({*fixed_inputs, *disabled_inputs, *skipped})
        lines.append(
            "- Do not include these inputs; they are set automatically: " + ", ".join(omitted)
        )
    if user_prompt:
        lines += ["", "Guidance from the model's author:", user_prompt.strip()]
    lines += [
        "",
        f"Answer with only a JSON array of exactly {iterations} objects, one per set of "
        "inputs, mapping input name to value. No prose.",
    ]
    return "\n".join(lines)
