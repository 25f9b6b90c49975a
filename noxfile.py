"""nox sessions for this monorepo. Each one is a thin call into the cogfleet CLI.

Sessions run in the environment where cogfleet is installed (see README: one
``pip install -e '.[test]'``), so no session builds a virtualenv of its own.
Variant-taking sessions read variants from posargs: ``nox -s render -- schnell dev``
(no posargs = every variant).
"""

from __future__ import annotations

import nox
import nox.command

nox.options.sessions = ["lint", "tests"]  # safe defaults only: nothing here pushes
nox.options.default_venv_backend = "none"


def _cogfleet(session: nox.Session, *args: str) -> None:
    """Run the cogfleet CLI; bad input (its exit code 2) ends nox with exit code 2 too.

    nox turns any failed command into its own exit code 1, which would make a typo in a
    variant name look like a failed check to CI; cogfleet's one-line error is on stderr.
    """
    try:
        session.run("cogfleet", *args, stderr=None)
    except nox.command.CommandFailed as exc:
        if exc.return_code == 2:
            raise SystemExit(2) from None
        raise


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
    _cogfleet(session, "lint", *session.posargs)


@nox.session
def render(session: nox.Session) -> None:
    """Render build folders: nox -s render -- [VARIANT...]."""
    _cogfleet(session, "render", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """Build what a push would run: nox -s build -- [VARIANT...] [--target replicate]."""
    _cogfleet(session, "build", *session.posargs)


@nox.session
def test(session: nox.Session) -> None:
    """Safe push without promotion: nox -s test -- VARIANT... [flags]."""
    _cogfleet(session, "test", *session.posargs)


@nox.session
def push(session: nox.Session) -> None:
    """Safe push with promotion: nox -s push -- VARIANT... [flags]. Never a default session."""
    _cogfleet(session, "push", *session.posargs)


@nox.session
def matrix(session: nox.Session) -> None:
    """CI matrix JSON: nox -s matrix -- [--changed-since REF] [--variants a,b|all]."""
    _cogfleet(session, "matrix", *session.posargs)


@nox.session
def canary(session: nox.Session) -> None:
    """Push a tiny fresh model and predict on it: nox -s canary -- [--target replicate]."""
    _cogfleet(session, "canary", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: pipeline, round trips, scale, start-up, server overhead (bench/results.json)."""
    session.run("python", "bench/run_all.py", *session.posargs)


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut) of compat rules, checkers, pipeline and promotion; kill rate."""
    session.run("python", "bench/mutants.py", *session.posargs)
