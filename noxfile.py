"""nox sessions for this monorepo. Each one is a thin call into the cogfleet CLI.

Sessions run in the environment where cogfleet is installed (see README: one
``pip install -e '.[test]'``), so no session builds a virtualenv of its own.
Variant-taking sessions read variants from posargs: ``nox -s render -- schnell dev``
(no posargs = every variant).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]  # safe defaults only: nothing here pushes
nox.options.default_venv_backend = "none"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest)."""
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy and the import layers (lint-imports) on cogfleet, then `cogfleet lint`."""
    session.run("python", "-m", "ruff", "check", "src", "tests", "plugins", "noxfile.py", "bench")
    session.run("python", "-m", "mypy", "src")
    session.run("lint-imports")
    session.run("cogfleet", "lint", *session.posargs)


@nox.session
def render(session: nox.Session) -> None:
    """Render build folders: nox -s render -- [VARIANT...]."""
    session.run("cogfleet", "render", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """Build what a push would run: nox -s build -- [VARIANT...] [--target replicate]."""
    session.run("cogfleet", "build", *session.posargs)


@nox.session
def test(session: nox.Session) -> None:
    """Safe push without promotion: nox -s test -- VARIANT... [flags]."""
    session.run("cogfleet", "test", *session.posargs)


@nox.session
def push(session: nox.Session) -> None:
    """Safe push with promotion: nox -s push -- VARIANT... [flags]. Never a default session."""
    session.run("cogfleet", "push", *session.posargs)


@nox.session
def matrix(session: nox.Session) -> None:
    """CI matrix JSON: nox -s matrix -- [--changed-since REF] [--variants a,b|all]."""
    session.run("cogfleet", "matrix", *session.posargs)


@nox.session
def canary(session: nox.Session) -> None:
    """Push a tiny fresh model and predict on it: nox -s canary -- [--target replicate]."""
    session.run("cogfleet", "canary", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: pipeline, round trips, scale, start-up, server overhead (bench/results.json)."""
    session.run("python", "bench/run_all.py", *session.posargs)


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut) of compat rules, checkers, pipeline and promotion; kill rate."""
    session.run("python", "bench/mutants.py", *session.posargs)
