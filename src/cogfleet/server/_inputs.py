"""A run's input: checked against the version's schema, prepared for the runner.

Validation mirrors coglet's wording (so a 422 reads the same whether the server
or coglet found the problem); uploaded-file URLs of this server become ``data:``
URIs (the offline runner reads no URLs); ``Secret`` inputs are masked before the
input is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from cogfleet.server._core import Account
from cogfleet.server._files import local_file_as_data_uri
from cogfleet.server._state import Store
from cogfleet.server._validation import invalid

MASK = "**********"


class Inputs:
    """Input checks per version (validators are cached: versions never change)."""

    def __init__(self, store: Store, files_dir: Path) -> None:
        self.store = store
        self.files_dir = files_dir
        self._validators: dict[tuple[str, str], jsonschema.Draft7Validator | None] = {}

    def _validator(
        self, version: dict[str, Any], component: str
    ) -> jsonschema.Draft7Validator | None:
        key = (version["id"], component)
        if key not in self._validators:
            components = version["openapi_schema"].get("components", {})
            schema = components.get("schemas", {}).get(component)
            self._validators[key] = (
                jsonschema.Draft7Validator({**schema, "components": components})
                if isinstance(schema, dict)
                else None
            )
        return self._validators[key]

    def validate(self, version: dict[str, Any], component: str, data: dict[str, Any]) -> None:
        """422 with coglet-style messages when ``data`` does not fit the schema's input."""
        validator = self._validator(version, component)
        if validator is None:
            return
        problems: list[tuple[str, str, str]] = []
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
            if err.validator == "required" and not err.path:
                missing = str(err.message).split("'")[1] if "'" in err.message else err.message
                problems.append(("required", "input", f"{missing} is required"))
                continue
            field = ".".join(str(p) for p in err.path) or "input"
            problems.append((str(err.validator), f"input.{field}", _coglet_message(err)))
        if problems:
            raise invalid(problems)

    def for_runner(self, value: Any, account: Account) -> Any:
        """``value`` with the URLs of files ``account`` uploaded here as ``data:`` URIs."""
        if isinstance(value, str):
            return local_file_as_data_uri(self.store, self.files_dir, value, account)
        if isinstance(value, list):
            return [self.for_runner(v, account) for v in value]
        if isinstance(value, dict):
            return {k: self.for_runner(v, account) for k, v in value.items()}
        return value


def has_trainer(version: dict[str, Any]) -> bool:
    """Whether the version's build declares ``train`` (its schema has a TrainingInput)."""
    schemas = version["openapi_schema"].get("components", {}).get("schemas", {})
    return isinstance(schemas.get("TrainingInput"), dict)


def redact_secrets(schema: dict[str, Any], component: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with Secret inputs masked: they reach coglet but never the state on disk."""
    props = schema.get("components", {}).get("schemas", {}).get(component, {}).get("properties")
    if not isinstance(props, dict):
        return data
    return {
        key: MASK
        if isinstance(props.get(key), dict) and props[key].get("x-cog-secret") and value
        else value
        for key, value in data.items()
    }


def detail_text(detail: Any) -> str:
    """coglet's 422 ``detail`` list as one readable message."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", [])[2:]) or "input"
                lines.append(f"{loc}: {item.get('msg', item)}")
            else:
                lines.append(str(item))
        return "; ".join(lines)
    return str(detail)


def _coglet_message(err: jsonschema.ValidationError) -> str:
    """jsonschema's message in the wording coglet uses (JSON-quoted values)."""
    inst = json.dumps(err.instance, separators=(",", ":"))
    if err.validator == "enum":
        return f"{inst} is not one of {json.dumps(err.validator_value, separators=(',', ':'))}"
    if err.validator == "type":
        return f'{inst} is not of type "{err.validator_value}"'
    if err.validator == "pattern":
        return f'{inst} does not match "{err.validator_value}"'
    if err.validator == "maximum":
        return f"{inst} is greater than the maximum of {_num(err.validator_value)}"
    if err.validator == "minimum":
        return f"{inst} is less than the minimum of {_num(err.validator_value)}"
    return str(err.message)


def _num(value: Any) -> str:
    # Schemas may carry 4.0 where coglet (serde) prints 4.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)
