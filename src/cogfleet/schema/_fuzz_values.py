"""Values for fuzz inputs, one property at a time, and whether a value fits a property.

:class:`Values` gives each kind of input a typical value, its boundary values
(minimum, maximum, each choice, each boolean, the shortest and longest text) and
random ones; text reads like a prompt, files are small PNG ``data:`` URIs (or the
URLs the config gives). :func:`prop_problem` checks a value against one property's
schema, OpenAPI ``nullable`` translated to JSON Schema (:func:`to_json_schema`), with
file inputs required to be URIs.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import random
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeGuard

from cogfleet._errors import ConfigError

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "FileValue",
    "Values",
    "can_generate",
    "file_values",
    "is_file",
    "is_secret",
    "prop_problem",
    "to_json_schema",
    "validator",
]

# Gives the value for a file input: (input name, rng or None for the plain value).
FileValue = Callable[[str, random.Random | None], str]

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


def _is_uri(value: object) -> bool:
    # Cog file inputs: coglet downloads URLs and decodes data: URIs; a bare path fails.
    return not isinstance(value, str) or bool(_URI_RE.match(value))


def validator(schema: Mapping[str, Any]) -> jsonschema.Draft4Validator:
    """A JSON Schema (draft 4) validator whose only format check is Cog's ``uri``.

    jsonschema is imported here, on the first validation (60-140 ms with its
    dependencies): a push imports this module for the AI's fuzz prompt while its
    first predictions are being sent, and validates only once the inputs exist.
    """
    import jsonschema

    return jsonschema.Draft4Validator(schema, format_checker=_format_checker())


@cache
def _format_checker() -> jsonschema.FormatChecker:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("uri")(_is_uri)
    return checker


def to_json_schema(node: Any) -> Any:
    """Translate an OpenAPI 3.0 schema object into plain JSON Schema (draft 4)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("nullable", "default", "example") or key.startswith("x-"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("anyOf"), list):
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


# --------------------------------------------------------------------------- values


@functools.lru_cache(maxsize=64)
def _png_data_uri(color: tuple[int, int, int]) -> str:
    from PIL import Image  # imported lazily: only runs that need a file pay for Pillow

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def is_file(prop: Mapping[str, Any]) -> bool:
    return prop.get("type") == "string" and prop.get("format") == "uri"


def is_secret(prop: Mapping[str, Any]) -> bool:
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


class Values:
    """Value generation for one schema, given the file value to use per input."""

    def __init__(self, file_value: FileValue) -> None:
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
            if is_file(prop):
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
        if kind == "string" and not is_file(prop) and "pattern" not in prop:
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
            if is_file(prop):
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


def prop_problem(prop: Mapping[str, Any], value: Any) -> str | None:
    """The first reason ``value`` does not fit one property's schema, or None."""
    schema = to_json_schema(dict(prop))
    for error in validator(schema).iter_errors(value):
        return str(error.message)
    return None


def _valid(prop: Mapping[str, Any], value: Any) -> bool:
    return prop_problem(prop, value) is None


def can_generate(values: Values, name: str, prop: Mapping[str, Any]) -> bool:
    try:
        values.typical(name, prop)
    except ConfigError:
        return False
    return True


def file_values(file_inputs: Mapping[str, str] | None) -> FileValue:
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
