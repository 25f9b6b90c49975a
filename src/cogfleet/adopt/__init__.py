"""``cogfleet init``: adopt a select-script repo in place, or scaffold a new monorepo.

- :mod:`._read`: what the repo's select script and workflows say (:mod:`._pyselect`:
  a select script written in Python);
- :mod:`._scriptrun`: running a select script per variant in a scratch copy
  (:mod:`._sitecustomize` records its ``jinja2`` renders);
- :mod:`._derive`, :mod:`._rendered`, :mod:`._generated`: what a run wrote, read back as
  a template with text replaced, as the ``jinja2`` templates it rendered, or as new
  templates for the other files it generated;
- :mod:`._plan`, :mod:`._planrun`, :mod:`._plancommon`: what ``init`` writes for a repo it
  adopts;
- :mod:`._command`: the command (scaffold or adopt, dry run, check, write, undo).
"""

from cogfleet.adopt._command import apply_plan, plan_init, run_init
from cogfleet.adopt._plan import Plan
from cogfleet.adopt._read import LayoutError

__all__ = ["LayoutError", "Plan", "apply_plan", "plan_init", "run_init"]
