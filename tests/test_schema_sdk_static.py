"""The static versions' documents next to what their SDK sees when coglet loads the model.

From Cog 0.17 the CLI's Go parser writes the document and coglet validates inputs with
it; the SDK inside the image then reads the same predictor itself
(``cog._inspector.create_predictor``) and applies its own defaults, choices and
constraints. No Go toolchain or ``cog`` CLI runs here, but those SDKs do: each of
0.17.2, 0.19.3 and 0.23.1 is installed with uv (the session's store) and loads every
predictor of ``tests/fixtures/schema/corpus/``; cogfleet's document for that version
must describe each input as the SDK does (order, type, default, required or not,
choices, bounds, description) and the output too, except for the differences listed
in ``KNOWN``. Each of those is Cog's own: the Go rules of that release against its
SDK (``docs/schema-versions.md``, "The SDK's view of a static document"), so a change
in cogfleet that moves a document away from the SDK, or closes one of these gaps by
accident, fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cogfleet._errors import ConfigError
from cogfleet.schema import generate_schema

FIXTURES = Path(__file__).parent / "fixtures" / "schema"
CORPUS = FIXTURES / "corpus"
DRIVER = FIXTURES / "sdk_inspect.py"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
VERSIONS = ("0.17.2", "0.19.3", "0.23.1")
NOT_INSTALLED_MARK = "# not installed where schemas are made"
_SHAPE = ("type", "format", "items", "anyOf")

STUBS = {
    "opaque_types": {
        "vendor_sdk/__init__.py": "",
        "vendor_sdk/types.py": "class Payload:\n    pass\n\n\nclass Spec:\n    pass\n",
    }
}
"""Stand-ins for a case's third-party imports, so that the SDK can load it."""

_EVERY = {
    # The Go parser refuses what Python computes (the cases of static-error.txt).
    "choices_dict_keys: only the SDK builds it",
    "input_class_body: only the SDK builds it",
    "input_helpers: only the SDK builds it",
    "input_package_helper: only the SDK builds it",
    # `Predictor.seed` in the class's own body: Go reads it, Python cannot run it.
    "input_own_class: only the document builds it",
    # A registry method's parameter default is not a literal to Go.
    "input_references.guidance.description: document None, SDK 'Guidance scale'",
    # Go's SchemaAny is an object; the SDK says nothing.
    "output_any_and_dict output: document {'type': 'object'}, SDK {}",
    # `Secret = Input(default=None)`: optional to Go, required to the SDK's check_input.
    "secrets.api_key.required: document False, SDK True",
}
_BEFORE_020 = {
    # The SDK's output json_type of a BaseModel drops list and Optional fields' shape.
    "heavy_imports_siblings output: document images array, SDK images string",
    "output_basemodel output: document nsfw nullable, SDK nsfw required",
    "output_basemodel_named output: document box array, SDK box integer",
    "output_basemodel_optional_fields output: document media nullable, SDK media required",
    "output_basemodel_optional_fields output: document text nullable, SDK text required",
    # Go before 0.20 wants the class's own predict(); the SDK takes the inherited one.
    "predictor_inherits_run: only the SDK builds it",
    # Neither has Opaque, Union inputs or Union outputs yet.
    "opaque_types: both refuse it",
    "output_union: both refuse it",
    "unions: both refuse it",
}
KNOWN: dict[str, set[str]] = {
    "0.17.2": _EVERY | _BEFORE_020 | {
        # 0.17-0.18: `x: int = Input(default=None)` is optional to Go, required to the SDK.
        "heavy_imports_siblings.seed.required: document False, SDK True",
        "path_and_file.extra.required: document False, SDK True",
        "seed_default_none.negative.required: document False, SDK True",
        "seed_default_none.scale.required: document False, SDK True",
        "seed_default_none.seed.required: document False, SDK True",
        # Go before 0.19 ignores description=CONSTANT.
        "module_constants.steps.description: document None, SDK 'Number of denoising steps'",
    },
    "0.19.3": _EVERY | _BEFORE_020 | {
        "secrets.api_key.nullable: document True, SDK False",
    },
    "0.23.1": _EVERY | {
        "secrets.api_key.nullable: document True, SDK False",
        # The 0.23 SDK builds a Union output that Go refuses.
        "output_union: only the SDK builds it",
    },
}


def _copy_corpus(dest: Path) -> list[Path]:
    folders = []
    for case in CASES:
        folder = dest / case
        shutil.copytree(CORPUS / case, folder, ignore=shutil.ignore_patterns("*.json", "*.txt"))
        stubs = STUBS.get(case, {})
        for rel, text in stubs.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8")
        if not stubs:
            for source in folder.glob("*.py"):
                lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
                kept = [ln for ln in lines if NOT_INSTALLED_MARK not in ln]
                source.write_text("".join(kept), encoding="utf-8")
        folders.append(folder)
    return folders


@pytest.fixture(scope="module")
def sdk_views(tmp_path_factory: pytest.TempPathFactory, env_store: Any) -> dict[str, Any]:
    """version -> case -> what that SDK sees (inputs and output, or its error line)."""
    from cogfleet.runtime import read_build_spec

    root = tmp_path_factory.mktemp("sdk-views")
    folders = _copy_corpus(root / "corpus")
    spec_dir = root / "spec"
    spec_dir.mkdir()
    (spec_dir / "cog.yaml").write_text(
        'build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n', encoding="utf-8"
    )
    views: dict[str, Any] = {}
    for version in VERSIONS:
        python = env_store.ensure(read_build_spec(spec_dir, version), version).python
        out = root / f"out-{version}"
        subprocess.run(
            [python, str(DRIVER), str(out), *map(str, folders)], check=True,
            capture_output=True, timeout=600,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )  # fmt: skip
        views[version] = {
            case: json.loads((out / f"{case}.json").read_text(encoding="utf-8"))
            for case in CASES
        }
    return views


def _document_inputs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    parts = doc["components"]["schemas"]
    schema = parts["Input"]
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        choices, shape = None, prop
        if "allOf" in prop:
            enum = parts[prop["allOf"][0]["$ref"].rsplit("/", 1)[1]]
            choices, shape = enum["enum"], {**enum, **prop}
        rows.append({
            "name": name, "order": prop.get("x-order"),
            "json": {k: shape[k] for k in _SHAPE if k in shape},
            "nullable": bool(prop.get("nullable")), "default": prop.get("default"),
            "required": name in required, "description": prop.get("description"),
            "ge": prop.get("minimum"), "le": prop.get("maximum"),
            "min_length": prop.get("minLength"), "max_length": prop.get("maxLength"),
            "regex": prop.get("pattern"), "choices": choices,
            "deprecated": bool(prop.get("deprecated")),
        })  # fmt: skip
    return sorted(rows, key=lambda row: row["order"])


def _sdk_inputs(view: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for field in view["inputs"]:
        shape = {k: v for k, v in field["json"].items() if k in _SHAPE}
        optional = field["repetition"].startswith("OPTIONAL")
        rows.append({
            "name": field["name"], "order": field["order"], "json": shape,
            "nullable": optional or bool(field["json"].get("nullable")),
            "default": field["default"],
            # check_input: no default and not Optional is "Field required"
            "required": field["default"] is None and not optional,
            "description": field["description"], "ge": field["ge"], "le": field["le"],
            "min_length": field["min_length"], "max_length": field["max_length"],
            "regex": field["regex"], "choices": field["choices"],
            "deprecated": bool(field["deprecated"]),
        })  # fmt: skip
    return rows


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        return float(a) == float(b)
    return bool(a == b)


def _output_differences(case: str, doc: dict[str, Any], sdk: dict[str, Any]) -> set[str]:
    ours = {k: v for k, v in doc.items() if k != "title"}
    theirs = {k: v for k, v in sdk.items() if k != "title"}
    if ours == theirs:
        return set()
    if "properties" not in ours or "properties" not in theirs:
        return {f"{case} output: document {ours}, SDK {theirs}"}
    found = set()
    required = set(ours.get("required", []))
    sdk_required = set(theirs.get("required", []))
    for name, prop in ours["properties"].items():
        other = theirs["properties"].get(name, {})
        if prop.get("type") != other.get("type"):
            found.add(f"{case} output: document {name} {prop.get('type')}, SDK {name} "
                      f"{other.get('type')}")  # fmt: skip
        elif prop.get("nullable") and name in sdk_required and name not in required:
            found.add(f"{case} output: document {name} nullable, SDK {name} required")
        elif {**prop, "title": None} != {**other, "title": None}:
            found.add(f"{case} output: document {name} {prop}, SDK {name} {other}")
    if set(ours["properties"]) != set(theirs["properties"]):
        found.add(f"{case} output: fields differ")
    return found


def _differences(version: str, views: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for case in CASES:
        view = views[case]
        if "skip" in view:
            continue
        try:
            doc: dict[str, Any] | None = generate_schema(CORPUS / case, version)
        except ConfigError:
            doc = None
        if doc is None or "error" in view:
            if doc is None and "error" in view:
                found.add(f"{case}: both refuse it")
            elif doc is None:
                found.add(f"{case}: only the SDK builds it")
            else:
                found.add(f"{case}: only the document builds it")
            continue
        ours, theirs = _document_inputs(doc), _sdk_inputs(view)
        assert [r["name"] for r in ours] == [r["name"] for r in theirs], case
        for mine, sdk in zip(ours, theirs, strict=True):
            for key, value in mine.items():
                if not _same(value, sdk[key]):
                    found.add(f"{case}.{mine['name']}.{key}: document {value!r}, SDK {sdk[key]!r}")
        found |= _output_differences(case, doc["components"]["schemas"]["Output"], view["output"])
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_documents_describe_the_inputs_as_the_sdk_sees_them(
    sdk_views: dict[str, Any], version: str
) -> None:
    found = _differences(version, sdk_views[version])
    assert sorted(found - KNOWN[version]) == []  # new differences
    assert sorted(KNOWN[version] - found) == []  # known ones no longer there


def test_the_corpus_loads_under_every_sdk(sdk_views: dict[str, Any]) -> None:
    # The comparison means something only if most predictors load: all but the
    # cases listed as refused.
    for version in VERSIONS:
        loaded = [c for c in CASES if "inputs" in sdk_views[version][c]]
        assert len(loaded) >= len(CASES) - 6, version
