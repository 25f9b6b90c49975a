"""Files other than cog.yaml that a select script generates, as new Jinja templates.

A script that writes a per-model ``config.py`` or weights list with ``sed``, a heredoc
or ``echo`` leaves, for each variant, text that is mostly the same. The texts are
compared token by token with the first variant's; the places where any variant differs
become ``{{ <file>_<suffix>_<n> }}`` variables (``{{ variant }}`` where every variant has its own
name there), the rest stays as written, and the result is a new template file
``<file>.j2`` beside the file, named in each variant's ``files:`` and ``jinja:``. When
the differences are most of the text, each variant gets a copy of its own instead
(``<name>.<variant><suffix>``). Either way rendering must give the script's bytes, which
:func:`cogfleet.adopt._command.plan_init` checks before anything is written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

_TOKEN_RE = re.compile(r"\w+|\s+|[^\w\s]")
_JINJA_MARKS = ("{{", "{%", "{#")
#: The token that stands for the variant's own name (text holds no NUL).
_NAME = "\x00"


@dataclass
class Generated:
    """The new files and each variant's settings for the generated files."""

    files: dict[str, str] = field(default_factory=dict)  # new repo file -> its text
    templates: list[str] = field(default_factory=list)  # the new files that are Jinja
    sources: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> dest -> file
    variables: dict[str, dict[str, str]] = field(default_factory=dict)


def _mapper(opcodes: Sequence[tuple[str, int, int, int, int]]) -> dict[int, int]:
    """Positions in the first text that are at (or inside) equal runs -> in the other."""
    where: dict[int, int] = {}
    for op, i1, i2, j1, j2 in opcodes:
        if op == "equal":
            for k in range(i1, i2 + 1):
                where[k] = j1 + (k - i1)
        else:
            where.setdefault(i1, j1)
            where[i2] = j2
    return where


def _tokens(text: str, name: str) -> list[str]:
    """``text`` as tokens, each occurrence of the variant's name one token of its own."""
    out: list[str] = []
    for number, piece in enumerate(text.split(name)):
        if number:
            out.append(_NAME)
        out += _TOKEN_RE.findall(piece)
    return out


def derive(texts: dict[str, str], stem: str) -> tuple[str, dict[str, dict[str, str]]] | None:
    """A Jinja template and each variant's values that render it to its text, or None."""
    names = list(texts)
    ref = _tokens(texts[names[0]], names[0])
    spans: list[tuple[int, int]] = []
    maps: dict[str, tuple[list[str], dict[int, int]]] = {}
    for name in names[1:]:
        other = _tokens(texts[name], name)
        codes = difflib.SequenceMatcher(None, ref, other, autojunk=False).get_opcodes()
        spans += [(i1, i2) for op, i1, i2, _, _ in codes if op != "equal"]
        maps[name] = (other, _mapper(codes))
    slots: list[list[int]] = []
    for start, end in sorted(spans):
        if slots and start <= slots[-1][1]:
            slots[-1][1] = max(slots[-1][1], end)
        else:
            slots.append([start, end])
    values: dict[str, dict[str, str]] = {name: {} for name in names}
    pieces: list[str] = []
    at, number = 0, 0
    for start, end in slots:
        pieces.append(_literal(ref[at:start]))
        per = {names[0]: _text(ref[start:end], names[0])}
        for name, (other, where) in maps.items():
            if start not in where or end not in where:
                return None
            per[name] = _text(other[where[start]:where[end]], name)
        if all(value == name for name, value in per.items()):
            pieces.append("{{ variant }}")
        else:
            number += 1
            key = f"{stem}_{number}"
            pieces.append("{{ " + key + " }}")
            for name, value in per.items():
                values[name][key] = value
        at = end
    pieces.append(_literal(ref[at:]))
    return "".join(pieces), values


def _text(tokens: list[str], name: str) -> str:
    return "".join(name if t == _NAME else t for t in tokens)


def _literal(tokens: list[str]) -> str:
    """``tokens`` as template text that renders as itself (the variant's name as
    ``{{ variant }}``)."""
    out = []
    for number, text in enumerate("".join(tokens).split(_NAME)):
        if number:
            out.append("{{ variant }}")
        if any(mark in text for mark in _JINJA_MARKS) or text.endswith("{"):
            text = "{% raw %}" + text + "{% endraw %}"
        out.append(text)
    return "".join(out)


def adopt_generated(
    root: Path, written: dict[str, dict[str, bytes]], taken: set[str]
) -> Generated | str:
    """Settings that render each variant's generated files (``written``: variant -> file
    -> bytes) as the script wrote them; ``taken``: names of repo files and variables
    already in use. Returns them, or why a file cannot be adopted."""
    found = Generated()
    dests = sorted({d for files in written.values() for d in files})
    for dest in dests:
        having = {n: files[dest] for n, files in written.items() if dest in files}
        texts: dict[str, str] = {}
        for name, data in having.items():
            try:
                texts[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                return f"{name}'s {dest} is not UTF-8 text"
        path = PurePosixPath(dest)
        stem = re.sub(r"\W+", "_", path.name).strip("_").lower() or "value"
        if stem[0].isdigit():
            stem = f"v_{stem}"
        joined = "".join(texts.values())
        derived = derive(texts, stem) if len(texts) > 1 and not (
            {"\r", _NAME} & set(joined)) and "{% endraw %}" not in joined else None
        first = next(iter(texts))
        # mostly the same text: a template; mostly values: a copy per variant reads better
        if derived is not None and 2 * sum(map(len, derived[1][first].values())) <= len(
            texts[first]
        ):
            new = _free(root, f"{dest}.j2", taken)
            found.files[new] = derived[0]
            found.templates.append(new)
            for name in texts:
                found.sources.setdefault(name, {})[dest] = new
                found.variables.setdefault(name, {}).update(derived[1][name])
            continue
        for name, text in texts.items():  # a copy per variant
            new = _free(root, str(path.with_name(f"{path.stem}.{name}{path.suffix}")), taken)
            found.files[new] = text
            found.sources.setdefault(name, {})[dest] = new
    clash = {k for values in found.variables.values() for k in values} & taken
    if clash:
        return f"the variable {sorted(clash)[0]!r} it would declare for a generated file is taken"
    return found


def _free(root: Path, rel: str, taken: set[str]) -> str:
    """``rel``, or ``rel`` with ``.cogfleet`` (``.cogfleet2``...) before its suffix: the
    first that is neither a file of the repo nor already planned."""
    number = 0
    candidate = rel
    while candidate in taken or (root / candidate).exists():
        number += 1
        path = PurePosixPath(rel)
        tag = f".cogfleet{number if number > 1 else ''}"
        candidate = str(path.with_name(f"{path.stem}{tag}{path.suffix}"))
    taken.add(candidate)
    return candidate
