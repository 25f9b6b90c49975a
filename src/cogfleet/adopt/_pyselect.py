"""A select script written in Python (``select_model.py``, ``script/select-model`` with a
python shebang), read from its syntax tree.

Such a script usually renders cog.yaml (and a ``config.py`` or a weights list) from
``jinja2`` templates with a dict of values per model, and takes the model's name as
``--model_name NAME`` or as its first argument. What it renders is seen by running it
(:mod:`cogfleet.adopt._scriptrun` records every ``jinja2`` render); here only what the
text says is read: whether it writes cog.yaml at all, how it takes the name, and the
names it knows (the keys of a dict literal indexed by that name, or ``choices=``).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cogfleet import _pyparse
from cogfleet._errors import UsageError

_NAME_OPTION_RE = re.compile(r"^--?[\w-]*(?:model|variant|name|config)[\w-]*$", re.IGNORECASE)


def is_python(path: Path) -> bool:
    """``path`` is a Python script: ``*.py``, or a ``#!`` line naming python."""
    if path.suffix == ".py":
        return True
    with path.open("rb") as fh:
        first = fh.readline(200)
    return first.startswith(b"#!") and b"python" in first


@dataclass
class PythonSelect:
    """What a Python select script's text says."""

    writes_cog_yaml: bool
    option: str | None  # ``--model_name``; None: the name is the first argument
    names: list[str] = field(default_factory=list)  # the model names it knows, if it says

    def command(self, script: str) -> Callable[[str], list[str]]:
        """The command line that runs the script for one model, with cogfleet's Python
        (it has ``jinja2``; the recording of renders needs nothing else)."""
        option = self.option

        def argv(name: str) -> list[str]:
            return [sys.executable, script, *([option, name] if option else [name])]

        return argv


def read_python(root: Path, rel: str) -> PythonSelect:
    """Read the Python select script ``rel`` (raises a one-line error for one that is
    not Python or does not say how it takes the model's name)."""
    source = (root / rel).read_bytes()
    try:
        tree = _pyparse.parse(source, rel)
    except SyntaxError as exc:
        raise UsageError(f"{rel}:{exc.lineno}: the select script is not Python that parses "
                         f"({exc.msg})") from None
    except ValueError as exc:  # null bytes
        raise UsageError(f"{rel}: the select script is not Python that parses ({exc})") from None
    strings = [n.value for n in ast.walk(tree)
               if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    writes = any(s == "cog.yaml" or s.endswith("/cog.yaml") for s in strings)
    positional: list[str] = []
    options: list[tuple[str, list[str]]] = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "add_argument"):
            continue
        flags = [a.value for a in call.args
                 if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        choices = next((kw.value for kw in call.keywords if kw.arg == "choices"), None)
        known = _strings(choices)
        if flags and not flags[0].startswith("-"):
            positional.append(flags[0])
            if known:
                options.append(("", known))
        elif any(_NAME_OPTION_RE.match(f) for f in flags):
            flag = next(f for f in flags if f.startswith("--")) if any(
                f.startswith("--") for f in flags) else flags[0]
            options.append((flag, known))
    uses_argv = any(isinstance(n, ast.Attribute) and n.attr == "argv"
                    and isinstance(n.value, ast.Name) and n.value.id == "sys"
                    for n in ast.walk(tree))
    option: str | None
    if len(positional) == 1 and not [o for o in options if o[0]]:
        option = None
    elif not positional and len({o for o, _ in options if o}) == 1:
        option = next(o for o, _ in options if o)
    elif not positional and not options and uses_argv:
        option = None
    elif writes:
        raise UsageError(f"{rel}: cannot tell how the select script takes the model's name "
                         "(one positional argument, one --model-style option, or sys.argv)")
    else:
        option = None
    names = next((known for _, known in options if known), []) or _dict_keys(tree)
    return PythonSelect(writes_cog_yaml=writes, option=option, names=names)


def _strings(node: ast.expr | None) -> list[str]:
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if values and all(isinstance(v, str) for v in values):
            return [str(v) for v in values]
    return []


def _dict_keys(tree: ast.Module) -> list[str]:
    """The keys of the module's dict literal of dicts (``CONFIGS = {"small": {...}}``),
    when there is exactly one such dict."""
    found = []
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Dict) and value.keys and all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys
        ) and all(isinstance(v, ast.Dict) for v in value.values):
            found.append([k.value for k in value.keys if isinstance(k, ast.Constant)])
    return [str(k) for k in found[0]] if len(found) == 1 else []
