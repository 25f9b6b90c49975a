"""Schema commands: ``schema`` (what a variant's version would get) and ``schema-diff``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogfleet._errors import ConfigError, ExitCode, UsageError
from cogfleet.cli._common import Command, load_plugins, load_repo, out

if TYPE_CHECKING:
    from cogfleet.runtime import CogPin


def cmd_schema(ns: argparse.Namespace) -> int:
    """Print the OpenAPI schema each variant's version would get.

    One variant: the document itself, as the variant's pinned Cog would write it
    (``[tool.cogfleet] cog-version``, ``cog_version:`` in variants.yaml; by default
    the Cog SDK cogfleet is installed with). ``--summary``: one line per variant with
    its inputs and Cog version (every variant when none is named), which proves each
    predictor's source gives a schema as that Cog would derive it, i.e. that the
    variant builds. The source is read, never imported, so this needs none of the
    models' packages; except under Cog <= 0.16 for what only the model's code can
    compute (a constant of a package cog.yaml installs): that Cog's SDK wrote the
    document by importing the model, and so it does here, in the version's
    environment (built in the store a local push uses, which then finds it built).
    """
    from cogfleet._render_folder import render_variants
    from cogfleet.schema import dumps_schema

    repo = load_repo(ns)
    variants = repo.select(ns.variants)
    if not ns.summary and len(variants) != 1:
        raise UsageError("schema: name one VARIANT (or use --summary)")
    pins = {v.name: _schema_pin(repo.pin_for(v)) for v in variants}
    rendered = render_variants(repo, variants, load_plugins(repo.root))
    docs = [_document(r.build_dir, pins[r.variant.name], repo.root) for r in rendered]
    if not ns.summary:
        doc = docs[0]
        out(json.dumps(doc, indent=2) if ns.pretty else dumps_schema(doc, pins[variants[0].name]))
        return ExitCode.OK
    for r, doc in zip(rendered, docs, strict=True):
        parts = doc["components"]["schemas"]
        line = []
        for key, label in (("Input", "inputs"), ("TrainingInput", "training inputs")):
            if key in parts:
                names = list(parts[key].get("properties") or {})
                line.append(f"{len(names)} {label} ({', '.join(names)})")
        out(f"{r.variant.name}: {'; '.join(line)} [Cog {pins[r.variant.name]}]")
    return ExitCode.OK


def _document(build_dir: Path, cog_version: str, root: Path) -> dict[str, Any]:
    from cogfleet.schema import ModelCodeNeeded, generate_schema, sdk_document_in_store

    try:
        return generate_schema(build_dir, cog_version)
    except ModelCodeNeeded as exc:
        from cogfleet._build import LOCAL_STATE
        from cogfleet.runtime import EnvStore

        store = EnvStore.for_state(root / LOCAL_STATE)
        return sdk_document_in_store(build_dir, cog_version, store, exc)


def _schema_pin(pin: CogPin) -> str:
    """The pinned version, when cogfleet knows its schema rules; else exit 2 at the pin."""
    from cogfleet.schema import UnknownCogVersion, rules_for

    try:
        rules_for(pin.version)
    except UnknownCogVersion as exc:
        raise ConfigError(pin.source, str(exc), pin.line) from None
    return pin.version


def cmd_schema_diff(ns: argparse.Namespace) -> int:
    """Exit 1 when NEW breaks OLD; one line per break."""
    from cogfleet.schema import check_compatibility, load_schema_file

    old = load_schema_file(Path(ns.old))
    new = load_schema_file(Path(ns.new))
    breaks = check_compatibility(old, new)
    for line in breaks:
        out(line)
    if not breaks:
        out("compatible")
    return ExitCode.CHECKS_FAILED if breaks else ExitCode.OK


def _schema_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("variants", nargs="*", metavar="VARIANT")
    p.add_argument("--pretty", action="store_true", help="indented JSON")
    p.add_argument("--summary", action="store_true",
                   help="one line per variant (default: every variant)")


def _schema_diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", metavar="OLD", help="OpenAPI JSON file of the live version")
    p.add_argument("new", metavar="NEW", help="OpenAPI JSON file of the new version")


COMMANDS = [
    Command("schema", "print the OpenAPI schema the variant would get", cmd_schema,
            _schema_arguments),
    Command("schema-diff", "exit 1 if NEW is not backwards compatible with OLD", cmd_schema_diff,
            _schema_diff_arguments),
]
