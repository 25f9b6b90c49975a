"""The schema-differences table: every change, breaking ones with the reason."""

from __future__ import annotations

import copy
from typing import Any

from cogfleet.schema import check_compatibility, schema_changes


def cog_schema() -> dict[str, Any]:
    """A Cog-shaped OpenAPI document: a choice input through allOf/$ref, as Cog writes it."""
    return {
        "openapi": "3.0.2",
        "components": {"schemas": {
            "Input": {
                "type": "object", "title": "Input", "required": ["prompt"],
                "properties": {
                    "prompt": {"type": "string", "title": "Prompt", "x-order": 0,
                               "description": "Text prompt"},
                    "steps": {"type": "integer", "title": "Steps", "x-order": 1, "default": 4,
                              "minimum": 1, "maximum": 50, "description": "Steps"},
                    "format": {"allOf": [{"$ref": "#/components/schemas/format"}],
                               "default": "webp", "x-order": 2, "description": "Format"},
                },
            },
            "format": {"title": "format", "description": "An enumeration.", "type": "string",
                       "enum": ["webp", "png", "jpg"]},
            "Output": {"title": "Output", "type": "array",
                       "items": {"type": "string", "format": "uri"}},
        }},
    }


def rows(old: dict[str, Any], new: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(r.where, r.field): r for r in schema_changes(old, new)}


def test_equal_schemas_have_no_rows() -> None:
    assert schema_changes(cog_schema(), cog_schema()) == []


def test_compatible_changes_are_listed_but_not_breaking() -> None:
    old, new = cog_schema(), cog_schema()
    props = new["components"]["schemas"]["Input"]["properties"]
    props["steps"]["default"] = 8
    props["steps"]["maximum"] = 100  # wider: compatible
    props["steps"]["description"] = "Denoising steps"
    props["seed"] = {"type": "integer", "x-order": 3, "description": "Seed", "nullable": True}
    props["prompt"]["x-order"] = 5  # ordering is not a change a client sees
    table = rows(old, new)
    assert set(table) == {
        ("input 'steps'", "default"), ("input 'steps'", "maximum"),
        ("input 'steps'", "description"), ("input 'seed'", ""),
    }
    assert not any(r.breaking for r in table.values())
    assert table[("input 'steps'", "maximum")].live == "50"
    assert table[("input 'steps'", "maximum")].test == "100"
    assert table[("input 'seed'", "")].change == "added"
    assert table[("input 'seed'", "")].test == "integer"


def test_breaking_changes_carry_the_compatibility_reason() -> None:
    old, new = cog_schema(), cog_schema()
    schemas = new["components"]["schemas"]
    schemas["format"]["enum"] = ["webp", "png"]
    schemas["Input"]["properties"]["steps"]["maximum"] = 4
    schemas["Input"]["required"] = ["prompt", "steps"]
    del schemas["Input"]["properties"]["prompt"]
    schemas["Output"] = {"title": "Output", "type": "string", "format": "uri"}
    table = rows(old, new)
    assert table[("input 'format'", "enum")].breaking
    assert "choices removed" in table[("input 'format'", "enum")].reason
    assert table[("input 'steps'", "maximum")].reason == "maximum lowered from 50 to 4"
    assert table[("input 'steps'", "required")].reason == "optional input made required"
    assert table[("input 'prompt'", "")].change == "removed"
    assert table[("input 'prompt'", "")].breaking
    assert table[("Output", "type")].live == "array of string (uri)"
    assert table[("Output", "type")].breaking
    # every problem the compatibility check finds is in the table
    reasons = " | ".join(r.reason for r in table.values())
    for problem in check_compatibility(old, new):
        assert problem.split(": ", 1)[1] in reasons


def test_training_schema_rows() -> None:
    old = cog_schema()
    old["components"]["schemas"]["TrainingInput"] = {
        "type": "object", "properties": {"epochs": {"type": "integer", "x-order": 0}},
    }
    new = copy.deepcopy(old)
    new["components"]["schemas"]["TrainingInput"]["properties"]["epochs"]["type"] = "number"
    table = rows(old, new)
    assert table[("TrainingInput.epochs", "type")].breaking
    removed = cog_schema()
    assert rows(old, removed)[("TrainingInput", "")].change == "removed"
    assert rows(old, removed)[("TrainingInput", "")].breaking
