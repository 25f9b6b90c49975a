"""A ``jq_query`` run on an output, in a process of its own.

jq runs any program that compiles: one that never ends (``def f: f; f``, ``[range(1e9)]``)
would hold the run forever, and one that recurses without end makes jq abort the
whole process ("cannot allocate memory"), report and all. The query therefore runs in
a child process bounded in time and memory; what it gives, or why it gave nothing,
comes back as JSON. The child starts without cogfleet's environment, so ``$ENV`` and
``env`` in a query read nothing of it (a token would otherwise end up in the report).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

#: How long one query may run on one output.
SECONDS = 30.0
#: The address space the query's process may use.
MEMORY = 2 << 30
#: The longest query: compiling a huge program alone can take minutes.
MAX_QUERY = 10_000

# The variables a Python interpreter needs to find its packages, nothing else.
_PYTHON_VARIABLES = ("PATH", "HOME", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "SYSTEMROOT")

_CHILD = r"""
import contextlib, json, sys
# Where the system has no address-space limit, the time limit still holds.
with contextlib.suppress(ImportError, ValueError, OSError):
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
import jq
job = json.load(sys.stdin)
try:
    found = {}
    for value in jq.compile(job["query"]).input_value(job["data"]):
        found = {"value": value}
        break  # only the first result counts; the rest is never computed
except ValueError as exc:
    found = {"error": str(exc)}
json.dump(found, sys.stdout)
"""


@dataclass
class JqAnswer:
    """What a query gave: its first ``value`` (``found``), or the ``error`` that stopped it."""

    found: bool = False
    value: Any = None
    error: str | None = None


def run_query(query: str, data: Any) -> JqAnswer:
    """The first result of ``query`` on ``data`` (JSON), in a bounded child process."""
    env = {name: os.environ[name] for name in _PYTHON_VARIABLES if name in os.environ}
    job = json.dumps({"query": query, "data": data}, default=str)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(MEMORY)], input=job, capture_output=True,
            text=True, timeout=SECONDS, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        return JqAnswer(error=f"ran longer than {SECONDS:g} s and was stopped")
    try:
        answer = json.loads(proc.stdout) if proc.returncode == 0 else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        errors = [line for line in proc.stderr.splitlines() if line.startswith("jq: error")]
        why = errors[-1] if errors else f"its process ended with exit status {proc.returncode}"
        return JqAnswer(error=why)
    if "error" in answer:
        return JqAnswer(error=str(answer["error"]))
    return JqAnswer(found="value" in answer, value=answer.get("value"))
