"""What every command module shares: the parser class, command records, output, loading.

Command modules import only this module, :mod:`cogfleet._errors` and the standard
library at module level; everything a command runs (the repo, rendering, the pipeline,
the server, HTTP clients, pydantic) is imported inside its handler or its
``arguments`` function, so building the parser costs nothing a command does not use.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cogfleet._errors import UsageError

if TYPE_CHECKING:
    from cogfleet._plugins import Plugins
    from cogfleet._repo import Repo

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors get exit code 2 and one line.

    An option given an empty value (``--report-json ""``, ``--local-url "$UNSET"``) is
    refused too: argparse would hand on the empty text, which every later check reads
    as "not given", so the run went ahead without the report or the server asked for.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        given = list(sys.argv[1:] if args is None else args)
        # An empty value that an option's type turns into something else (Path("") is
        # ".") is gone after parsing, so the words themselves are looked at first.
        takes_value = {s: a for a in self._actions if a.nargs != 0 for s in a.option_strings}
        for i, word in enumerate(given):
            if word == "--":
                break
            name, eq, text = word.partition("=")
            if not eq:
                text = given[i + 1] if i + 1 < len(given) else "x"
            action = takes_value.get(name)
            if action is not None and not text.strip() and _hides_empty(action):
                self.error(f"argument {name}: empty value")
        ns, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(ns, action.dest, None) if action.option_strings else None
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and not v.strip() for v in values):
                self.error(f"argument {'/'.join(action.option_strings)}: empty value")
        return ns, rest


def _hides_empty(action: argparse.Action) -> bool:
    """Whether ``action``'s type takes an empty text without a word (a path, say)."""
    if action.type is None or not callable(action.type):
        return False
    try:
        converted = action.type("")
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False  # its own message names the problem
    return not isinstance(converted, str)


class Command(NamedTuple):
    """One subcommand: its name, help line, handler, and the function that adds its flags.

    ``arguments`` runs only when this command is the one being parsed, so a command's
    flags may come from the module that implements it (``serve`` takes the server's).
    (A named tuple, not a dataclass: ``dataclasses`` pulls in ``inspect`` and ``ast``,
    which ``cogfleet --help`` has no use for.)
    """

    name: str
    help: str
    handler: Handler
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None  # default: the help line


def out(text: str) -> None:
    """Write one line (or block) to stdout."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def load_repo(ns: argparse.Namespace) -> Repo:
    """The monorepo named by ``--repo``, or found from the current folder."""
    from cogfleet._repo import Repo

    root = Path(ns.repo).resolve() if ns.repo is not None else None
    if root is not None and not Repo.is_root(root):
        raise UsageError(
            f"--repo {ns.repo}: no variants.yaml there (nor models/<family>/variants.yaml)"
        )
    return Repo.load(root)


def load_plugins(root: Path | None) -> Plugins:
    """Built-ins, entry points, and the ``plugins/`` folder of ``root`` (when given)."""
    from cogfleet._plugins import Plugins

    return Plugins(root)


def add_target_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--target`` and ``--local-url``: the same on every command that talks to a target."""
    p.add_argument(
        "--target", choices=["local", "replicate"],
        default=os.environ.get("COGFLEET_TARGET") or "local",
        help="where to push and predict (default: local, or $COGFLEET_TARGET)",
    )
    p.add_argument("--local-url", help="a running `cogfleet serve` (default: embedded server)")


def variants_argument(p: argparse.ArgumentParser) -> None:
    """Positional ``VARIANT...`` (default: every variant)."""
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="default: all")
