"""The entry point: build the parser for the command being run, dispatch, map errors to exits.

Exit codes (:class:`cogfleet.ExitCode`): 0 ok, 1 a check failed, 2 usage or
configuration error, 130 interrupted. A known error prints one line
``error: <file>:<line>: <what>``; ``-vvv`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from cogfleet import __version__
from cogfleet._credentials import redact
from cogfleet._errors import CogfleetError, ExitCode
from cogfleet.cli import _ci, _monorepo, _push, _report, _schema, _serve
from cogfleet.cli._common import Command, Parser

# Every command, in the order `cogfleet --help` lists them; one module per command group.
COMMANDS: list[Command] = [
    *_monorepo.COMMANDS,
    *_schema.COMMANDS,
    *_serve.COMMANDS,
    *_push.COMMANDS,
    *_report.COMMANDS,
    *_ci.COMMANDS,
]


def _command_name(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` runs: its first word (before it only -h and --version exist)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``cogfleet`` parser; with ``argv``, only the command it names gets its flags.

    Every command is listed (so ``--help`` and unknown-command errors are complete),
    but a command's flags are added only when it is the one being parsed: the modules
    that define them (the server's, for ``serve``) are not imported otherwise.
    """
    every = argv is None
    wanted = None if argv is None else _command_name(argv)
    parser = Parser(
        prog="cogfleet",
        description="Build, test and safely publish monorepos of Cog models to Replicate.",
    )
    parser.add_argument("--version", action="version", version=f"cogfleet {__version__}")
    common = Parser(add_help=False)
    common.add_argument("--repo", help="monorepo root (default: found from the current folder)")
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output (-vvv: tracebacks)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        p = sub.add_parser(
            command.name, parents=[common], help=command.help,
            description=command.description or command.help,
        )
        p.set_defaults(handler=command.handler)
        if command.arguments is not None and (every or wanted == command.name):
            command.arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cogfleet`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = sum(a.count("v") for a in args if a.startswith("-v") and set(a[1:]) == {"v"})
    verbose += args.count("--verbose")
    try:
        parser = build_parser(args)
        ns = parser.parse_args(args)
        if not getattr(ns, "handler", None):
            parser.print_help()
            sys.stderr.write("error: no command given (the commands are listed above)\n")
            return ExitCode.USAGE_ERROR
        return int(ns.handler(ns))
    except KeyboardInterrupt:
        # a safe push handles its own interrupts (see _run); this is everything else
        sys.stderr.write("interrupted: nothing was promoted\n")
        return ExitCode.INTERRUPTED
    except CogfleetError as exc:
        if verbose >= 3:
            traceback.print_exc()
        sys.stderr.write(f"error: {redact(str(exc))}\n")
        return int(exc.exit_code)
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # noqa: BLE001 - a bug: one line; -vvv shows where
        if verbose >= 3:
            traceback.print_exc()
        first = redact((str(exc).strip().splitlines() or [""])[0][:300])
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {first} "
                         "(-vvv shows the traceback)\n")
        return ExitCode.USAGE_ERROR


def run() -> NoReturn:
    """The ``cogfleet`` program (console script, ``python -m cogfleet``): :func:`main`, exit.

    Once the command has returned, its files are closed, its servers stopped and its
    threads joined; what is left is flushing the output and the exit handlers. The
    interpreter's own teardown after that (freeing every module and object one by one,
    a few hundred milliseconds after a push) changes nothing anyone can see, so the
    process ends without it. With a thread still running, the exit is the usual one.
    """
    code = main()
    import atexit
    import contextlib
    import logging
    import os
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter would run: temporary files, finalizers
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`cogfleet list | head`)
            stream.flush()
    os._exit(code)
