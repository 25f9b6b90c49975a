"""Files a select script rendered with ``jinja2``, as cogfleet's templates.

A Python select script (``select_model.py``) renders cog.yaml, and often a
``config.py`` or a weights list, from template files with a dict of values per model.
:mod:`cogfleet.adopt._scriptrun` records each render (template, values, options, text)
and which written file it became. Here the records become variants.yaml settings: the
template files are named in ``jinja: {templates: [...]}`` (rendered where they are, with
the script's ``keep_trailing_newline`` / ``trim_blocks`` / ``lstrip_blocks``), cog.yaml's
is the variant's ``template``, the others are its ``files:``, and the values are its
``variables:``. A variable the template reads but the script did not pass rendered as
nothing in jinja2's default (lenient) undefined: it is declared as ``""``. Whether
cogfleet then renders exactly the script's bytes is checked afterwards by rendering
(:func:`cogfleet.adopt._plan.check_in_copy`), not assumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import meta

from cogfleet.adopt._scriptrun import Render

_LENIENT = "jinja2.runtime.Undefined"


@dataclass
class Adopted:
    """What the records say, per variant."""

    templates: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> dest -> file
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, bool] = field(default_factory=dict)
    jinja_files: list[str] = field(default_factory=list)


def adopt_renders(script: str, rendered: dict[str, dict[str, Render]]) -> Adopted | str:
    """The settings for each variant's rendered files, or the first problem with them."""
    found = Adopted()
    options: dict[str, bool] | None = None
    for name, files in rendered.items():
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        found.templates[name] = {}
        for dest, render in sorted(files.items()):
            what = f"{script} {name} renders {dest}"
            if render.template is None or render.source is None:
                return f"{what} from a template in its own code, not a file of the repo"
            what += f" from {render.template}"
            if render.differs:
                return (f"{what} with Jinja settings cogfleet does not render with "
                        f"({render.differs[0]})")
            if render.context is None:
                return f"{what} with values that are not plain data (text, numbers, lists)"
            if options not in (None, render.options):
                return f"{what} with other Jinja options than another template it renders"
            options = render.options
            env = jinja2.Environment(  # noqa: S701 - parsed here, never rendered
                keep_trailing_newline=render.options.get("keep_trailing_newline", False),
                trim_blocks=render.options.get("trim_blocks", False),
                lstrip_blocks=render.options.get("lstrip_blocks", False),
            )
            try:
                used = meta.find_undeclared_variables(env.parse(render.source))
            except jinja2.TemplateSyntaxError as exc:  # it rendered, so this is unexpected
                return f"{render.template}:{exc.lineno}: {exc.message}"
            for key in sorted(used):
                if key in render.context:
                    value = render.context[key]
                elif render.undefined == _LENIENT:
                    value = ""  # jinja2's default undefined prints as nothing
                else:
                    return f"{what} without {key!r}, which it reads"
                if key in values and values[key] != value:
                    return (f"{script} {name} renders {origin[key]} and {render.template} "
                            f"with different values of {key!r}; cogfleet gives a variant's "
                            "templates one set of variables")
                values[key], origin[key] = value, render.template
            found.templates[name][dest] = render.template
            if render.template not in found.jinja_files:
                found.jinja_files.append(render.template)
        found.variables[name] = values
    found.options = {k: v for k, v in (options or {}).items()
                     if v != (k == "keep_trailing_newline")}  # ours: True, False, False
    return found


def flow(mapping: dict[str, Any]) -> str:
    """``mapping`` as YAML flow text (JSON, which YAML reads the same)."""
    return "{" + ", ".join(
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in mapping.items()
    ) + "}"


def split_common(
    per_variant: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The values every variant has alike (for ``defaults``) and each variant's own.

    A value with ``{variant}`` in its text stays with its variant (in ``defaults`` that
    text is the variant's name)."""
    names = list(per_variant)
    if not names:
        return {}, {}
    common: dict[str, Any] = {}
    if len(names) > 1:
        for key, value in per_variant[names[0]].items():
            if "{variant}" not in json.dumps(value) and all(
                key in per_variant[n] and per_variant[n][key] == value for n in names
            ):
                common[key] = value
    own = {n: {k: v for k, v in m.items() if k not in common} for n, m in per_variant.items()}
    return common, own
