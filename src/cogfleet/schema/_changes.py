"""Every difference between two Cog OpenAPI documents, as rows of a table.

:func:`cogfleet.schema.check_compatibility` lists only what breaks clients; a
person reviewing a push also wants to see what changed compatibly (a new optional
input, a new default, a widened range). :func:`schema_changes` lists both, one row
per changed keyword of an input or output, each marked breaking when a line of
``check_compatibility`` speaks of it.
"""

from __future__ import annotations

import json
from typing import Any

from cogfleet._result import SchemaChange
from cogfleet.schema._compat import check_compatibility, component, describe, resolve_refs

# Keywords that never matter to a client (ordering, titles of generated components).
_IGNORED = frozenset({"x-order", "title"})
# The word a compatibility problem uses for a keyword, when it is not the keyword itself.
_PROBLEM_WORDS = {"enum": "choice", "nullable": "null", "anyOf": "type", "items": "items"}


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _props(doc: dict[str, Any], name: str) -> tuple[dict[str, Any], set[str]] | None:
    found = component(doc, name)
    if found is None:
        return None
    resolved = resolve_refs(found, doc)
    return dict(resolved.get("properties") or {}), set(resolved.get("required") or [])


def _order(props: dict[str, Any]) -> list[str]:
    return sorted(props, key=lambda n: (props[n].get("x-order", 1 << 30), n))


def _input_rows(
    old: dict[str, Any], new: dict[str, Any], comp: str, label: Any
) -> list[tuple[str, str, str, str, str]]:
    """(where, change, field, live, test) for every difference of an input component."""
    old_found, new_found = _props(old, comp), _props(new, comp)
    if old_found is None and new_found is None:
        return []
    if new_found is None:
        return [(comp, "removed", "", "present", "-")]
    if old_found is None:
        return [(comp, "added", "", "-", "present")]
    (old_props, old_req), (new_props, new_req) = old_found, new_found
    rows = []
    names = _order(new_props) + [n for n in _order(old_props) if n not in new_props]
    for name in names:
        where = label(name)
        if name not in new_props:
            rows.append((where, "removed", "", describe(old_props[name]), "-"))
            continue
        new_schema = new_props[name]
        if name not in old_props:
            kind = describe(new_schema) + (" (required)" if name in new_req else "")
            rows.append((where, "added", "", "-", kind))
            continue
        old_schema = old_props[name]
        if (name in old_req) != (name in new_req):
            rows.append((
                where, "changed", "required",
                _show(name in old_req), _show(name in new_req),
            ))
        for key in sorted((set(old_schema) | set(new_schema)) - _IGNORED):
            if old_schema.get(key) != new_schema.get(key):
                rows.append((
                    where, "changed", key, _show(old_schema.get(key)), _show(new_schema.get(key))
                ))
    return rows


def _output_rows(
    old: dict[str, Any], new: dict[str, Any], comp: str
) -> list[tuple[str, str, str, str, str]]:
    old_out, new_out = component(old, comp), component(new, comp)
    if old_out is None and new_out is None:
        return []
    if new_out is None:
        return [(comp, "removed", "", "present", "-")]
    if old_out is None:
        return [(comp, "added", "", "-", describe(resolve_refs(new_out, new)))]
    a, b = resolve_refs(old_out, old), resolve_refs(new_out, new)
    rows = []
    if describe(a) != describe(b):
        rows.append((comp, "changed", "type", describe(a), describe(b)))
    a_props, b_props = a.get("properties"), b.get("properties")
    if isinstance(a_props, dict) or isinstance(b_props, dict):
        a_props = a_props if isinstance(a_props, dict) else {}
        b_props = b_props if isinstance(b_props, dict) else {}
        for name in [*a_props, *(n for n in b_props if n not in a_props)]:
            where = f"{comp}.{name}"
            if name not in b_props:
                rows.append((where, "removed", "", describe(a_props[name]), "-"))
            elif name not in a_props:
                rows.append((where, "added", "", "-", describe(b_props[name])))
            elif describe(a_props[name]) != describe(b_props[name]):
                rows.append((
                    where, "changed", "type", describe(a_props[name]), describe(b_props[name])
                ))
    for key in ("nullable", "x-cog-array-type", "x-cog-array-display"):
        if a.get(key) != b.get(key):
            rows.append((comp, "changed", key, _show(a.get(key)), _show(b.get(key))))
    return rows


def _reasons(where: str, change: str, field: str, problems: list[str]) -> list[str]:
    mine = [p for p in problems if p.startswith((f"{where}:", f"{where} "))]
    if change != "changed" or not field:
        return mine
    word = _PROBLEM_WORDS.get(field, field)
    return [p for p in mine if word in p]


def schema_changes(
    old: dict[str, Any], new: dict[str, Any], problems: list[str] | None = None
) -> list[SchemaChange]:
    """Every difference from ``old`` (the live version) to ``new`` (the test version).

    Rows come in schema order: inputs, outputs, training inputs and outputs. A row is
    breaking when a line of :func:`~cogfleet.schema.check_compatibility` names it;
    a breaking change no row describes gets a row of its own, so the table never
    hides a problem. ``problems`` is ``check_compatibility(old, new)`` when the caller
    has it already.
    """
    if problems is None:
        problems = check_compatibility(old, new)
    raw = [
        *_input_rows(old, new, "Input", lambda n: f"input '{n}'"),
        *_output_rows(old, new, "Output"),
        *_input_rows(old, new, "TrainingInput", lambda n: f"TrainingInput.{n}"),
        *_output_rows(old, new, "TrainingOutput"),
    ]
    rows: list[SchemaChange] = []
    explained: set[str] = set()
    for where, change, field, live, test in raw:
        reasons = _reasons(where, change, field, problems)
        explained.update(reasons)
        rows.append(SchemaChange(
            where=where, change=change, field=field, live=live, test=test,  # type: ignore[arg-type]
            breaking=bool(reasons), reason="; ".join(r.split(": ", 1)[-1] for r in reasons),
        ))
    for problem in problems:
        if problem not in explained:
            where, _, what = problem.partition(": ")
            rows.append(SchemaChange(
                where=where, change="changed", field="", live="", test="", breaking=True,
                reason=what or problem,
            ))
    return rows
