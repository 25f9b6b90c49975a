"""What in a predictor's source changes its schema silently between Cog versions.

Cog's static parser (0.17 on) reads only literals, and the predictor file's own
constants for ``default=``, ``choices=`` and (from 0.19) ``description=``; whatever
else ``Input(...)`` is given (``le=MAX_STEPS``, ``default=settings.SEED``, a
constant imported from a sibling module) it leaves out of the schema without a word,
or reads as ``default=None``. Cog <= 0.16 imported the predictor and used the value.
So the same source publishes a different API depending on the pinned Cog, and
nothing fails to tell the user.

:func:`source_findings` names each such argument by ``file:line``. Under a pinned
Cog that drops it, the published schema already lacks what the code asks for: the
finding *fails* the lint. Under a pinned Cog <= 0.16, which still honours it, it is
a warning that an upgrade to 0.17 or later would drop it (and so is anything the
static parser would refuse outright). Predict and train sharing a ``choices`` input
name is also reported: the static generator gives train's input predict's choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cogfleet._pyparse import parse
from cogfleet.schema._document import read_cog_refs
from cogfleet.schema._project import Project
from cogfleet.schema._runtime_values import Evaluator
from cogfleet.schema._source import Signature, parse_target
from cogfleet.schema._sourcefile import SourceError
from cogfleet.schema._versions import NEWEST_KNOWN, Rules, rules_for

__all__ = ["SourceFinding", "source_findings"]

_LEFT_OUT = {
    "description": "has no description",
    "ge": "has no minimum",
    "le": "has no maximum",
    "min_length": "has no minLength",
    "max_length": "has no maxLength",
    "regex": "has no pattern",
    "deprecated": "is not marked deprecated",
    "accept": "has no x-cog-accept",
}


@dataclass(frozen=True)
class SourceFinding:
    """One argument whose effect on the schema depends on the Cog version."""

    file: str
    """Relative to the build folder."""
    line: int | None
    message: str
    fails: bool
    """True when the pinned Cog itself publishes a schema other than the code asks for."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


def source_findings(
    build_dir: Path, cog_version: str | None = None, pin: str | None = None
) -> list[SourceFinding]:
    """The findings for ``build_dir`` built with Cog ``cog_version`` (None: installed).

    ``pin`` names the version in messages (``"Cog 0.22.0 (pyproject.toml:5)"``).
    A source the pinned Cog cannot read at all gives no finding here: making its
    schema reports that error.
    """
    build_dir = Path(build_dir).resolve()
    rules = rules_for(cog_version)
    pinned = pin or f"Cog {rules.version}"
    static = rules if rules.static else rules_for(".".join(map(str, NEWEST_KNOWN)))
    predict_ref, train_ref = read_cog_refs(build_dir)
    findings: list[SourceFinding] = []
    signatures: list[Signature] = []
    for ref, train in ((predict_ref, False), (train_ref, True)):
        if ref is None:
            continue
        try:
            sig = parse_target(build_dir, ref, train=train, run_method=static.run_method)
        except SourceError as exc:
            if not rules.static:
                findings.append(SourceFinding(
                    exc.file, exc.line,
                    f"{pinned} builds this, but Cog 0.17 and later refuse it: {exc.message}",
                    fails=False,
                ))
            continue
        signatures.append(sig)
        findings.extend(_unread(build_dir, sig, rules, static, pinned))
    if len(signatures) == 2:
        findings.extend(_shared_choices(*signatures, rules=rules, pinned=pinned))
    return findings


def _unread(
    build_dir: Path, sig: Signature, rules: Rules, static: Rules, pinned: str
) -> list[SourceFinding]:
    project = Project(build_dir)
    module = project.module(sig.file)
    evaluator = Evaluator(project, module) if module is not None else None
    findings = []
    for param in sig.params:
        call = param.input_call
        if call is None:
            continue
        unread = [u for u in call.unread if u.keyword != "accept" or static.accept]
        for item in unread:
            value = _python_value(evaluator, item.text)
            written = f"{item.keyword}={item.text}"
            if item.via:
                effect = (
                    f"ignore{{s}} it (only a literal there replaces the method's {item.keyword})"
                )
            elif item.keyword == "default":
                effect = "read{s} default=None instead"
            else:
                effect = f"leave{{s}} it out (the input {_LEFT_OUT[item.keyword]})"
            what = (
                f"at the call {item.via}, {written} is not a literal"
                if item.via
                else f"{written} is not a literal"
                + (" or a constant of this file" if item.keyword in ("default", "description")
                   else "")
            )
            fix = (
                f"write the literal: {item.keyword}={value!r}"
                if value is not None
                else "write the value as a literal"
            )
            if rules.static:
                effect = effect.format(s="s")
                message = f"input '{param.name}': {what}, and {pinned} {effect}; {fix}"
            else:
                used = f"its value ({value!r})" if value is not None else "its value"
                effect = effect.format(s="")
                message = (
                    f"input '{param.name}': {what}: {pinned} uses {used}, but Cog 0.17 and "
                    f"later {effect}; {fix}"
                )
            findings.append(SourceFinding(sig.file, item.line, message, fails=rules.static))
        if (
            rules.static
            and call.description_is_constant
            and not rules.description_constants
            and call.description is not None
        ):
            findings.append(SourceFinding(
                sig.file, param.line,
                f"input '{param.name}': description= names a constant, and {pinned} leaves it "
                "out (constants count from Cog 0.19); write the text as a literal",
                fails=True,
            ))
    return findings


def _python_value(evaluator: Evaluator | None, text: str) -> Any:
    """What Python evaluates ``text`` to in the module, or None when it cannot say."""
    if evaluator is None:
        return None
    try:
        node = parse(text.strip(), mode="eval").body
        value = evaluator.value(node)
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, (str, int, float, bool, list, dict)) else None


def _shared_choices(
    predict: Signature, train: Signature, *, rules: Rules, pinned: str
) -> list[SourceFinding]:
    choices = {
        p.name: p.input_call.choices
        for p in predict.params
        if p.input_call is not None and p.input_call.choices
    }
    findings = []
    for param in train.params:
        call = param.input_call
        if call is None or not call.choices or param.name not in choices:
            continue
        if [c.to_json() for c in call.choices] == [c.to_json() for c in choices[param.name]]:
            continue
        who = f"{pinned} publishes" if rules.static else "Cog 0.17 and later publish"
        findings.append(SourceFinding(
            train.file, param.line,
            f"training input '{param.name}' has choices of its own, but predict has a choices "
            f"input of the same name: {who} predict's choices for both (one enum component), "
            "so training refuses its own values; give one of them another name",
            fails=rules.static,
        ))
    return findings
