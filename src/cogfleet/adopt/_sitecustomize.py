"""Copied as ``sitecustomize.py`` onto ``PYTHONPATH`` while ``init`` runs a select script.

Python imports ``sitecustomize`` at start-up, so every Python process the script starts
(the script itself, or a ``python select_model.py`` a shell script calls) records each
``jinja2`` template it renders: the template's source or file, the variables it was
rendered with, the text it gave, and the environment's settings that decide that text.
:mod:`cogfleet.adopt._scriptrun` matches the records with the files the run wrote. It
imports nothing of cogfleet's (it runs in the script's interpreter) and changes nothing
the script sees: the render's result is returned as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

#: Settings that change what a template renders as (Jinja's defaults besides these three
#: lexer options are what cogfleet renders with).
_LEXER = ("keep_trailing_newline", "trim_blocks", "lstrip_blocks")
_OTHER = (
    "block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
    "comment_start_string", "comment_end_string", "line_statement_prefix",
    "line_comment_prefix", "newline_sequence", "autoescape", "finalize", "extensions",
)


def _install(out: str) -> None:
    try:
        from jinja2 import environment
    except Exception:  # noqa: BLE001 - no jinja2 in this interpreter: nothing to record
        return
    default = environment.Environment()
    from_string = environment.Environment.from_string
    render = environment.Template.render

    def recorded_from_string(self: Any, source: Any, *args: Any, **kwargs: Any) -> Any:
        template = from_string(self, source, *args, **kwargs)
        if isinstance(source, str):
            # a template class without a __dict__ keeps no source: nothing is recorded
            with contextlib.suppress(Exception):
                setattr(template, "_cogfleet_source", source)  # noqa: B010
        return template

    def recorded_render(self: Any, *args: Any, **kwargs: Any) -> Any:
        text = render(self, *args, **kwargs)
        env = self.environment
        try:
            context: Any = dict(*args, **kwargs)
            json.dumps(context)
        except Exception:  # noqa: BLE001 - values that are not plain data
            context = None
        differs = [k for k in _OTHER if getattr(env, k, None) != getattr(default, k, None)]
        differs += [f"filter {k}" for k in env.filters if k not in default.filters]
        differs += [f"test {k}" for k in env.tests if k not in default.tests]
        differs += [f"global {k}" for k in env.globals if k not in default.globals]
        entry = {
            "source": getattr(self, "_cogfleet_source", None),
            "filename": os.path.abspath(self.filename) if self.filename else None,
            "context": context,
            "output": text,
            "options": {k: bool(getattr(env, k)) for k in _LEXER},
            "undefined": f"{env.undefined.__module__}.{env.undefined.__qualname__}",
            "differs": differs,
        }
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        return text

    environment.Environment.from_string = recorded_from_string  # type: ignore[method-assign]
    environment.Template.render = recorded_render  # type: ignore[method-assign]


if __name__ == "sitecustomize" and os.environ.get("COGFLEET_JINJA_OUT"):
    _install(os.environ["COGFLEET_JINJA_OUT"])
