"""Schema work: the OpenAPI document a build folder gets, compatibility, fuzz inputs.

- :mod:`._generate` gives a build folder's document under a Cog version, reading
  the predictor's source without importing it (:mod:`._source` and the modules it
  names), with that version's rules (:mod:`._versions`): Cog's static generator
  (:mod:`._static` with :mod:`._static_types`, >= 0.17) or the document the SDK wrote
  (:mod:`._runtime`, <= 0.16); where that Cog let the SDK write it (<= 0.16: what
  only the model's code computes; 0.17-0.19: a type the static parser cannot
  resolve) it is the SDK's own answer in the version's environment (:mod:`._sdk`).
- :mod:`._document` assembles Cog's fixed components and paths, merges predict and
  train documents and serialises them as Cog's Go generator does.
- :mod:`._compat` decides whether a new document breaks an old one.
- :mod:`._fuzz` derives valid inputs from a document.
- :mod:`._changes` lists every difference of two documents (the reports' table).
- :mod:`._lint` names what in the source the pinned Cog leaves out of the schema.

The fuzz helpers are loaded on first use (they pull in ``jsonschema``), so importing
this package stays cheap for commands that only need a document.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cogfleet.schema._compat import check_compatibility, component, load_schema_file, resolve_refs
from cogfleet.schema._document import (
    COG_CLI_VERSION,
    SCHEMA_FILE,
    assemble_document,
    dumps_schema,
    is_merged_document,
    merge_documents,
    read_cog_refs,
    title_case,
    write_schema_file,
)
from cogfleet.schema._generate import generate_schema
from cogfleet.schema._sdk import (
    ModelCodeNeeded,
    SdkDocument,
    sdk_document,
    sdk_document_in_store,
)
from cogfleet.schema._versions import (
    Rules,
    UnknownCogVersion,
    installed_cog_version,
    parse_version,
    rules_for,
)

if TYPE_CHECKING:
    from cogfleet.schema._changes import schema_changes
    from cogfleet.schema._fuzz import (
        fuzz_prompt,
        generate_inputs,
        input_properties,
        parse_ai_batch,
        required_only_inputs,
        validate_inputs,
    )
    from cogfleet.schema._lint import SourceFinding, source_findings

_LAZY = {
    "fuzz_prompt": "_fuzz",
    "generate_inputs": "_fuzz",
    "input_properties": "_fuzz",
    "parse_ai_batch": "_fuzz",
    "required_only_inputs": "_fuzz",
    "validate_inputs": "_fuzz",
    "schema_changes": "_changes",
    "SourceFinding": "_lint",
    "source_findings": "_lint",
}

__all__ = [
    "COG_CLI_VERSION",
    "SCHEMA_FILE",
    "ModelCodeNeeded",
    "Rules",
    "SdkDocument",
    "SourceFinding",
    "UnknownCogVersion",
    "assemble_document",
    "check_compatibility",
    "component",
    "dumps_schema",
    "fuzz_prompt",
    "generate_inputs",
    "generate_schema",
    "input_properties",
    "installed_cog_version",
    "is_merged_document",
    "load_schema_file",
    "merge_documents",
    "parse_ai_batch",
    "parse_version",
    "read_cog_refs",
    "required_only_inputs",
    "resolve_refs",
    "rules_for",
    "schema_changes",
    "sdk_document",
    "sdk_document_in_store",
    "source_findings",
    "title_case",
    "validate_inputs",
    "write_schema_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
