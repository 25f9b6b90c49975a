"""The OpenAPI document around a model's inputs and outputs, and its exact bytes.

Holds the parts that do not depend on the user's code: reading ``cog.yaml``,
assembling the fixed components and paths of Cog's static generator, merging
predict and train documents, and serialising a document the way the Cog CLI's
Go ``encoding/json`` writes it (so the bytes match ``.cog/openapi_schema.json`` and
the image label).

``COG_CLI_VERSION`` ("0.22.0") is the newest Cog CLI whose generator cogfleet
follows; it is ``info.version`` of documents for Cog 0.22 and later.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from cogfleet._errors import ConfigError
from cogfleet._files import write_atomic

COG_CLI_VERSION = "0.22.0"
"""The Cog CLI version whose static generator the documents reproduce (``info.version``)."""

SCHEMA_FILE = Path(".cog") / "openapi_schema.json"
"""Where coglet looks for the schema, relative to the model folder."""

_REF = "#/components/schemas/"

__all__ = [
    "COG_CLI_VERSION",
    "SCHEMA_FILE",
    "assemble_document",
    "dumps_schema",
    "is_merged_document",
    "merge_documents",
    "read_cog_refs",
    "title_case",
    "write_schema_file",
]


# ---------------------------------------------------------------------------
# cog.yaml
# ---------------------------------------------------------------------------


def read_cog_refs(build_dir: Path) -> tuple[str | None, str | None]:
    """Return ``(run_or_predict_ref, train_ref)`` from ``build_dir/cog.yaml``.

    Each ref has the form ``"file.py:Name"``. Raises :class:`ConfigError` naming
    ``cog.yaml`` when the file is missing, unreadable, or holds no usable ref.
    """
    path = build_dir / "cog.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "file not found") from None
    except yaml.YAMLError as exc:
        line = None
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            line = mark.line + 1
        raise ConfigError(path, f"invalid YAML: {getattr(exc, 'problem', exc)}", line) from None
    if not isinstance(data, dict):
        raise ConfigError(path, "expected a mapping at the top level")
    if data.get("run") is not None and data.get("predict") is not None:
        raise ConfigError(path, "'run' and 'predict' are mutually exclusive")
    predict = data.get("run", data.get("predict"))
    train = data.get("train")
    for key, ref in (("run" if "run" in data else "predict", predict), ("train", train)):
        if ref is None:
            continue
        # Same rule as Cog's validate.go: the ref splits into exactly two parts on ".py:".
        if not isinstance(ref, str) or len(ref.split(".py:")) != 2 or ref.endswith(".py:"):
            raise ConfigError(path, f"{key}: expected 'file.py:Name', got {ref!r}")
    if predict is None and train is None:
        raise ConfigError(path, "no 'run', 'predict' or 'train' reference to build a schema from")
    return predict, train


# ---------------------------------------------------------------------------
# Document assembly (pure; the worker supplies Input/Output/enums)
# ---------------------------------------------------------------------------


def title_case(name: str) -> str:
    """Go ``TitleCase``: split on ``_`` and upper-case the first letter of each part.

    Unlike ``str.title()`` the rest of each part is left alone: ``lora_2x`` gives
    ``"Lora 2x"`` (``.title()`` would give ``"Lora 2X"``).
    """
    return " ".join(
        part[:1].upper() + part[1:] if part[:1].isascii() else part for part in name.split("_")
    )


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _validation_error_response() -> dict[str, Any]:
    return {
        "content": _json_content({"$ref": _REF + "HTTPValidationError"}),
        "description": "Validation Error",
    }


def _fixed_get(summary: str, operation_id: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "responses": {
                "200": {"content": _json_content({}), "description": "Successful Response"}
            },
            "summary": summary,
        }
    }


def assemble_document(
    *,
    train: bool,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    enums: list[tuple[str, dict[str, Any]]],
    streaming: bool = False,
    info_version: str = COG_CLI_VERSION,
    cancel_title_case: bool = True,
) -> dict[str, Any]:
    """Build one single-mode document around ``Input``/``Output`` (as ``buildOpenAPISpec``).

    ``input_schema`` is the Input object without its title; ``output_schema``
    already carries ``"title": "Output"``; ``enums`` are ``(name, component)``
    pairs for ``choices`` inputs, in parameter order. ``streaming`` adds
    ``x-cog-streaming: true`` to ``POST /predictions`` (never to trainings).
    """
    if train:
        endpoint, request, response = "/trainings", "TrainingRequest", "TrainingResponse"
        cancel_ep, cancel_param = "/trainings/{training_id}/cancel", "training_id"
        summary, description = "Train", "Run a single training on the model"
        op_id, cancel_op_id = "train_trainings_post", "cancel_trainings__training_id__cancel_post"
        input_key, output_key = "TrainingInput", "TrainingOutput"
    else:
        endpoint, request, response = "/predictions", "PredictionRequest", "PredictionResponse"
        cancel_ep, cancel_param = "/predictions/{prediction_id}/cancel", "prediction_id"
        summary, description = "Predict", "Run a single prediction on the model"
        op_id = "predict_predictions_post"
        cancel_op_id = "cancel_predictions__prediction_id__cancel_post"
        input_key, output_key = "Input", "Output"

    schemas: dict[str, Any] = {}
    schemas[input_key] = {**input_schema, "title": input_key}
    schemas[output_key] = output_schema
    for name, component in enums:
        schemas[name] = component
    input_ref = {"$ref": _REF + input_key}
    schemas[request] = {
        "properties": {"id": {"title": "Id", "type": "string"}, "input": input_ref},
        "title": request,
        "type": "object",
    }
    # Go builds these from plain maps, so their properties come out sorted.
    schemas[response] = {
        "properties": {
            "completed_at": {"format": "date-time", "title": "Completed At", "type": "string"},
            "created_at": {"format": "date-time", "title": "Created At", "type": "string"},
            "error": {"title": "Error", "type": "string"},
            "id": {"title": "Id", "type": "string"},
            "input": dict(input_ref),
            "logs": {"title": "Logs", "type": "string"},
            "metrics": {"title": "Metrics", "type": "object"},
            "output": {"$ref": _REF + output_key},
            "started_at": {"format": "date-time", "title": "Started At", "type": "string"},
            "status": {"title": "Status", "type": "string"},
            "version": {"title": "Version", "type": "string"},
        },
        "title": response,
        "type": "object",
    }
    schemas["Status"] = {
        "description": "An enumeration.",
        "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
        "title": "Status",
        "type": "string",
    }
    schemas["HTTPValidationError"] = {
        "properties": {
            "detail": {
                "items": {"$ref": _REF + "ValidationError"},
                "title": "Detail",
                "type": "array",
            }
        },
        "title": "HTTPValidationError",
        "type": "object",
    }
    schemas["ValidationError"] = {
        "properties": {
            "loc": {
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "title": "Location",
                "type": "array",
            },
            "msg": {"title": "Message", "type": "string"},
            "type": {"title": "Error Type", "type": "string"},
        },
        "required": ["loc", "msg", "type"],
        "title": "ValidationError",
        "type": "object",
    }

    main_op: dict[str, Any] = {
        "description": description,
        "operationId": op_id,
        "requestBody": {"content": _json_content({"$ref": _REF + request})},
        "responses": {
            "200": {
                "content": _json_content({"$ref": _REF + response}),
                "description": "Successful Response",
            },
            "422": _validation_error_response(),
        },
        "summary": summary,
    }
    if streaming and not train:
        main_op["x-cog-streaming"] = True

    paths: dict[str, Any] = {
        "/": _fixed_get("Root", "root__get"),
        "/health-check": _fixed_get("Healthcheck", "healthcheck_health_check_get"),
        endpoint: {"post": main_op},
        cancel_ep: {
            "post": {
                "operationId": cancel_op_id,
                "parameters": [
                    {
                        "in": "path",
                        "name": cancel_param,
                        "required": True,
                        "schema": {
                            "title": title_case(cancel_param)
                            if cancel_title_case
                            else cancel_param[:1].upper() + cancel_param[1:],
                            "type": "string",
                        },
                    }
                ],
                "responses": {
                    "200": {"content": _json_content({}), "description": "Successful Response"},
                    "422": _validation_error_response(),
                },
                "summary": "Cancel",
            }
        },
    }
    doc = {
        "components": {"schemas": schemas},
        "info": {"title": "Cog", "version": info_version},
        "openapi": "3.0.2",
        "paths": paths,
    }
    _remove_title_next_to_ref(doc)
    return doc


def _remove_title_next_to_ref(value: Any) -> None:
    # OpenAPI 3.0 forbids siblings of $ref; Go strips a "title" next to one.
    if isinstance(value, dict):
        if "$ref" in value:
            value.pop("title", None)
        for child in value.values():
            _remove_title_next_to_ref(child)
    elif isinstance(value, list):
        for child in value:
            _remove_title_next_to_ref(child)


def _sorted_deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_deep(v) for v in value]
    return value


def merge_documents(predict: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """Merge a predict and a train document as Cog's ``MergeSchemas`` does.

    The predict document wins every collision (paths and components, enum
    components of the same name included). Cog re-marshals the merged document
    from Go maps, so every key, including paths and components, ends up sorted;
    the returned dict is ordered the same way.
    """
    merged = json.loads(json.dumps(predict))
    for key, value in train.get("paths", {}).items():
        merged["paths"].setdefault(key, value)
    schemas = merged["components"]["schemas"]
    for key, value in train.get("components", {}).get("schemas", {}).items():
        schemas.setdefault(key, value)
    result: dict[str, Any] = _sorted_deep(merged)
    return result


def is_merged_document(doc: dict[str, Any]) -> bool:
    """True for a predict+train document (it has both ``/predictions`` and ``/trainings``)."""
    paths = doc.get("paths") or {}
    return "/predictions" in paths and "/trainings" in paths


# ---------------------------------------------------------------------------
# Go encoding/json compatible serialisation
# ---------------------------------------------------------------------------

_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _go_string(text: str) -> str:
    # Python's escaping of quotes, backslashes and control characters matches Go's
    # (short forms for \b \f \n \r \t, lowercase \u00XX otherwise); Go additionally
    # escapes HTML-significant characters and the JS line separators.
    encoded = json.dumps(text, ensure_ascii=False)
    for raw, escaped in _HTML_ESCAPES.items():
        if raw in encoded:
            encoded = encoded.replace(raw, escaped)
    return encoded


def _go_float(value: float) -> str:
    """Format like Go's encoding/json float64: shortest round-trip, 'e' only at extremes."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"unsupported float value: {value!r}")
    magnitude = abs(value)
    text = repr(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        # Python's repr is already exponent form here; Go then trims "e-07" to "e-7".
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    fixed = format(Decimal(text), "f")
    if "." in fixed:
        fixed = fixed.rstrip("0").rstrip(".")
    return fixed


# Contexts that decide key order: Go's ordered maps (components.schemas, paths,
# Input/Output "properties") keep insertion order, every plain map is sorted.
_DOC, _COMPONENTS, _ORDERED, _SCHEMA, _PLAIN, _INPUT_PROPS, _KEEP, _KEEP_INPUT = range(8)


def _child_context(context: int, key: str, value: Any, keep_input_order: bool = False) -> int:
    if context == _DOC:
        if key == "paths":
            return _ORDERED
        if key == "components":
            return _COMPONENTS
        return _SCHEMA
    if context == _COMPONENTS:
        return _ORDERED if key == "schemas" else _SCHEMA
    if context == _INPUT_PROPS:
        return _KEEP
    if context == _KEEP:
        return _PLAIN if key in ("default", "enum") else _SCHEMA
    if context == _SCHEMA:
        if key == "properties" and isinstance(value, dict):
            return _ORDERED
        if key in ("default", "enum"):
            # Literal values (dict defaults are Go maps): sorted all the way down.
            return _PLAIN
        return _SCHEMA
    if context == _ORDERED:
        if keep_input_order and key in ("Input", "TrainingInput"):
            return _KEEP_INPUT
        return _SCHEMA
    if context == _KEEP_INPUT:
        if key == "properties" and isinstance(value, dict):
            return _INPUT_PROPS
        return _PLAIN if key in ("default", "enum") else _SCHEMA
    return _PLAIN


def _encode(
    value: Any,
    context: int,
    indent: str | None,
    level: int,
    *,
    as_float: bool,
    keep_input_order: bool = False,
) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        # A merged document went through Go's map[string]any, where every number is float64.
        return _go_float(float(value)) if as_float else str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [
            _encode(
                v, context, indent, level + 1, as_float=as_float, keep_input_order=keep_input_order
            )
            for v in value
        ]
        return _join("[", "]", items, indent, level)
    if isinstance(value, dict):
        if not value:
            return "{}"
        keys = list(value) if context in (_ORDERED, _INPUT_PROPS, _KEEP) else sorted(value)
        sep = ": " if indent is not None else ":"
        items = [
            _go_string(str(k))
            + sep
            + _encode(
                value[k],
                _child_context(context, str(k), value[k], keep_input_order),
                indent,
                level + 1,
                as_float=as_float,
                keep_input_order=keep_input_order,
            )
            for k in keys
        ]
        return _join("{", "}", items, indent, level)
    raise TypeError(f"cannot serialise {type(value).__name__} in a schema document")


def _join(open_: str, close: str, items: list[str], indent: str | None, level: int) -> str:
    if indent is None:
        return open_ + ",".join(items) + close
    inner = "\n" + indent * (level + 1)
    return open_ + inner + ("," + inner).join(items) + "\n" + indent * level + close


def dumps_schema(doc: dict[str, Any], cog_version: str | None = None) -> str:
    """Serialise ``doc`` byte-for-byte as the Cog CLI of ``cog_version`` writes it.

    ``cog_version`` None means the installed Cog SDK's rules. Static generator
    (Cog >= 0.17) single-mode documents are compact ``json.Marshal`` output: keys
    sorted except the insertion-ordered ``components.schemas``, ``paths`` and
    ``properties`` (and, before 0.19, the keys of each Input property); ``<``,
    ``>`` and ``&`` escaped as ``\\u003c``/``\\u003e``/``\\u0026``; floats in Go's
    shortest form (``20`` not ``20.0``, ``1e-7`` not ``1e-07``). A merged
    predict+train document (see :func:`is_merged_document`) is
    ``MarshalIndent(doc, "", "  ")`` of Go maps: every key sorted, two-space indent.
    Cog <= 0.16 re-marshalled the SDK's document through Go maps: compact, every
    key sorted; so did 0.17-0.19 when they fell back to the SDK (a
    :class:`~cogfleet.schema.SdkDocument`).
    """
    from cogfleet.schema._sdk import SdkDocument
    from cogfleet.schema._versions import rules_for

    rules = rules_for(cog_version)
    if not rules.static or isinstance(doc, SdkDocument):
        return _encode(doc, _PLAIN, None, 0, as_float=True)
    if is_merged_document(doc):
        return _encode(doc, _PLAIN, "  ", 0, as_float=True)
    return _encode(
        doc, _DOC, None, 0, as_float=False, keep_input_order=not rules.sorted_property_keys
    )


def write_schema_file(build_dir: Path, doc: dict[str, Any], cog_version: str | None = None) -> Path:
    """Write ``doc`` to ``build_dir/.cog/openapi_schema.json`` (what coglet validates with).

    Returns the path written. The bytes are :func:`dumps_schema`'s, as ``cog build``
    of ``cog_version`` would write them.
    """
    path = build_dir / SCHEMA_FILE
    write_atomic(path, dumps_schema(doc, cog_version).encode("utf-8"))
    return path
