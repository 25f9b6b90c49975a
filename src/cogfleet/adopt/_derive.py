"""A generated cog.yaml, read back as a template with literal text replaced.

A select script that writes cog.yaml with ``sed "s/MODEL_NAME/$1/" cog.yaml.template``,
a small ``python -c`` step, or a heredoc with ``$VARIABLES`` in it produces, for each
variant, a template's text with a few placeholders replaced. Given the template and
what the script wrote for a variant, :func:`replacements` finds those placeholders and
their values (a token-wise difference of the two texts), and keeps them only when
replacing every occurrence of each placeholder in the template
(:func:`cogfleet._render.replace_literal`, what rendering does) gives exactly what the
script wrote. A script whose output is not that (a YAML re-dump, a computed value, a
``sed`` without ``g`` that left a second occurrence) is not read this way.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from cogfleet._render import envsubst, replace_literal

_TOKEN_RE = re.compile(r"\w+|\s+|[^\w\s]")
#: A heredoc that writes cog.yaml: ``cat > cog.yaml <<EOF`` (or ``<<-"EOF"``, ``tee``).
_HEREDOC_RE = re.compile(
    r"^[^\n]*?(?:>\s*|\btee\s+)['\"]?(?:\./)?cog\.yaml['\"]?[^\n]*?<<(-?)\s*(['\"]?)(\w+)\2[^\n]*\n"
    r"|^[^\n]*?<<(-?)\s*(['\"]?)(\w+)\5[^\n]*?>\s*['\"]?(?:\./)?cog\.yaml['\"]?[^\n]*\n",
    re.MULTILINE,
)


def replacements(template: str, output: str) -> dict[str, str] | None:
    """Placeholder -> value such that ``apply(template, mapping) == output``, or None."""
    if template == output:
        return {}
    old = _TOKEN_RE.findall(template)
    new = _TOKEN_RE.findall(output)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    mapping: dict[str, str] = {}
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "insert":
            return None  # text with nothing in the template to come from
        key, value = "".join(old[i1:i2]), "".join(new[j1:j2])
        if (
            not re.search(r"\w", key) or "\n" in key or "\n" in value
            or mapping.get(key, value) != value
        ):
            return None  # a placeholder is a word on one line, not lines of the file
        mapping[key] = value
    return mapping if replace_literal(template, mapping) == output else None


def _heredoc_bodies(script: str) -> list[tuple[str, bool]]:
    """``(body, expanded)`` of each heredoc ``script`` writes cog.yaml with; ``expanded``:
    the delimiter is unquoted, so the shell substituted ``$NAME`` in it."""
    out = []
    for match in _HEREDOC_RE.finditer(script):
        first = match.group(3) is not None
        dash = match.group(1 if first else 4)
        quoted = bool(match.group(2 if first else 5))
        word = match.group(3 if first else 6)
        body = []
        for line in script[match.end():].splitlines(keepends=True):
            if (line.rstrip("\n").lstrip("\t") if dash else line.rstrip("\n")) == word:
                break
            body.append(line.lstrip("\t") if dash else line)
        else:
            continue  # not closed: not a heredoc bash would read
        out.append(("".join(body), not quoted))
    return out


_PARAMETER_RE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*|[0-9])\}|([A-Za-z_][A-Za-z0-9_]*|[0-9]))"
)
_NAME_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_PATH_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./-]*")
_VARIABLE_PATH_RE = re.compile(r"[A-Za-z0-9_.${}][A-Za-z0-9_./${}-]*")
_MAX_TEMPLATE = 1_000_000
#: The files a script names that may be its cog.yaml template (not its predict.py).
_TEMPLATE_NAME_RE = re.compile(r"(?:ya?ml|cog|te?mpl|tpl|template|\.in)[^/]*$", re.IGNORECASE)


@dataclass
class ReadBack:
    """Each variant's cog.yaml as a template with literal text replaced."""

    templates: dict[str, str] = field(default_factory=dict)  # variant -> repo file
    replace: dict[str, dict[str, str]] = field(default_factory=dict)
    envsubst: dict[str, dict[str, str]] = field(default_factory=dict)
    new_template: str | None = None  # a heredoc's body, to be written as a template file


def read_back(
    root: Path, script: str, generated: dict[str, bytes], assigned: set[str], new_name: str
) -> ReadBack | str:
    """Read what ``script`` generated for each variant back as a template (a repo file the
    script names, or the body of its heredoc, written to ``new_name``) with text replaced.

    Returns the reading, or the problem with the first variant it does not fit.
    """
    text = (root / script).read_text(encoding="utf-8", errors="replace")
    files = _templates(root, script, _PATH_RE.findall(text))
    # a path with the variant's name in it: `sed ... templates/$1.yaml > cog.yaml`
    per_variant = [w for w in _VARIABLE_PATH_RE.findall(text) if _PARAMETER_RE.search(w)]
    bodies = [(body, expanded) for body, expanded in _heredoc_bodies(text)
              if not expanded or _plain_expansions(body, assigned)]
    found = ReadBack()
    for name, data in generated.items():
        try:
            output = data.decode("utf-8")
        except UnicodeDecodeError:
            return f"{script} {name} wrote a cog.yaml that is not UTF-8 text"
        # (number of replacements, repo file or None for a heredoc, body, replacements)
        best: tuple[int, str | None, str, dict[str, str]] | None = None
        own = _templates(root, script, [_PARAMETER_RE.sub(name, w) for w in per_variant])
        for rel, template in {**files, **own}.items():
            mapping = replacements(template, output)
            if mapping is not None and (best is None or len(mapping) < best[0]):
                best = (len(mapping), rel, template, mapping)
        for body, expanded in bodies:
            mapping = replacements(body, output)
            if mapping is None or (mapping and not expanded) or (
                mapping and not all(_parameter(key, assigned) for key in mapping)
            ):
                continue
            if best is None or len(mapping) < best[0]:
                best = (len(mapping), None, body, mapping)
        if best is None:
            named = ", ".join({**files, **own}) or "no file"
            return (f"{script} {name} wrote a cog.yaml that is not a file it names ({named}) "
                    "nor its heredoc with text replaced in every place")
        _, chosen, text_of, mapping = best
        if chosen is None:
            if found.new_template not in (None, text_of):
                first = next(n for n, t in found.templates.items() if t == new_name)
                return (f"{script} writes cog.yaml from one heredoc for {first} and another for "
                        f"{name}; cogfleet writes one heredoc as a template")
            found.new_template = text_of
        found.templates[name] = chosen if chosen is not None else new_name
        # $NAME / ${NAME} as envsubst values (a $PATH added later is not $P replaced),
        # when rendering them so still gives the script's bytes
        names = {k: _NAME_RE.fullmatch(k) for k in mapping}
        values = {m.group(1) or m.group(2): mapping[k] for k, m in names.items() if m}
        literal = {k: v for k, v in mapping.items() if not names[k]}
        if values and replace_literal(envsubst(text_of, values), literal) == output:
            found.envsubst[name], found.replace[name] = values, literal
        else:
            found.envsubst[name], found.replace[name] = {}, mapping
    return found


def _templates(root: Path, script: str, words: list[str]) -> dict[str, str]:
    """The repo files among ``words`` that may be a cog.yaml template, with their text."""
    found: dict[str, str] = {}
    for word in dict.fromkeys(words):
        rel = word.strip("'\"").removeprefix("./")
        path = root / rel
        if (
            rel and rel not in (script, "cog.yaml") and _TEMPLATE_NAME_RE.search(rel)
            and "cog-safe-push" not in rel  # the configs it copies are not cog.yaml's
            and ".." not in rel.split("/") and path.is_file()
            and path.stat().st_size < _MAX_TEMPLATE
        ):
            try:
                found[rel] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
    return found


def _parameter(key: str, assigned: set[str]) -> bool:
    """``key`` is one ``$NAME`` / ``${NAME}`` / ``$1`` the script sets (the shell's
    expansion of a heredoc; not a variable of whoever ran it, such as ``$HOME``)."""
    match = _PARAMETER_RE.fullmatch(key)
    if match is None:
        return False
    name = match.group(1) or match.group(2)
    return name.isdigit() or name in assigned


def _plain_expansions(body: str, assigned: set[str]) -> bool:
    """The shell's expansion of ``body`` is ``$NAME`` replaced: no command substitution,
    arithmetic, escapes or other parameter forms, and only names the script sets."""
    if "`" in body or "\\" in body or "$(" in body:
        return False
    rest = _PARAMETER_RE.sub("", body)
    return "$" not in rest and all(
        _parameter(m.group(0), assigned) for m in _PARAMETER_RE.finditer(body)
    )
