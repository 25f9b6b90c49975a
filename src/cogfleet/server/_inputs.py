"""A run's input: checked against the version's schema, prepared for the runner.

Validation is worded as Replicate's API words it (gojsonschema's messages, as for
request bodies); uploaded-file URLs of this server become ``data:``
URIs (the offline runner reads no URLs); ``Secret`` inputs are masked before the
input is stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from cogfleet._api_rules import describe_errors, input_validator
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
            self._validators[key] = input_validator(version["openapi_schema"], component)
        return self._validators[key]

    def validate(self, version: dict[str, Any], component: str, data: dict[str, Any]) -> None:
        """422 ``Input validation failed`` when ``data`` does not fit the schema's input,
        worded as Replicate's validator words it (``- input.steps: Must be less than or
        equal to 50``)."""
        validator = self._validator(version, component)
        if validator is None:
            return
        problems = describe_errors(validator, data, "input")
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
