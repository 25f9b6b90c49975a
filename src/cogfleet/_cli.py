"""The ``cogfleet`` command line.

Exit codes (:class:`cogfleet.ExitCode`): 0 ok, 1 a check failed, 2 usage or
configuration error, 130 interrupted. A known error prints one line
``error: <file>:<line>: <what>``; ``-vvv`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cogfleet import __version__
from cogfleet._errors import CogfleetError, ExitCode, UsageError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors get exit code 2 and one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _repo(ns: argparse.Namespace) -> Any:
    from cogfleet._repo import Repo

    root = Path(ns.repo).resolve() if ns.repo else None
    if root is not None and not (root / "models").is_dir():
        raise UsageError(f"--repo {ns.repo}: no models/ folder there")
    return Repo.load(root)


def _plugins(repo: Any) -> Any:
    from cogfleet._plugins import Plugins

    return Plugins(repo.root if repo is not None else None)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# --- commands ------------------------------------------------------------------------


def cmd_list(ns: argparse.Namespace) -> int:
    """List the variants of the monorepo."""
    repo = _repo(ns)
    if ns.json:
        _out(json.dumps([v.to_json(repo.root) for v in repo.variants.values()], indent=2))
        return ExitCode.OK
    width = max((len(n) for n in repo.variants), default=0)
    for v in repo.variants.values():
        _out(f"{v.name:<{width}}  {v.family:<12}  {v.model or '-'}")
    return ExitCode.OK


def cmd_render(ns: argparse.Namespace) -> int:
    """Render build folders."""
    from cogfleet._render import render_variants

    repo = _repo(ns)
    variants = repo.select(ns.variants)
    for rendered in render_variants(repo, variants, _plugins(repo)):
        changed = len(rendered.written) + len(rendered.removed)
        _out(
            f"{rendered.variant.name}: {repo.rel(rendered.build_dir)} "
            f"({len(rendered.files)} files, {changed} changed)"
        )
        for warning in rendered.warnings:
            sys.stderr.write(f"warning: {warning}\n")
    return ExitCode.OK


def cmd_lint(ns: argparse.Namespace) -> int:
    """Render, then lint each variant (ruff, cog.yaml, config, lint plugins)."""
    from cogfleet._render import render_variants

    repo = _repo(ns)
    variants = repo.select(ns.variants)
    plugins = _plugins(repo)
    failed = False
    for rendered in render_variants(repo, variants, plugins):
        problems = plugins.lint(rendered.variant, rendered.build_dir)
        for warning in rendered.warnings:
            sys.stderr.write(f"warning: {warning}\n")
        if problems:
            failed = True
            for problem in problems:
                _out(problem)
        else:
            _out(f"{rendered.variant.name}: ok")
    return ExitCode.CHECKS_FAILED if failed else ExitCode.OK


def cmd_plugins(ns: argparse.Namespace) -> int:
    """List loaded plugins, where each came from, and its hooks."""
    try:
        repo = _repo(ns)
        root = repo.root
    except UsageError:
        root = None  # outside a monorepo: built-ins and entry points only
    from cogfleet._plugins import Plugins

    plugins = Plugins(root)
    infos = plugins.describe()
    if ns.json:
        _out(json.dumps([info.__dict__ | {"hooks": list(info.hooks)} for info in infos]))
        return ExitCode.OK
    for info in infos:
        _out(f"{info.name}  [{info.source}]")
        for hook in info.hooks:
            _out(f"    {hook}")
    checkers = plugins.checkers()
    _out("checkers: " + ", ".join(checkers))
    return ExitCode.OK


def cmd_select(ns: argparse.Namespace) -> int:
    """Write cog.yaml and cog-safe-push.yaml for one variant into the repo root."""
    from cogfleet._select import select_variant

    repo = _repo(ns)
    if ns.list:
        for name in repo.variants:
            _out(name)
        return ExitCode.OK
    if not ns.variant:
        raise UsageError("select: give a VARIANT or --list")
    written = select_variant(repo, repo.select([ns.variant])[0], _plugins(repo))
    for path in written:
        _out(f"wrote {repo.rel(path)}")
    return ExitCode.OK


def cmd_schema(ns: argparse.Namespace) -> int:
    """Print the OpenAPI schema each variant's version would get.

    One variant: the document itself. ``--summary``: one line per variant with its
    inputs (every variant when none is named), which proves each predictor imports
    and its types are supported, i.e. that the variant builds.
    """
    from concurrent.futures import ThreadPoolExecutor

    from cogfleet._render import render_variants
    from cogfleet.schema import dumps_schema, generate_schema

    repo = _repo(ns)
    variants = repo.select(ns.variants)
    if not ns.summary and len(variants) != 1:
        raise UsageError("schema: name one VARIANT (or use --summary)")
    rendered = render_variants(repo, variants, _plugins(repo))
    with ThreadPoolExecutor(max_workers=4) as pool:  # one subprocess per build folder
        docs = list(pool.map(lambda r: generate_schema(r.build_dir), rendered))
    if not ns.summary:
        _out(json.dumps(docs[0], indent=2) if ns.pretty else dumps_schema(docs[0]))
        return ExitCode.OK
    for r, doc in zip(rendered, docs, strict=True):
        inputs = doc["components"]["schemas"]["Input"]["properties"]
        _out(f"{r.variant.name}: {len(inputs)} inputs ({', '.join(inputs)})")
    return ExitCode.OK


def cmd_schema_diff(ns: argparse.Namespace) -> int:
    """Exit 1 when NEW breaks OLD; one line per break."""
    from cogfleet.schema import check_compatibility, load_schema_file

    old = load_schema_file(Path(ns.old))
    new = load_schema_file(Path(ns.new))
    breaks = check_compatibility(old, new)
    for line in breaks:
        _out(line)
    if not breaks:
        _out("compatible")
    return ExitCode.CHECKS_FAILED if breaks else ExitCode.OK


def cmd_serve(ns: argparse.Namespace) -> int:
    """Run the local Replicate-compatible server."""
    from cogfleet.server._embedded import run_serve

    return run_serve(ns)


# --- parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cogfleet",
        description="Build, test and safely publish monorepos of Cog models to Replicate.",
    )
    parser.add_argument("--version", action="version", version=f"cogfleet {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("--repo", help="monorepo root (default: found from the current folder)")
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="more output (-vvv: tracebacks)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    p = add("list", cmd_list, "list the variants")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("render", cmd_render, "render build folders (.cogfleet/build/<variant>/)")
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="default: all")

    p = add("lint", cmd_lint, "render and lint variants")
    p.add_argument("variants", nargs="*", metavar="VARIANT", help="default: all")

    p = add("plugins", cmd_plugins, "list loaded plugins and their hooks")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("select", cmd_select, "write cog.yaml + cog-safe-push.yaml for a variant to the root")
    p.add_argument("variant", nargs="?", metavar="VARIANT")
    p.add_argument("--list", action="store_true", help="list variant names")

    p = add("schema", cmd_schema, "print the OpenAPI schema the variant would get")
    p.add_argument("variants", nargs="*", metavar="VARIANT")
    p.add_argument("--pretty", action="store_true", help="indented JSON")
    p.add_argument("--summary", action="store_true",
                   help="one line per variant (default: every variant)")

    p = add("schema-diff", cmd_schema_diff, "exit 1 if NEW is not backwards compatible with OLD")
    p.add_argument("old", metavar="OLD", help="OpenAPI JSON file of the live version")
    p.add_argument("new", metavar="NEW", help="OpenAPI JSON file of the new version")

    p = add("serve", cmd_serve, "run the local Replicate-compatible server")
    from cogfleet.server._embedded import add_serve_arguments

    add_serve_arguments(p)

    for extend in _EXTENSIONS:
        extend(sub, common)
    return parser


def _push_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    from cogfleet._push_cli import register

    register(sub, common)


def _ci_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    from cogfleet._ci_cli import register

    register(sub, common)


# Command groups that live in their own modules.
_EXTENSIONS: list[Callable[[Any, argparse.ArgumentParser], None]] = [
    _push_commands,
    _ci_commands,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cogfleet`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = sum(a.count("v") for a in args if a.startswith("-v") and set(a[1:]) == {"v"})
    verbose += args.count("--verbose")
    try:
        parser = build_parser()
        ns = parser.parse_args(args)
        if not getattr(ns, "handler", None):
            parser.print_help()
            return ExitCode.USAGE_ERROR
        return int(ns.handler(ns))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return ExitCode.INTERRUPTED
    except CogfleetError as exc:
        if verbose >= 3:
            traceback.print_exc()
        sys.stderr.write(f"error: {exc}\n")
        return int(exc.exit_code)
    except BrokenPipeError:
        return ExitCode.OK
