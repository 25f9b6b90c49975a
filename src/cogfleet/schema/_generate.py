"""``generate_schema``: the OpenAPI document a build folder gets under a Cog version.

Nothing here imports user code: the predictor and trainer are read as source
(:mod:`._source`), then rendered with the rules of the pinned Cog version
(:mod:`._versions`): the static generator's rules for Cog >= 0.17
(:mod:`._static`), the SDK-written document of Cog <= 0.16 (:mod:`._runtime`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cogfleet._errors import ConfigError
from cogfleet.schema._document import assemble_document, merge_documents, read_cog_refs
from cogfleet.schema._sdk import ModelCodeNeeded
from cogfleet.schema._source import parse_target
from cogfleet.schema._sourcefile import SourceError
from cogfleet.schema._versions import Rules, UnknownCogVersion, rules_for

__all__ = ["generate_schema"]


def _static_document(build_dir: Path, ref: str, *, train: bool, rules: Rules) -> dict[str, Any]:
    from cogfleet.schema._static import build_input_schema, build_output_schema

    sig = parse_target(build_dir, ref, train=train, run_method=rules.run_method)
    input_schema, enums = build_input_schema(sig, rules)
    output_schema = build_output_schema(sig, rules)
    return assemble_document(
        train=train,
        input_schema=input_schema,
        output_schema=output_schema,
        enums=enums,
        streaming=sig.streaming and rules.streaming and not train,
        info_version=rules.info_version,
        cancel_title_case=rules.cancel_title_case,
    )


def generate_schema(build_dir: Path, cog_version: str | None = None) -> dict[str, Any]:
    """Return the OpenAPI document ``cog build`` of ``cog_version`` gives ``build_dir``.

    ``cog_version`` is a version string (``"0.15.8"``); None means the Cog SDK
    installed with cogfleet. Reads ``build_dir/cog.yaml`` (``run``/``predict`` and
    ``train``) and the sources they name, never importing them. The returned dict
    keeps Cog's key order, so :func:`~cogfleet.schema.dumps_schema` of it (with
    the same version) gives Cog's bytes.

    Raises :class:`ConfigError` naming ``file:line`` and worded as Cog reports it
    for a construct Cog cannot resolve statically (or, for Cog <= 0.16, that the
    SDK would refuse), and for an unknown ``cog_version``. Where that Cog let the SDK
    write the document instead (<= 0.16: a value or type only the model's code
    computes, such as a constant of a package cog.yaml installs; 0.17-0.19: a type
    the static parser cannot resolve), it is :class:`ModelCodeNeeded`, a
    ``ConfigError`` that :func:`~cogfleet.schema.sdk_document` in the version's
    environment answers.
    """
    build_dir = Path(build_dir).resolve()
    try:
        rules = rules_for(cog_version)
    except UnknownCogVersion as exc:
        raise ConfigError("cog.yaml", str(exc)) from None
    predict_ref, train_ref = read_cog_refs(build_dir)
    try:
        if not rules.static:
            from cogfleet.schema._runtime import runtime_document

            return runtime_document(build_dir, predict_ref, train_ref, rules)
        predict_doc = (
            _static_document(build_dir, predict_ref, train=False, rules=rules)
            if predict_ref
            else None
        )
        train_doc = (
            _static_document(build_dir, train_ref, train=True, rules=rules) if train_ref else None
        )
    except SourceError as exc:
        if exc.needs_code and rules.sdk_fallback:
            raise ModelCodeNeeded(exc.file, exc.message, exc.line) from None
        raise ConfigError(exc.file, exc.message, exc.line) from None
    if predict_doc is not None and train_doc is not None:
        return merge_documents(predict_doc, train_doc)
    doc = predict_doc if predict_doc is not None else train_doc
    assert doc is not None
    return doc
