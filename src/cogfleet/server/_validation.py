"""Request bodies checked the way Replicate checks them.

Replicate validates each body against its OpenAPI schema (``additionalProperties:
false`` where the API has it: the prediction bodies) and answers 422 ``Input
validation failed`` with one line per problem in ``detail`` and the same problems
in ``invalid_fields``, each
``{type, field, description}`` in gojsonschema's terms: ``field`` is the path of the
object that holds the problem (``""`` at the top level, ``"input"`` inside the
input), so a misspelled key reads ``- Additional property inputs is not allowed``.
The wording is :mod:`cogfleet._api_rules`' (shared with the config check).
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema

from cogfleet._api_rules import describe_errors
from cogfleet.server._core import INVALID, ApiError

# Only the formats the request schemas use: a webhook is an absolute http(s) URL
# (http too: a local receiver rarely has TLS).
_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("uri")
def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return False
    # A host httpx had to percent-encode (a space, a quote) is no host Go's URL
    # parser, which Replicate validates with, takes.
    return url.scheme in ("http", "https") and bool(url.host) and "%" not in url.host


_URL = {"type": "string", "minLength": 1, "maxLength": 2048, "format": "uri"}
_WEBHOOK_EVENTS = {
    "type": "array",
    "items": {"type": "string", "enum": ["start", "output", "logs", "completed"]},
}
_RUN_FIELDS: dict[str, Any] = {
    "input": {"type": "object"},
    "webhook": _URL,
    "webhook_events_filter": _WEBHOOK_EVENTS,
    # Not in the current spec, but the 1.0.7 client still sends it (a completed-only hook).
    "webhook_completed": _URL,
    # Deprecated in the spec (streamable models always stream) and still accepted.
    "stream": {"type": "boolean"},
}
_OPTIONAL_TEXT = {"type": ["string", "null"], "maxLength": 10_000}


def _object(
    properties: dict[str, Any], required: list[str], *, closed: bool = False
) -> dict[str, Any]:
    # ``closed``: unknown keys are refused. Replicate's schema says so for prediction
    # bodies only; models, deployments and trainings ignore keys they do not know.
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": not closed,
    }


PREDICTION = _object(
    {"version": {"type": "string", "minLength": 1}, **_RUN_FIELDS},
    ["version", "input"],
    closed=True,
)
MODEL_PREDICTION = _object(dict(_RUN_FIELDS), ["input"], closed=True)
TRAINING = _object(
    {
        "destination": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
        "input": {"type": "object"},
        "webhook": _URL,
        "webhook_events_filter": _WEBHOOK_EVENTS,
        "webhook_completed": _URL,
    },
    ["destination", "input"],
)
MODEL_CREATE = _object(
    {
        "owner": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "visibility": {"type": "string", "enum": ["public", "private"]},
        "hardware": {"type": "string", "minLength": 1},
        "description": _OPTIONAL_TEXT,
        "github_url": _OPTIONAL_TEXT,
        "paper_url": _OPTIONAL_TEXT,
        "license_url": _OPTIONAL_TEXT,
        "cover_image_url": _OPTIONAL_TEXT,
    },
    ["owner", "name", "visibility", "hardware"],
)
MODEL_UPDATE = _object(
    {
        "description": _OPTIONAL_TEXT,
        "github_url": _OPTIONAL_TEXT,
        "paper_url": _OPTIONAL_TEXT,
        "license_url": _OPTIONAL_TEXT,
        "weights_url": _OPTIONAL_TEXT,
        "readme": {"type": ["string", "null"], "maxLength": 1_000_000},
    },
    [],
)
_INSTANCES = {"min_instances": (0, 5), "max_instances": (0, 20)}
_DEPLOYMENT_FIELDS: dict[str, Any] = {
    "version": {"type": "string", "minLength": 1},
    "hardware": {"type": "string", "minLength": 1},
    **{
        key: {"type": "integer", "minimum": low, "maximum": high}
        for key, (low, high) in _INSTANCES.items()
    },
}
DEPLOYMENT_CREATE = _object(
    {
        "name": {"type": "string", "minLength": 1},
        "model": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
        **_DEPLOYMENT_FIELDS,
    },
    ["name", "model", "version", "hardware", "min_instances", "max_instances"],
)
DEPLOYMENT_UPDATE = _object(dict(_DEPLOYMENT_FIELDS), [])
PROMOTE = _object(
    {"from_version": {"type": "string", "minLength": 1}}, ["from_version"], closed=True
)

_VALIDATORS: dict[int, jsonschema.Draft7Validator] = {}


def check_body(body: dict[str, Any], schema: dict[str, Any]) -> None:
    """422 ``Input validation failed`` when ``body`` does not fit ``schema``."""
    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        validator = _VALIDATORS[id(schema)] = jsonschema.Draft7Validator(
            schema, format_checker=_FORMATS
        )
    problems = describe_errors(validator, body)
    if problems:
        raise invalid(problems)


def invalid(problems: list[tuple[str, str, str]]) -> ApiError:
    """The 422 for ``(type, field, description)`` problems, as Replicate words it."""
    return ApiError(
        422,
        "".join(f"- {field}: {text}\n" if field else f"- {text}\n" for _, field, text in problems),
        INVALID,
        invalid_fields=[
            {"type": kind, "field": field, "description": text} for kind, field, text in problems
        ],
    )
