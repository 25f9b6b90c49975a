"""Schema-respecting inputs for fuzzing a model version (the ``fuzz`` step).

Every input dict this module hands out has passed :func:`validate_inputs` against the
version's own OpenAPI schema: a generator bug must fail here, not spend a GPU
prediction on a request coglet would reject with 422.

Generation order: boundary cases first (each minimum, each maximum, each choice, each
boolean value, varied one field at a time over a baseline of the required inputs),
then random cases from ``random.Random(seed)``. Optional inputs the generator does
not vary are omitted, so the model applies its own defaults; nothing is ever ``null``.

The AI path (:func:`fuzz_prompt`, :func:`parse_ai_batch`) asks Claude for the whole
batch in one request and keeps only the items that validate.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeGuard

import jsonschema

from cogfleet._errors import ConfigError
from cogfleet.schema._compat import component, resolve_refs

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
_FileValue = Callable[[str, random.Random | None], str]

# Prompt-like vocabulary: real models see text that reads like a prompt, which is
# more telling than random characters.
_ADJECTIVES = ("", "old", "tiny", "glowing", "quiet", "red")
_SUBJECTS = (
    "fox",
    "lighthouse",
    "robot",
    "teapot",
    "cat",
    "mountain",
    "sailboat",
    "owl",
    "city street",
    "forest",
    "astronaut",
    "violin",
)
_STYLES = (
    "photo",
    "watercolor painting",
    "pencil sketch",
    "oil painting",
    "3d render",
    "pixel art",
    "studio portrait",
)
_PLACES = (
    "at sunset",
    "in the rain",
    "on the moon",
    "under a starry sky",
    "in a misty valley",
    "by the sea",
    "in a busy market",
)
_DETAILS = ("highly detailed", "soft light", "wide angle", "vivid colors", "minimalist")
_BASE_TEXT = "a photo of a cat"
# A maxLength boundary above this is skipped: a megabyte prompt tests the transport,
# not the model.
_MAX_BOUNDARY_LENGTH = 10_000
_DEFAULT_COLOR = (128, 128, 128)
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


def _is_uri(value: object) -> bool:
    # Cog file inputs: coglet downloads URLs and decodes data: URIs; a bare path fails.
    return not isinstance(value, str) or bool(_URI_RE.match(value))


_FORMAT_CHECKER.checks("uri")(_is_uri)


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


def _to_json_schema(node: Any) -> Any:
    """Translate an OpenAPI 3.0 schema object into plain JSON Schema (draft 4)."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("nullable", "default", "example") or key.startswith("x-"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _to_json_schema(value)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("anyOf"), list):
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


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
            name: _to_json_schema({k: v for k, v in prop.items() if k != "nullable"})
            for name, prop in props.items()
        },
        "required": _required(schema_doc, kind),
    }
    checked = {k: v for k, v in inputs.items() if k in props and v is not None}
    validator = jsonschema.Draft4Validator(schema, format_checker=_FORMAT_CHECKER)
    errors = sorted(
        validator.iter_errors(checked), key=lambda e: ([str(p) for p in e.path], e.message)
    )
    for error in errors:
        if error.path:
            where = "input '" + "/".join(str(p) for p in error.path) + "'"
        else:
            where = "inputs"
        problems.append(f"{where}: {error.message}")
    return problems


# --------------------------------------------------------------------------- values


@functools.lru_cache(maxsize=64)
def _png_data_uri(color: tuple[int, int, int]) -> str:
    from PIL import Image  # imported lazily: only runs that need a file pay for Pillow

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _is_file(prop: Mapping[str, Any]) -> bool:
    return prop.get("type") == "string" and prop.get("format") == "uri"


def _is_secret(prop: Mapping[str, Any]) -> bool:
    return prop.get("x-cog-secret") is True or prop.get("format") == "password"


def _text_of_length(length: int) -> str:
    """Prompt-like text of exactly ``length`` characters (no trailing space)."""
    if length <= 0:
        return ""
    text = _BASE_TEXT
    while len(text) < length:
        text += ", " + _BASE_TEXT
    text = text[:length]
    if text.endswith(" "):
        text = text[:-1] + "s"
    return text


def _fit_length(text: str, prop: Mapping[str, Any]) -> str:
    min_len = prop.get("minLength")
    max_len = prop.get("maxLength")
    if isinstance(min_len, int) and len(text) < min_len:
        text = _text_of_length(min_len)
    if isinstance(max_len, int) and len(text) > max_len:
        text = text[:max_len].rstrip()
        if isinstance(min_len, int) and len(text) < min_len:
            text = _text_of_length(min_len)
    return text


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _random_prompt(rng: random.Random) -> str:
    text = _with_article(f"{rng.choice(_ADJECTIVES)} {rng.choice(_SUBJECTS)}".strip())
    if rng.random() < 0.7:
        text = f"{_with_article(rng.choice(_STYLES))} of {text}"
    if rng.random() < 0.6:
        text += " " + rng.choice(_PLACES)
    for _ in range(rng.randint(0, 2)):
        text += ", " + rng.choice(_DETAILS)
    return text


def _int_bounds(prop: Mapping[str, Any]) -> tuple[int | None, int | None]:
    lo, hi = prop.get("minimum"), prop.get("maximum")
    low = None
    high = None
    if _is_number(lo):
        low = math.floor(lo) + 1 if prop.get("exclusiveMinimum") is True else math.ceil(lo)
    if _is_number(hi):
        high = math.ceil(hi) - 1 if prop.get("exclusiveMaximum") is True else math.floor(hi)
    return low, high


def _num_bounds(prop: Mapping[str, Any]) -> tuple[float | None, float | None]:
    lo, hi = prop.get("minimum"), prop.get("maximum")
    low = float(lo) if _is_number(lo) else None
    high = float(hi) if _is_number(hi) else None
    # Exclusive bounds: step inside by a small fraction of the range.
    span = (high - low) if low is not None and high is not None else 1.0
    if low is not None and prop.get("exclusiveMinimum") is True:
        low += span * 1e-3
    if high is not None and prop.get("exclusiveMaximum") is True:
        high -= span * 1e-3
    return low, high


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_key(prop: Mapping[str, Any], key: str, fallback: int) -> int:
    value = prop.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def _items(prop: Mapping[str, Any]) -> dict[str, Any]:
    items = prop.get("items")
    return items if isinstance(items, dict) else {}


def _choices(prop: Mapping[str, Any]) -> list[Any]:
    enum = prop.get("enum")
    return [c for c in enum if c is not None] if isinstance(enum, list) else []


def _non_null_variants(prop: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [v for v in prop.get("anyOf") or [] if isinstance(v, dict) and v.get("type") != "null"]


class _Values:
    """Value generation for one schema, given the file value to use per input."""

    def __init__(self, file_value: _FileValue) -> None:
        self._file_value = file_value

    def typical(self, name: str, prop: Mapping[str, Any]) -> Any:
        """A plain, valid value: the one used when an input must be present."""
        choices = _choices(prop)
        if choices:
            default = prop.get("default")
            return default if default in choices else choices[0]
        if "default" in prop and prop["default"] is not None and _valid(prop, prop["default"]):
            return prop["default"]
        if "pattern" in prop:
            raise ConfigError(
                None,
                f"fuzz: cannot generate a value for input '{name}' matching pattern "
                f"{prop['pattern']!r}; set it in fuzz.fixed_inputs",
            )
        variants = _non_null_variants(prop)
        if variants:
            return self.typical(name, variants[0])
        kind = prop.get("type")
        if kind == "boolean":
            return False
        if kind == "integer":
            low, high = _int_bounds(prop)
            if low is not None and high is not None:
                return (low + high) // 2
            return low if low is not None else (min(1, high) if high is not None else 1)
        if kind == "number":
            low_f, high_f = _num_bounds(prop)
            if low_f is not None and high_f is not None:
                return (low_f + high_f) / 2
            if low_f is not None:
                return low_f
            return min(1.0, high_f) if high_f is not None else 1.0
        if kind == "string":
            if _is_file(prop):
                return self._file_value(name, None)
            return _fit_length(_BASE_TEXT, prop)
        if kind == "array":
            count = max(1, _int_key(prop, "minItems", 0))
            count = min(count, _int_key(prop, "maxItems", count))
            return [self.typical(name, _items(prop)) for _ in range(count)]
        if kind == "object":
            return {}
        raise ConfigError(
            None,
            f"fuzz: cannot generate a value for input '{name}' "
            f"({json.dumps(prop, sort_keys=True)[:80]}); set it in fuzz.fixed_inputs",
        )

    def boundaries(self, name: str, prop: Mapping[str, Any]) -> list[Any]:
        """The edge values of one input: each bound, each choice, both booleans."""
        if _choices(prop):
            return _choices(prop)
        kind = prop.get("type")
        if kind == "boolean":
            return [True, False]
        if kind == "integer":
            return [b for b in _int_bounds(prop) if b is not None]
        if kind == "number":
            return [_as_json_number(b, prop) for b in _num_bounds(prop) if b is not None]
        if kind == "string" and not _is_file(prop) and "pattern" not in prop:
            out: list[Any] = []
            if isinstance(prop.get("minLength"), int):
                out.append(_text_of_length(prop["minLength"]))
            max_len = prop.get("maxLength")
            if isinstance(max_len, int) and max_len <= _MAX_BOUNDARY_LENGTH:
                out.append(_text_of_length(max_len))
            return out
        return []

    def random(self, name: str, prop: Mapping[str, Any], rng: random.Random) -> Any:
        """A random valid value drawn from ``rng``."""
        choices = _choices(prop)
        if choices:
            return rng.choice(choices)
        variants = _non_null_variants(prop)
        if variants:
            return self.random(name, rng.choice(variants), rng)
        kind = prop.get("type")
        if "pattern" in prop:
            # A regex cannot be sampled in general: the only value known to match
            # is the default (or fixed_inputs, handled by the caller).
            return self.typical(name, prop)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "integer":
            low, high = _int_bounds(prop)
            # Unbounded sides get a modest span: values seeds and counts usually take.
            if low is None:
                low = 0 if high is None else high - 1000
            if high is None:
                high = low + 1000
            return rng.randint(low, high)
        if kind == "number":
            low_f, high_f = _num_bounds(prop)
            if low_f is None:
                low_f = 0.0 if high_f is None else high_f - 100.0
            if high_f is None:
                high_f = low_f + 100.0
            # Three decimals read like a human's choice; clamp after rounding.
            value = round(rng.uniform(low_f, high_f), 3)
            return min(max(value, low_f), high_f)
        if kind == "string":
            if _is_file(prop):
                return self._file_value(name, rng)
            return _fit_length(_random_prompt(rng), prop)
        if kind == "array":
            low_n = _int_key(prop, "minItems", 1)
            high_n = _int_key(prop, "maxItems", low_n + 2)
            count = rng.randint(low_n, max(low_n, high_n))
            return [self.random(name, _items(prop), rng) for _ in range(count)]
        return self.typical(name, prop)


def _as_json_number(value: float, prop: Mapping[str, Any]) -> float | int:
    # Keep the schema's own literal (``0`` stays ``0``) when the bound is inclusive.
    for key in ("minimum", "maximum"):
        literal = prop.get(key)
        if isinstance(literal, int | float) and float(literal) == value:
            return literal
    return value


def _prop_problem(prop: Mapping[str, Any], value: Any) -> str | None:
    """The first reason ``value`` does not fit one property's schema, or None."""
    schema = _to_json_schema(dict(prop))
    validator = jsonschema.Draft4Validator(schema, format_checker=_FORMAT_CHECKER)
    for error in validator.iter_errors(value):
        return str(error.message)
    return None


def _valid(prop: Mapping[str, Any], value: Any) -> bool:
    return _prop_problem(prop, value) is None


def _can_generate(values: _Values, name: str, prop: Mapping[str, Any]) -> bool:
    try:
        values.typical(name, prop)
    except ConfigError:
        return False
    return True


def _file_values(file_inputs: Mapping[str, str] | None) -> _FileValue:
    given = dict(file_inputs or {})

    def value(name: str, rng: random.Random | None) -> str:
        if name in given:
            return given[name]
        if rng is None:
            return _png_data_uri(_DEFAULT_COLOR)
        # Colours come in steps of 32 so the cache of encoded PNGs stays small.
        color = (rng.randrange(8) * 32, rng.randrange(8) * 32, rng.randrange(8) * 32)
        return _png_data_uri(color)

    return value


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
        problem = _prop_problem(props[name], fixed_inputs[name])
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
    values: _Values,
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
    values = _Values(_file_values(file_inputs))
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
        and (n in required or (_can_generate(values, n, props[n]) and not _is_secret(props[n])))
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
    values = _Values(_file_values(file_inputs))
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
    file_value = _file_values(file_inputs)
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
            and not (k in props and _is_secret(props[k]) and k not in required)
        }
        inputs.update(fixed_inputs)
        for name, prop in props.items():
            if not _is_file(prop) or name in fixed_inputs or name in disabled_inputs:
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
        if name in fixed_inputs or name in disabled_inputs or _is_file(prop):
            continue
        if _is_secret(prop) and name not in required:
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
        n for n, prop in props.items() if _is_file(prop) or (_is_secret(prop) and n not in required)
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
