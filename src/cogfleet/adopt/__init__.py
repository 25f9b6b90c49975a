"""``cogfleet init``: adopt a select-script repo in place, or scaffold a new monorepo.

- :mod:`._read`: what the repo's select script and workflows say;
- :mod:`._scriptrun`: running a select script per variant in a scratch copy;
- :mod:`._plan`: what ``init`` writes for a repo it adopts;
- :mod:`._command`: the command (scaffold or adopt, dry run, write, check, undo).
"""

from cogfleet.adopt._command import apply_plan, plan_init, run_init
from cogfleet.adopt._plan import Plan
from cogfleet.adopt._read import LayoutError

__all__ = ["LayoutError", "Plan", "apply_plan", "plan_init", "run_init"]
